package server

import (
	"sync"
	"time"

	"github.com/party-sockets/party-sockets/internal/wire"
	"github.com/party-sockets/party-sockets/rooms"
)

// The machine-wide view of live WebSockets: for the memory budget and
// the deadlines. HTTP connections that have not become WebSockets yet are
// pending.go's.

// sweepEvery is the resolution of the join and message deadlines.
const sweepEvery = 250 * time.Millisecond

// ConnBytes is what a live WebSocket costs the machine on its own,
// reserved in the memory budget before its upgrade and given back when it
// ends: its reader goroutine's stack, coder/websocket's Conn, our buffers,
// session, conn, heartbeat timer, meter and registry entry, and the first
// readBufBytes of every message it reads. Measured as RSS per idle joined
// socket (BENCHMARKS.md, idle: 14.4-15.9 KB; tests/abuse's
// TestSocketsCostTheBudget prints it), rounded up.
const ConnBytes = 16 << 10

// DefaultMaxConns is MAX_CONNS when it is not set: the sockets' own cost
// may take at most half the budget's limit, so that what they do (rooms,
// queues, messages, windows) always has the other half. With
// GOMEMLIMIT=200MiB (a 50 MiB budget) that is 1,600 sockets: more than
// the 1,000 of fly.toml's hard_limit, which counts only what comes through
// Fly's proxy.
func DefaultMaxConns(budgetLimit int64) int64 { return max(1, budgetLimit/2/ConnBytes) }

// errServerBusy refuses an upgrade the machine cannot take: MAX_CONNS live
// WebSockets, or a budget that cannot take another socket (HTTP 503).
var errServerBusy = wire.Define("Server busy")

// admitConn counts a WebSocket about to be accepted against MAX_CONNS and
// reserves its own cost in the budget; false (nothing taken) when either
// is spent. releaseConn gives both back.
func (s *Server) admitConn() bool {
	if s.wsLive.Add(1) > s.maxConns {
		s.wsLive.Add(-1)
		return false
	}
	if !s.claim(ConnBytes) && !s.evictFor(ConnBytes) {
		s.wsLive.Add(-1)
		return false
	}
	return true
}

// evictFor ends rooms nobody is in, longest empty first, until n bytes
// fit in the budget, and reports whether they do: a budget full of empty
// rooms (hosts gone, in their grace) must not keep every player out, who
// could otherwise make a room only by ending one of them (rooms'
// MAX_ROOMS eviction). It ends at most enough rooms for n.
func (s *Server) evictFor(n int64) bool {
	for range n/rooms.RoomBytes + 1 {
		if !s.rooms.EvictEmpty() {
			return false
		}
		if s.budget.TryAdd(n) {
			return true
		}
	}
	return false
}

func (s *Server) releaseConn() {
	s.budget.Add(-ConnBytes)
	s.wsLive.Add(-1)
}

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
// connections stamp (an atomic load per message instead of a timer),
// enforces the join and message-assembly deadlines, and starts a shedding
// pass while the budget is at its ceiling (what went stale since goes).
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
		if s.budget.Used() >= s.budget.Ceiling() {
			s.startShed() // what has gone stale goes (shed.go)
		}
	}
}

// ticks converts a duration to sweeper ticks, at least one.
func ticks(d time.Duration) int64 { return max(1, int64(d/sweepEvery)) }

// pending counts HTTP connections that have not (yet) become WebSockets:
// the ones still sending request headers are what a slow-header attack
// holds. Off Fly they count per socket address (IPv6 by /64); on Fly every
