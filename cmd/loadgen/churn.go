package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

type churnResult struct {
	Cycles, Errors int64
	Latency        percentiles // whole cycle
}

// runChurn runs room cycles (create, size-1 joins, one broadcast received
// by everyone, all close) in parallel workers for dur.
func runChurn(ctx context.Context, cfg config) (churnResult, error) {
	var res churnResult
	var cycles, errs atomic.Int64
	lat := &latencies{}
	deadline := time.Now().Add(cfg.duration)
	var wg sync.WaitGroup
	for w := range cfg.parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
				start := time.Now()
				if err := cycle(ctx, cfg, fmt.Sprintf("ch%d-%d-%d", w, n, start.UnixNano())); err != nil {
					errs.Add(1)
					continue
				}
				cycles.Add(1)
				lat.add([]time.Duration{time.Since(start)})
			}
		}()
	}
	wg.Wait()
	res.Cycles, res.Errors, res.Latency = cycles.Load(), errs.Load(), lat.percentiles()
	return res, nil
}

func cycle(ctx context.Context, cfg config, tag string) error {
	rm, err := makeRoom(ctx, cfg.url, cfg.size, tag)
	if err != nil {
		return err
	}
	defer rm.close()
	if err := rm.members[0].ws.Write(ctx, websocket.MessageText, []byte(`{"type":"send","data":"go"}`)); err != nil {
		return err
	}
	for _, m := range rm.members[1:] {
		if _, err := readUntil(ctx, m.ws, `"type":"message"`); err != nil {
			return err
		}
	}
	for _, m := range rm.members {
		m.ws.Close(websocket.StatusNormalClosure, "")
	}
	return nil
}

func readUntil(ctx context.Context, ws *websocket.Conn, marker string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			return nil, err
		}
		if containsBytes(b, marker) {
			return b, nil
		}
	}
}
