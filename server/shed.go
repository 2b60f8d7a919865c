package server

import (
	"cmp"
	"slices"
	"time"

	"github.com/party-sockets/party-sockets/closecode"
)

// The memory budget's two ways to stay within its limit (docs/limits.md).
// What can be refused is reserved (claim): a new socket, the message being
// read as it grows, and in rooms a slot, a room, a state, a
// recovery frame. When a reservation would be refused, the caches go
// first (recovery windows: vacant, then the machine's oldest live
// frames), then what has gone stale (shedStale); only then is it refused.
// What can only be counted (frames owed to live members) is shed when it
// must be (shed): at the ceiling, only what has gone stale; over the
// limit, then queues that are falling behind, then the largest messages
// being read, and last the largest fresh queues. A healthy member's queue
// drains within milliseconds: it is never closed while anything else is
// left.

// staleAfter is how long a queue may go without draining (its oldest
// frame waiting), or a message take to arrive, before it has gone stale:
// what the budget takes back first when it is short. A healthy member
// drains its queue in milliseconds, and a 64 KiB message arrives within
// a tenth of a second at the default BYTES_PER_SEC.
const staleAfter = time.Second

// staleTicks is staleAfter in sweeper ticks.
var staleTicks = ticks(staleAfter)

// laggingTicks is how long, in sweeper ticks, a queue's oldest frame may
// wait before its queue is falling behind: what goes first, after what is
// stale, when the budget is over its limit (the queues that put it there
// have not had a second to go stale yet). A member that reads drains its
// queue within the tick its frames came in.
const laggingTicks = 2

// shedBackoff is how long no stale pass runs for a reservation after one
// that freed less than it was asked: a budget full of what is not stale
// must not make every refused reservation pay for a pass.
const shedBackoff = 100 * time.Millisecond

// claim reserves n bytes of the budget for a cost that may be refused (a
// new socket), freeing windows and then stale work when it must, and
// reports whether it could.
func (s *Server) claim(n int64) bool {
	b := s.budget
	if b.TryAdd(n) {
		return true
	}
	if short := b.Used() + n - b.Ceiling(); s.rooms.Reclaim(short) > 0 && b.TryAdd(n) {
		return true
	}
	s.shedStale(n)
	return b.TryAdd(n)
}

// readingShare is the part of the budget's limit that messages being read
// may hold together, beyond what each socket's own cost covers: the last
// fifth, which what can be refused (TryAdd, up to the ceiling) never
// takes. So half-sent messages can never fill the budget by themselves,
// nor take it past its limit together with everything that was reserved,
// and a healthy member's message is never refused for queues that are
// only counted: those are shed. A fifth of a 50 MiB budget is 160
// messages of 64 KiB at once.
const readingShare = 5

// reserveReading counts more bytes of c's message against the cap of
// messages being read (the limit over readingShare), and reports whether
// it could. To make room it closes messages that take too long (largest
// first), and then messages of addresses that hold more of the cap than
// c's and more than the floor (readingFloor; the address holding most
// first, and its largest message first): a few addresses that fill the
// cap with half-sent messages give way to an address that holds less,
// which is what a bystander does. A pass that frees too little holds the
// next ones back for shedBackoff, except for an address within its floor:
// a bystander is never refused because an attacker's grow failed first.
func (s *Server) reserveReading(c *conn, more int64) bool {
	limit := s.budget.Limit() / readingShare
	if s.tryReading(c, more, limit) {
		return true
	}
	floor := s.readingFloor()
	withinFloor := c.addr != nil && c.addr.reading.Load()+more <= floor
	if withinFloor || time.Now().UnixNano() >= s.shedAfter.Load() {
		s.shedMu.Lock()
		sv := s.survey()
		full := func() bool { return s.reading.Load()+more > limit }
		fits := func() bool { return !full() && c.addrFits(more) }
		for _, h := range sv.byMessage() {
			if fits() {
				break
			}
			if h.c.takeReading() > 0 {
				sv.closed[staleMessages]++
			}
		}
		if c.addr != nil {
			for _, h := range sv.byAddress(c.addr) {
				if !full() {
					break
				}
				if held := h.c.addr.reading.Load(); held > c.addr.reading.Load() && held > floor && h.c.takeReading() > 0 {
					sv.closed[messages]++
				}
			}
		}
		if !fits() {
			s.shedAfter.Store(time.Now().Add(shedBackoff).UnixNano())
		}
		sv.report(s, "messages being read at their cap: closed what went stale")
		s.shedMu.Unlock()
	}
	return s.tryReading(c, more, limit)
}

// tryReading counts more bytes of c's message in its address's share and
// in what all messages being read hold (at most limit), if both can take
// them; false, nothing counted, otherwise.
func (s *Server) tryReading(c *conn, more, limit int64) bool {
	if !c.addReading(more) {
		return false
	}
	if s.reading.Add(more) <= limit {
		return true
	}
	s.reading.Add(-more)
	c.addReading(-more)
	return false
}

