package rooms

import "sync"

// A room's own cost, and the rooms nobody is in. A room is counted in the
// budget for what it is (RoomBytes) as well as for what it holds (slots,
// state, windows). A room with no live member (its host's grace, or a
// hand-off's room waiting for its members) is a candidate for eviction:
// at MAX_ROOMS, or when the budget cannot take another room, a create
// ends the room that has been empty longest, as its grace would
// (room.closed with reason "evicted"; nobody is there to be told), rather
// than be refused.

// RoomBytes is what a room costs on its own, beside its slots, state and
// windows: the Room, its map of keys, its grace timer, its entry in the
// manager's map. Measured as live heap per empty room in its grace: 1.1
// KB with one remembered slot (TestRoomCostCoversItsHeap); the review saw
// 1.8 KB in a server. Reserved before a create, given back when the room
// ends.
const RoomBytes = 2 << 10

// emptyRooms lists the rooms with no live member, longest empty first.
type emptyRooms struct {
	mu         sync.Mutex // guards head, tail, and the emptyPrev and emptyNext of every room listed
	head, tail *Room
}

// trackEmptyLocked lists r when it is open and nobody is in it, and takes
// it off the list otherwise. r.mu must be held (or r unreachable): r's
// place on the list changes only with its lock held.
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
		r.emptyPrev, r.emptyNext = e.tail, nil
		if e.tail != nil {
			e.tail.emptyNext = r
		} else {
			e.head = r
		}
		e.tail = r
		return
	}
	if r.emptyPrev != nil {
		r.emptyPrev.emptyNext = r.emptyNext
	} else {
		e.head = r.emptyNext
	}
	if r.emptyNext != nil {
		r.emptyNext.emptyPrev = r.emptyPrev
	} else {
		e.tail = r.emptyPrev
	}
	r.emptyPrev, r.emptyNext = nil, nil
}

// oldest returns up to n rooms, longest empty first.
func (e *emptyRooms) oldest(n int) []*Room {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*Room
	for r := e.head; r != nil && len(out) < n; r = r.emptyNext {
		out = append(out, r)
	}
	return out
}

// evictTries is how many of the longest-empty rooms an eviction looks at:
// one whose lock is taken (a hand-off is moving it) is passed over.
const evictTries = 4

// EvictEmpty ends the room that has been empty longest, as a create
// would at MAX_ROOMS, and reports whether there was one: for the server,
// when the budget cannot take a new socket. It waits for no room, and
// must be called with neither the manager's lock nor a room's held.
func (m *Manager) EvictEmpty() bool { return m.evictEmpty() }

// evictEmpty ends the room that has been empty longest and reports
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
// ending the longest-empty room if the budget cannot take it otherwise,
// and reports whether it could.
func (m *Manager) reserveRoom() bool {
	const cost = RoomBytes + SlotBytes
	return m.reserve(cost) || (m.evictEmpty() && m.reserve(cost))
}

// makePlace ends the longest-empty room when the machine holds MAX_ROOMS,
// so that a create does not have to be refused.
func (m *Manager) makePlace() {
	if m.cfg.MaxRooms > 0 && m.Len() >= m.cfg.MaxRooms {
		m.evictEmpty()
	}
}
