package rooms

import (
	"sync"
	"time"
)

// A room's own cost, and the rooms nobody is in. A room is counted in the
// budget for what it is (RoomBytes) as well as for what it holds (slots,
// state, windows). A room with no live member (its host's grace, or a
// hand-off's room waiting for its members) is a candidate for eviction:
// at MAX_ROOMS, or when the budget cannot take another room, a create
// ends an empty room, as its grace would (room.closed with reason
// "evicted"; nobody is there to be told), rather than be refused.
//
// Which one goes first is what it costs a stranger to make (issue 20,
// second review, finding 4): a household whose Wi-Fi dropped has been
// empty longer than a stranger's fresh rooms, so "longest empty" alone
// ended the real game first. Empty rooms are ranked in tiers, each a
// list, longest empty first, and the lowest tier goes first:
//
//   - tierAlone: nobody but the host was ever in it. One create (and a
//     dropped socket) makes one.
//   - tierJoined: a second member joined, but two were not live together
//     for playedToKeep. A stranger lifts its room here with one more
//     upgrade and join; it proves little, and a game that blipped in its
//     first seconds competes with such rooms by how long it has been
//     empty.
//   - tierPlayed: two or more members were live together for
//     playedToKeep in all. A stranger pays two sockets held that long
//     per room, and a machine holds at most MAX_CONNS sockets, so it can
//     lift at most MAX_CONNS/2 rooms every playedToKeep, a few thousand
//     in a host grace, against a MAX_ROOMS of 20,000 (docs/limits.md).
//
// The set_state of a lone host does not lift its room: it costs nothing
// a create does not.

// RoomBytes is what a room costs on its own, beside its slots, state and
// windows: the Room, its map of keys, its grace timer, its entry in the
// manager's map. Measured as live heap per empty room in its grace: 1.1
// KB with one remembered slot (TestRoomCostCoversItsHeap); the review saw
// 1.8 KB in a server. Reserved before a create, given back when the room
// ends.
const RoomBytes = 2 << 10

// playedToKeep is how long two members must have been live together for
// a room to rank as a game played (tierPlayed): long enough that a
// stranger pays for it in sockets held, short enough that a household's
// first round has it.
const playedToKeep = 30 * time.Second

// The tiers of empty rooms, the first evicted first.
const (
	tierAlone  = iota // only the host was ever in it
	tierJoined        // another member joined; less than playedToKeep played
	tierPlayed        // two or more live together for playedToKeep
	tiers
)

// emptyRooms lists the rooms with no live member, by tier, each tier
// longest empty first.
type emptyRooms struct {
	mu    sync.Mutex // guards lists, and the emptyPrev, emptyNext and emptyTier of every room listed
	lists [tiers]struct{ head, tail *Room }
}

// tierLocked is the tier r ranks in while it is empty. r.mu must be held.
func (r *Room) tierLocked() int {
	switch {
	case r.played >= playedToKeep:
		return tierPlayed
	case r.next > 1: // an index was handed out beside the host's
		return tierJoined
	}
	return tierAlone
}

// notePlayLocked adds up the time two or more members are live together,
// given the live count before a change. r.mu must be held (or r
// unreachable).
func (r *Room) notePlayLocked(was int) {
	switch {
	case was < 2 && r.live >= 2:
		r.pairedAt = r.m.cfg.Clock.Now()
	case was >= 2 && r.live < 2:
		r.played += r.m.cfg.Clock.Now().Sub(r.pairedAt)
	}
}

// trackEmptyLocked lists r when it is open and nobody is in it, and takes
// it off the list otherwise. r.mu must be held (or r unreachable): r's
// place on the list changes only with its lock held, and so does what
// its tier is made of (its live members come first).
func (r *Room) trackEmptyLocked() {
	empty := r.live == 0 && !r.closed
	if empty == r.emptied {
		return
	}
	r.emptied = empty
	e := &r.m.empties
	e.mu.Lock()
	defer e.mu.Unlock()
	if empty {
		r.emptyTier = r.tierLocked()
		l := &e.lists[r.emptyTier]
		r.emptyPrev, r.emptyNext = l.tail, nil
		if l.tail != nil {
			l.tail.emptyNext = r
		} else {
			l.head = r
		}
		l.tail = r
		return
	}
	l := &e.lists[r.emptyTier]
	if r.emptyPrev != nil {
		r.emptyPrev.emptyNext = r.emptyNext
	} else {
		l.head = r.emptyNext
	}
	if r.emptyNext != nil {
		r.emptyNext.emptyPrev = r.emptyPrev
	} else {
		l.tail = r.emptyPrev
	}
	r.emptyPrev, r.emptyNext = nil, nil
}

// oldest returns up to n rooms in the order they are evicted: the lowest
// tier first, each tier longest empty first.
func (e *emptyRooms) oldest(n int) []*Room {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*Room
	for t := range e.lists {
		for r := e.lists[t].head; r != nil && len(out) < n; r = r.emptyNext {
			out = append(out, r)
		}
	}
	return out
}

// evictTries is how many rooms, in eviction order, an eviction looks at:
// one whose lock is taken (a hand-off is moving it) is passed over.
const evictTries = 4

// EvictEmpty ends the first empty room in eviction order (the lowest
// tier's longest empty), as a create would at MAX_ROOMS, and reports whether there was one: for the server,
// when the budget cannot take a new socket. It waits for no room, and
// must be called with neither the manager's lock nor a room's held.
func (m *Manager) EvictEmpty() bool { return m.evictEmpty() }

// evictEmpty ends the first empty room in eviction order and reports
// whether there was one. It waits for no room, and must be called with
// neither the manager's lock nor a room's held (ending a room takes both).
func (m *Manager) evictEmpty() bool {
	for _, r := range m.empties.oldest(evictTries) {
		if !r.mu.TryLock() {
			continue
		}
		if !r.closed && r.live == 0 {
			r.endLocked(EndEvicted)
			r.mu.Unlock()
			return true
		}
		r.mu.Unlock()
	}
	return false
}

// reserveRoom reserves a new room's cost (its own and its host's slot),
// ending an empty room (evictEmpty) if the budget cannot take it otherwise,
// and reports whether it could.
func (m *Manager) reserveRoom() bool {
	const cost = RoomBytes + SlotBytes
	return m.reserve(cost) || (m.evictEmpty() && m.reserve(cost))
}

// makePlace ends an empty room (evictEmpty) when the machine holds MAX_ROOMS,
// so that a create does not have to be refused.
func (m *Manager) makePlace() {
	if m.cfg.MaxRooms > 0 && m.Len() >= m.cfg.MaxRooms {
		m.evictEmpty()
	}
}