// shedStale closes what has gone stale, largest first (queues that do not
// drain, with 4002; messages that take too long, with 1013), until want
// more bytes fit under the budget's ceiling; over its limit, queues that
// are falling behind too. It is what rooms call when a slot, a room or a
// state would be refused (rooms.SetStaleReclaimer), so it may run with a
// room's lock held: it takes only conn.mu and leaves.
func (s *Server) shedStale(want int64) {
	if time.Now().UnixNano() < s.shedAfter.Load() {
		return
	}
	s.shedMu.Lock()
	defer s.shedMu.Unlock()
	b := s.budget
	if b.Used()+want <= b.Ceiling() {
		return // freed meanwhile
	}
	sv := s.survey()
	to := b.Ceiling() - want
	sv.close(staleQueues, to)
	sv.close(staleMessages, to)
	if b.Over() {
		sv.close(laggingQueues, to)
	}
	if sv.need(to) > 0 {
		s.shedAfter.Store(time.Now().Add(shedBackoff).UnixNano())
	}
	sv.report(s, "memory budget short: closed what went stale")
}

// maybeShed starts a shedding pass when the budget is over its limit; one
// pass at a time, off the caller's goroutine (callers hold room locks).
// The sweeper starts one on every tick while the budget is at its
// ceiling.
func (s *Server) maybeShed() {
	if s.budget.Over() {
		s.startShed()
	}
}

func (s *Server) startShed() {
	if s.shedding.CompareAndSwap(false, true) {
		go s.shed()
	}
}

// shed is one pass. At the ceiling, what has gone stale goes until the
// budget is a sixteenth of its limit under the ceiling. Over the limit,
// the windows go first, then what is stale, then queues falling behind,
// then messages being read, largest first, and last the largest fresh
// queues (a member that stopped reading holds megabytes, a healthy one
// next to nothing), until it is back under nine tenths of its limit.
func (s *Server) shed() {
	defer s.shedding.Store(false)
	s.shedMu.Lock()
	defer s.shedMu.Unlock()
	b := s.budget
	if b.Used() < b.Ceiling() {
		return
	}
	target := b.Ceiling() - b.Limit()/16
	over := b.Over()
	if over {
		if freed := s.rooms.Reclaim(b.Used() - target); freed > 0 {
			s.log.Warn("memory budget exceeded: freed recovery windows", "freed_bytes", freed,
				"budget_used", b.Used(), "budget_limit", b.Limit())
		}
	}
	sv := s.survey()
	sv.close(staleQueues, target)
	sv.close(staleMessages, target)
	if over {
		to := b.Limit() / 10 * 9
		sv.close(laggingQueues, to)
		sv.close(messages, to)
		sv.close(largest, to)
	}
	sv.report(s, "memory budget short: shed")
}

// holding is what one connection holds that shedding can free.
type holding struct {
	c       *conn
	share   int64 // what its queue accounts for in the budget (queueShare)
	reading int64 // what the message being read has reserved
	age     int64 // sweeper ticks its oldest queued frame has waited
	slow    bool  // its message began staleAfter ago or more
}

// survey is one look at every connection, for one pass.
type survey struct {
	s       *Server
	list    []holding
	leaving int64 // what connections closing will give back once their socket is cut
	closed  [5]int
}

// need is how much more the pass must free to bring the budget to the
// bytes to, counting what is on its way out as gone.
func (sv *survey) need(to int64) int64 { return sv.s.budget.Used() - sv.leaving - to }

// What a pass closes, in the order it closes them.
type victims uint8

const (
	staleQueues   victims = iota // oldest frame waiting over staleTicks
	staleMessages                // begun over staleTicks ago
	laggingQueues                // oldest frame waiting over laggingTicks
	messages                     // any message being read, the largest first
	largest                      // any queue, the largest first: a fresh one goes only when nothing else is left
)

func (s *Server) survey() *survey {
	now := s.tick.Load()
	sv := &survey{s: s}
	for _, c := range s.conns.list() {
		h := holding{c: c, reading: c.reading.Load()}
		var closing bool
		h.share, h.age, closing = c.queueShare(now)
		if start := c.msgStart.Load(); start != 0 && now-(start-1) > staleTicks {
			h.slow = true
		}
		if closing {
			sv.leaving += h.share
			h.share = 0
		}
		if h.share > 0 || h.reading > 0 {
			sv.list = append(sv.list, h)
		}
	}
	return sv
}

// size is what closing h frees, as which counts it: 0 when which does not
// name it.
func (h *holding) size(which victims) int64 {
	switch which {
	case staleQueues:
		if h.age > staleTicks {
			return h.share
		}
	case laggingQueues:
		if h.age > laggingTicks {
			return h.share
		}
	case staleMessages:
		if h.slow {
			return h.reading
		}
	case messages:
		return h.reading
	case largest:
		return h.share
	}
	return 0
}

