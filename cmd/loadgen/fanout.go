package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// fanoutResult is what the fan-out shapes report.
type fanoutResult struct {
	Sent, Delivered, Expected int64
	Lost, Reordered, Errors   int64
	Latency                   percentiles
	// SendLag is how late the tool itself sent (actual minus scheduled send
	// time, open loop): latency counts from the schedule, so this part of it
	// is the tool's, not the server's.
	SendLag percentiles
}

// runFanoutMeasured builds rooms×size members; every member broadcasts
// either at rate msg/s (open loop, latency from the scheduled time) or
// keeping window messages in flight (closed loop: in flight = sent but not
// yet seen by the next member of the room). It sends for cfg.duration,
// then waits for stragglers.
func runFanoutMeasured(ctx context.Context, cfg config, begin, end func()) (fanoutResult, time.Duration, error) {
	var res fanoutResult
	rooms := make([]*room, 0, cfg.rooms)
	defer func() {
		for _, rm := range rooms {
			rm.close()
		}
	}()
	for i := range cfg.rooms {
		rm, err := makeRoom(ctx, cfg.url, cfg.size, fmt.Sprintf("lg%d-%d", time.Now().UnixNano(), i))
		if err != nil {
			return res, 0, fmt.Errorf("room %d: %w", i, err)
		}
		for j := len(rm.members) - cfg.stall; j < len(rm.members); j++ {
			rm.members[j].stalled = true
		}
		rooms = append(rooms, rm)
	}
	lat, lag := &latencies{}, &latencies{}
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	var readers sync.WaitGroup
	active := healthyMembers(rooms)
	for _, m := range active {
		readers.Add(1)
		go func() { defer readers.Done(); m.readLoop(readCtx, lat) }()
	}
	begin()
	start := time.Now()
	deadline := start.Add(cfg.duration)
	var senders sync.WaitGroup
	var errs sync.Map
	for _, m := range active {
		senders.Add(1)
		go func() {
			defer senders.Done()
			var err error
			if cfg.window > 0 {
				err = m.sendClosedLoop(cfg.window, cfg.payload, deadline)
			} else {
				err = m.sendOpenLoop(cfg.rate, cfg.payload, start, deadline, lag)
			}
			if err != nil {
				errs.Store(m, err)
			}
		}()
	}
	senders.Wait()
	sendWindow := time.Since(start)
	// Wait for every expected delivery, bounded by the drain time.
	drainUntil := time.Now().Add(cfg.drain)
	for time.Now().Before(drainUntil) && delivered(rooms) < expected(rooms) {
		time.Sleep(10 * time.Millisecond)
	}
	end()
	stopReading()
	for _, rm := range rooms {
		rm.close()
	}
	readers.Wait()
	for _, rm := range rooms {
		for _, m := range rm.members {
			res.Sent += m.sent
			res.Lost += m.lost.Load()
			res.Reordered += m.reorder.Load()
		}
	}
	res.Delivered, res.Expected = delivered(rooms), expected(rooms)
	res.Lost += res.Expected - res.Delivered - res.Lost
	errs.Range(func(any, any) bool { res.Errors++; return true })
	res.Latency = lat.percentiles()
	res.SendLag = lag.percentiles()
	return res, sendWindow, nil
}

// healthyMembers are the members that read and send (not stalled).
func healthyMembers(rooms []*room) []*member {
	var out []*member
	for _, rm := range rooms {
		for _, m := range rm.members {
			if !m.stalled {
				out = append(out, m)
			}
		}
	}
	return out
}

func delivered(rooms []*room) (n int64) {
	for _, rm := range rooms {
		for _, m := range rm.members {
			n += m.got.Load()
		}
	}
	return n
}

// expected: every message reaches every other healthy member of its room
// (stalled members are closed by the server, as they should be).
func expected(rooms []*room) (n int64) {
	for _, rm := range rooms {
		var sent int64
		for _, m := range rm.members {
			sent += m.sentCount()
		}
		n += sent * int64(rm.healthy()-1)
	}
	return n
}

func (m *member) sentCount() int64 { return m.sentAtomic.Load() }

func (m *member) sendOpenLoop(rate float64, size int, start, deadline time.Time, lag *latencies) error {
	interval := time.Duration(float64(time.Second) / rate)
	// Spread members over the first interval so they do not send in lockstep.
	next := start.Add(time.Duration(m.index) * interval / time.Duration(len(m.room.members)+1))
	buf := make([]byte, 0, 128)
	lags := make([]time.Duration, 0, 64)
	defer func() { lag.add(lags) }()
	for next.Before(deadline) {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		if lags = append(lags, time.Since(next)); len(lags) == cap(lags) {
			lag.add(lags)
			lags = lags[:0]
		}
		buf = payload(buf, m.sent, next, size)
		if err := m.ws.write(buf); err != nil {
			return err
		}
		m.sent++
		m.sentAtomic.Store(m.sent)
		next = next.Add(interval)
	}
	return nil
}

func (m *member) sendClosedLoop(window, size int, deadline time.Time) error {
	next := m.room.nextHealthy(m.index) // sees our messages
	buf := make([]byte, 0, 128)
	for time.Now().Before(deadline) {
		if m.sent-next.witness.Load() >= int64(window) {
			if next.dead.Load() {
				return fmt.Errorf("witness closed")
			}
			time.Sleep(50 * time.Microsecond)
			continue
		}
		buf = payload(buf, m.sent, time.Now(), size)
		if err := m.ws.write(buf); err != nil {
			return err
		}
		m.sent++
		m.sentAtomic.Store(m.sent)
	}
	return nil
}
