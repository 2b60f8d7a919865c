package main

import (
	"context"
	"fmt"
	"time"
)

type idleResult struct {
	Connections int
	Rooms       int
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
	// pings and are not closed as dead peers.
	for _, rm := range rooms {
		for _, m := range rm.members {
			go func() {
				for {
					if _, err := m.ws.read(); err != nil {
						return
					}
				}
			}()
		}
	}
	// Measure at the end of the hold: the steady state of idle connections,
	// once the handshakes' garbage has been collected.
	select {
	case <-ctx.Done():
	case <-time.After(cfg.duration):
	}
	hold()
	return res, nil
}
