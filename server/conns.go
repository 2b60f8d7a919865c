package server

import (
	"sync"
	"time"

	"github.com/party-sockets/party-sockets/closecode"
	"github.com/party-sockets/party-sockets/internal/rate"
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
// is spent. releaseConn gives both back. a is the new socket's address
// (nil when it is not counted): at MAX_CONNS, an address with fewer
// sockets than another may take one of that address's (makeRoomFor),
// once its own cost is reserved.
func (s *Server) admitConn(a *addrConns) bool {
	full := s.wsLive.Add(1) > s.maxConns
	if full && (a == nil || s.wsLive.Load() > s.maxConns+crowdedSlack(s.maxConns)) {
		s.wsLive.Add(-1)
		return false
	}
	if !s.claim(ConnBytes) && !s.evictFor(ConnBytes) {
		s.wsLive.Add(-1)
		return false
	}
	if full && !s.makeRoomFor(a) {
		s.releaseConn()
		return false
	}
	return true
}

// evictFor ends rooms nobody is in, in rooms' eviction order, until n bytes
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

// crowdedSlack bounds the sockets counted past MAX_CONNS while the ones
// closed to make room for them are on their way out (each is cut within
// crowdCut): a sixteenth of it, and at least one.
func crowdedSlack(maxConns int64) int64 { return max(1, maxConns/16) }

// makeRoomFor is MAX_CONNS shared fairly between addresses. The machine's
// sockets are all taken; if another address holds more live sockets than
// a will with this one, one of them is closed with 1013 (EndCrowded, cut
// within a second) and a's new socket is let in meanwhile: the address
// that holds the most gives way, one socket at a time, until the
// addresses hold the same. So a few addresses (the review took 9 of
// MAX_CONNS_PER_IP=200 each) cannot keep the machine full against
// everyone else. Of that address's sockets the one closed is one that has
// not joined a room yet, or else its newest: the player who has played
// longest keeps their seat. It reports whether it closed one. Sockets not
// counted (exempt) neither take nor give way. The counts are the
// addresses' own (addrLimits), less the sockets already closed for room.
func (s *Server) makeRoomFor(a *addrConns) bool {
	s.crowdMu.Lock() // one pass at a time: two must not pick the same socket
	defer s.crowdMu.Unlock()
	if s.crowdPasses.Unlimited() {
		s.crowdPasses = rate.NewBucket(crowdPassesPerSec, crowdPassesPerSec)
	}
	if !s.crowdPasses.Take(time.Now()) {
		return false // a pass walks every socket: at most crowdPassesPerSec of them
	}
	top, most, mine := s.perAddr.mostHeld(a)
	if top == nil {
		return false
	}
	var victim *conn
	for _, c := range s.conns.list() {
		if c.addr != top || c.isClosed() {
			continue
		}
		if victim == nil || c.joinDone.Load() == victim.joinDone.Load() && c.opened > victim.opened ||
			!c.joinDone.Load() && victim.joinDone.Load() {
			victim = c
		}
	}
	if victim == nil {
		return false
	}
	// Counted as leaving before it is closed: its session may end (and
	// give the count back) before crowdOut returns.
	s.perAddr.evicting(top, 1)
	if !victim.crowdOut() {
		s.perAddr.evicting(top, -1)
		return false
	}
	if now := time.Now().UnixNano(); now >= s.crowdLogAfter.Load() {
		s.crowdLogAfter.Store(now + int64(time.Second))
		s.log.Warn("machine at MAX_CONNS: closed a socket of the address holding the most for one holding fewer "+
			"(one line a second at most)", "max_conns", s.maxConns, "its_sockets", most, "newcomers_sockets", mine)
	}
	return true
}

// crowdOut closes the connection to make room for another address's
// (makeRoomFor): what is queued is dropped, the close frame goes out, and
// the socket is cut at once (within crowdCut if the write blocks): the
// slot must be free for the next upgrade, not after a closing handshake
// the peer may never answer, or an attacker evicting its own sockets
// would keep crowdedSlack spent. False when it was closing already.
func (c *conn) crowdOut() bool {
	c.mu.Lock()
	if c.closed || c.finished {
		c.mu.Unlock()
		return false
	}
	c.closed = true
	c.crowded = true
	c.dropQueueLocked()
	c.mu.Unlock()
	c.setReason(closecode.EndCrowded)
	go func() {
		t := time.AfterFunc(crowdCut, func() { c.raw.Close() })
		defer t.Stop()
		c.raw.writeClose(int(closecode.EndCrowded.Code()), closecode.EndCrowded.Text())
		c.raw.Close()
	}()
	return true
}

// crowdPassesPerSec bounds makeRoomFor's passes, each a walk of every
// live socket: many addresses upgrading at the cap cannot make the machine
// walk its sockets for each; past it an upgrade is refused (503), as it was
// before the sockets were shared.
const crowdPassesPerSec = 200

// crowdCut bounds how long a socket closed to make room holds its slot
// when the close frame cannot be written at once.
const crowdCut = 100 * time.Millisecond

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
