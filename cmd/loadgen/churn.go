package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
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
	if err := rm.members[0].ws.write([]byte(`{"type":"send","data":"go"}`)); err != nil {
		return err
	}
	for _, m := range rm.members[1:] {
		m.ws.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			p, err := m.ws.read()
			if err != nil {
				return err
			}
			if containsBytes(p, `"type":"message"`) {
				break
			}
		}
	}
	for _, m := range rm.members {
		m.ws.writeFrame(0x8, []byte{0x03, 0xe8}) // close 1000
		m.ws.Close()
	}
	return nil
}
