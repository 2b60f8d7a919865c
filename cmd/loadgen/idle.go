package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/party-sockets/party-sockets/internal/procstat"
)

type idleResult struct {
	Connections int
	Rooms       int
	Pings       int64   // heartbeats sent during the hold (-heartbeat)
	HoldCPU     float64 // the server's CPU seconds during the hold alone
	HoldSeconds float64
}

// runIdle opens n connections in rooms of size and holds them for dur.
// Memory per connection is measured by main from the server's RSS before
// and after. hold is called at the end of the hold, still connected.
func runIdle(ctx context.Context, cfg config, hold func()) (idleResult, error) {
	var res idleResult
	var rooms []*room
	defer func() {
		for _, rm := range rooms {
			rm.close()
		}
	}()
	for res.Connections < cfg.conns {
		size := min(cfg.size, cfg.conns-res.Connections)
		rm, err := makeRoom(ctx, cfg.url, size, fmt.Sprintf("idle%d-%d", time.Now().UnixNano(), len(rooms)))
		if err != nil {
			return res, fmt.Errorf("after %d connections: %w", res.Connections, err)
		}
		rooms = append(rooms, rm)
		res.Connections += size
		res.Rooms++
	}
	// Idle clients still read, as browsers do, so they answer the server's
	// pings and are not closed as dead peers; with -heartbeat they also
	// send the clients' app-level ping once a heartbeat, as a quiet room's
	// clients do (nothing else arrives, so every heartbeat is quiet).
	holdCtx, stop := context.WithTimeout(ctx, cfg.duration)
	defer stop()
	var pings atomic.Int64
	for _, rm := range rooms {
		for _, m := range rm.members {
			go func() {
				for {
					if _, err := m.ws.read(); err != nil {
						return
					}
				}
			}()
			if cfg.heartbeat > 0 {
				go heartbeat(holdCtx, m.ws, cfg.heartbeat, &pings)
			}
		}
	}
	// Measure at the end of the hold: the steady state of idle connections,
	// once the handshakes' garbage has been collected.
	cpu0, _ := procstat.Read(cfg.pid)
	start := time.Now()
	<-holdCtx.Done()
	cpu1, _ := procstat.Read(cfg.pid)
	res.HoldCPU, res.HoldSeconds = cpu1.CPUSeconds-cpu0.CPUSeconds, time.Since(start).Seconds()
	res.Pings = pings.Load()
	hold()
	return res, nil
}

var pingFrame = []byte(`{"type":"ping"}`)

// heartbeat sends a ping every d, starting at a random point of the first
// interval (clients do not start in step), until ctx ends.
func heartbeat(ctx context.Context, ws *rawConn, d time.Duration, n *atomic.Int64) {
	t := time.NewTimer(time.Duration(rand.Int64N(int64(d))))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ws.write(pingFrame) != nil {
			return
		}
		n.Add(1)
		t.Reset(d)
	}
}