// close closes the connections that hold what which names, largest
// first, until the budget is down to the bytes to (what is on its way out
// counted as gone).
func (sv *survey) close(which victims, to int64) {
	var picked []*holding
	for i := range sv.list {
		if sv.list[i].size(which) > 0 {
			picked = append(picked, &sv.list[i])
		}
	}
	slices.SortFunc(picked, func(a, b *holding) int { return cmp.Compare(b.size(which), a.size(which)) })
	for _, h := range picked {
		if sv.need(to) <= 0 {
			return
		}
		if which == staleMessages || which == messages {
			if h.c.takeReading() > 0 {
				h.reading = 0
				sv.closed[which]++
			}
			continue
		}
		before := sv.s.budget.Used()
		if !h.c.shed() {
			continue
		}
		// The queue is given back at once; the batch being written, once
		// the socket is cut (within a second).
		if rest := h.share - (before - sv.s.budget.Used()); rest > 0 {
			sv.leaving += rest
		}
		h.share = 0
		sv.closed[which]++
	}
}

// byMessage is the connections whose message being read has gone stale,
// the largest first.
func (sv *survey) byMessage() []*holding {
	var picked []*holding
	for i := range sv.list {
		if sv.list[i].size(staleMessages) > 0 {
			picked = append(picked, &sv.list[i])
		}
	}
	slices.SortFunc(picked, func(a, b *holding) int { return cmp.Compare(b.reading, a.reading) })
	return picked
}

// byAddress is the connections of other addresses than mine whose
// message being read holds part of the cap: the address holding most
// first, and within one address the largest message first.
func (sv *survey) byAddress(mine *addrConns) []*holding {
	type entry struct {
		h    *holding
		addr int64 // what its address held as the pass began
	}
	var picked []entry
	for i := range sv.list {
		if h := &sv.list[i]; h.reading > 0 && h.c.addr != nil && h.c.addr != mine {
			picked = append(picked, entry{h, h.c.addr.reading.Load()})
		}
	}
	slices.SortFunc(picked, func(a, b entry) int {
		if c := cmp.Compare(b.addr, a.addr); c != 0 {
			return c
		}
		return cmp.Compare(b.h.reading, a.h.reading)
	})
	out := make([]*holding, len(picked))
	for i, e := range picked {
		out[i] = e.h
	}
	return out
}

func (sv *survey) report(s *Server, msg string) {
	if sv.closed == [5]int{} {
		return
	}
	// One line a pass, not one a socket: an attack closes hundreds.
	s.log.Warn(msg, "stale_queues", sv.closed[staleQueues], "stale_messages", sv.closed[staleMessages],
		"lagging_queues", sv.closed[laggingQueues], "messages", sv.closed[messages], "largest_queues", sv.closed[largest],
		"budget_used", s.budget.Used(), "budget_limit", s.budget.Limit())
}

// queueShare is what the connection's queue accounts for in the budget:
// what it counts itself (its own frames, its entries) and its share of
// every broadcast frame it holds (the frame's cost over its holders, so
// that the shares of a frame's holders add up to its cost, and shedding
// all the members that stopped reading frees it); with how many ticks its
// oldest frame has waited as of tick now, and whether the connection is
// already closing.
func (c *conn) queueShare(now int64) (share, age int64, closing bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.inflight > 0:
		age = now - c.batchSince
	case len(c.queue) > 0:
		age = now - c.queueSince
	}
	share = int64(c.queueCharge + c.inflightCharge)
	for _, entries := range [2][]queued{c.queue, c.batch} {
		for i := range entries {
			if sh := entries[i].sh; sh != nil {
				share += sh.Share()
			}
		}
	}
	return share, age, c.closed
}

// takenReading marks a message whose reservation the shedder took back:
// the reader refuses it.
const takenReading = -1

// takeReading takes back what the message being read has reserved and
// refuses it: the socket is closed with 1013, and cut within a second.
// It returns what it freed (0 when the message holds nothing beyond the
// connection's own cost).
func (c *conn) takeReading() int64 {
	for {
		v := c.reading.Load()
		if v <= 0 {
			return 0
		}
		if c.reading.CompareAndSwap(v, takenReading) {
			c.s.budget.Add(-v)
			c.s.reading.Add(-v)
			c.addReading(-v)
			c.setReason(closecode.EndBusy)
			go c.refuseMessage()
			return v
		}
	}
}

// refuseMessage closes the socket whose message the shedder took, from
// another goroutine than its reader: what is queued is dropped, the close
// frame goes out, and the socket is cut a second later whatever the peer
// does (its reader, stuck in the message, returns then).
func (c *conn) refuseMessage() {
	c.mu.Lock()
	c.closed = true
	c.dropQueueLocked()
	c.mu.Unlock()
	time.AfterFunc(time.Second, func() { c.raw.Close() })
	c.raw.writeClose(int(closecode.EndBusy.Code()), closecode.EndBusy.Text())
}
