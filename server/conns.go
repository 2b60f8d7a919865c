package server

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// The machine-wide view of live WebSockets: for the memory budget and
// the deadlines. HTTP connections that have not become WebSockets yet are
// pending.go's.

// sweepEvery is the resolution of the join and message deadlines.
const sweepEvery = 250 * time.Millisecond

// registry holds every live WebSocket connection.
type registry struct {
	mu  sync.Mutex // guards all
	all map[*conn]struct{}
}

func (g *registry) add(c *conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.all[c] = struct{}{}
}

func (g *registry) remove(c *conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.all, c)
}

func (g *registry) list() []*conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*conn, 0, len(g.all))
	for c := range g.all {
		out = append(out, c)
	}
	return out
}

// sweep runs until the server shuts down: it advances the coarse clock that
// connections stamp (an atomic load per message instead of a timer), and
// enforces the join and message-assembly deadlines.
func (s *Server) sweep() {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-s.baseCtx.Done():
			return
		case <-t.C:
		}
		now := s.tick.Add(1)
		for _, c := range s.conns.list() {
			c.checkDeadlines(now, s.joinTicks, s.msgTicks)
		}
	}
}

// ticks converts a duration to sweeper ticks, at least one.
func ticks(d time.Duration) int64 { return max(1, int64(d/sweepEvery)) }

// maybeShed starts a shedding pass when the budget is exceeded; one pass at
// a time, off the caller's goroutine (callers hold room locks).
func (s *Server) maybeShed() {
	if s.budget.Over() && s.shedding.CompareAndSwap(false, true) {
		go s.shed()
	}
}

// shed brings the budget back under nine tenths of its limit. Vacant
// slots' recovery windows go first, oldest vacancy first: nobody is
// connected to them. Then the connections that hold the most queued
// bytes, largest first. Readers that stopped reading hold the most;
// healthy members hold next to none, so they stay. Connections already
// closing still hold their in-flight batch until their socket is cut:
// that memory is on its way out and is not shed twice.
func (s *Server) shed() {
	defer s.shedding.Store(false)
	target := s.budget.Limit() / 10 * 9
	if over := s.budget.Used() - target; over > 0 {
		if freed := s.rooms.ReclaimVacant(over); freed > 0 {
			s.log.Warn("memory budget exceeded: freed vacant slots' recovery windows", "freed_bytes", freed,
				"budget_used", s.budget.Used(), "budget_limit", s.budget.Limit())
		}
	}
	type held struct {
		c *conn
		n int
	}
	var list []held
	var leaving int64
	for _, c := range s.conns.list() {
		n, closing := c.held()
		switch {
		case closing:
			leaving += int64(n)
		case n > 0:
			list = append(list, held{c, n})
		}
	}
	slices.SortFunc(list, func(a, b held) int { return cmp.Compare(b.n, a.n) })
	remaining := s.budget.Used() - leaving
	for _, h := range list {
		if remaining <= target {
			return
		}
		if h.c.shed() {
			remaining -= int64(h.n)
			s.log.Warn("memory budget exceeded: closing the largest send queue", "queued_bytes", h.n,
				"budget_used", s.budget.Used(), "budget_limit", s.budget.Limit())
		}
	}
}
