package rooms

import "time"

// Reclaiming windows: eagerly, a room's age sweep; on demand, the
// machine-wide pass that frees vacant windows, oldest vacancy first, then
// live windows' oldest frames, when the memory budget is short.

// ageSlack is how late a room's age sweep may run after something in it
// came of age: sweeps of a busy room are at least this far apart, so a
// burst of leaves costs one sweep, not one each.
func (m *Manager) ageSlack() time.Duration { return m.cfg.RecoverAge / 16 }

// armAgeLocked makes sure the room's age sweep runs by due (plus the
// slack). Something came due earlier is already covered: the sweep finds
// the next due itself.
func (r *Room) armAgeLocked(due time.Time) {
	if r.ageTimer != nil && !r.ageAt.After(due) {
		return
	}
	if r.ageTimer != nil {
		r.ageTimer.Stop()
	}
	r.ageTurn++
	turn := r.ageTurn
	now := r.m.cfg.Clock.Now()
	at := max(due.Sub(now), r.m.ageSlack())
	r.ageAt = now.Add(at)
	r.ageTimer = r.m.cfg.Clock.AfterFunc(at, func() { r.ageSweep(turn) })
}

func (r *Room) cancelAgeLocked() {
	r.ageTurn++
	if r.ageTimer != nil {
		r.ageTimer.Stop()
		r.ageTimer = nil
	}
}

// ageSweep lapses every slot vacant for the window's age and drops every
// frame older than it, then arms itself for what comes due next. Its work
// is one look at each slot and the frames it frees.
func (r *Room) ageSweep(turn int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || turn != r.ageTurn {
		return
	}
	r.ageTimer = nil
	now := r.m.cfg.Clock.Now()
	age := r.m.cfg.RecoverAge
	var next time.Time
	due := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for i := range r.slots {
		s := &r.slots[i]
		if s.member == nil && s.numbering() {
			if now.Sub(s.leftAt) >= age {
				r.lapseLocked(s)
				continue
			}
			due(s.leftAt.Add(age))
		}
		r.trimLocked(s, now, 0, 0)
		if len(s.win.entries) > 0 {
			due(s.win.entries[0].at.Add(age))
		}
	}
	if !next.IsZero() {
		r.armAgeLocked(next)
	}
}

// ageBuckets is the resolution of "oldest first" across rooms.
const ageBuckets = 32

// ageBucket returns the bucket of a time's age as of now: 0 the youngest,
// ageBuckets-1 anything a window's age or more.
func (m *Manager) ageBucket(now time.Time) func(time.Time) int {
	span := m.cfg.RecoverAge + m.ageSlack() + 1
	return func(t time.Time) int {
		age := max(0, now.Sub(t))
		if age >= span {
			return ageBuckets - 1
		}
		return int(age / (span/ageBuckets + 1))
	}
}

// cutFor is the youngest bucket such that it and every older one together
// hold need bytes (0 when all of them do not).
func cutFor(byAge *[ageBuckets]int64, need int64) int {
	sum := int64(0)
	for i := ageBuckets - 1; i >= 0; i-- {
		if sum += byAge[i]; sum >= need {
			return i
		}
	}
	return 0
}

// Reclaim frees recovery windows on this machine until need bytes are
// freed or none is left, and returns what it freed: vacant slots' first,
// oldest vacancy first (ReclaimVacant), then the oldest frames of live
// slots' windows, machine-wide oldest first (reclaimLive). Windows are a
// cache: what would be refused is given room by them first. It waits for
// no room (it may be called with a room's lock held) and for no other
// pass.
func (m *Manager) Reclaim(need int64) int64 {
	m.reclaimMu.Lock()
	defer m.reclaimMu.Unlock()
	return m.reclaimLocked(need)
}

// reclaimLocked is Reclaim with m.reclaimMu held.
func (m *Manager) reclaimLocked(need int64) int64 {
	freed := m.ReclaimVacant(need)
	if freed < need {
		freed += m.reclaimLive(need - freed)
	}
	return freed
}

// ReclaimVacant frees windows of vacant slots on this machine, oldest
// vacancy first, until need bytes are freed or none is left, and returns
// what it freed. Those slots lapse. Two passes, no list: the first adds
// up vacant windows by the age of their vacancy, the second frees the
// oldest ages that cover need. It never waits for a room: one whose lock
// is taken is passed over (a hand-off holds a room's lock for its whole
// transfer, and a busy room frees its own vacant windows as it keeps
// frames), so it may be called with another room's lock held.
func (m *Manager) ReclaimVacant(need int64) (freed int64) {
	if need <= 0 || m.vacant.Load() <= 0 {
		return 0
	}
	return m.reclaimByAge(need, (*Room).vacantByAge, (*Room).lapseVacantFrom)
}

// reclaimByAge is the two passes: count adds up a room's reclaimable
// bytes by age bucket, free frees a room's bytes of bucket cut or older;
// rooms are freed in turn until need is met.
func (m *Manager) reclaimByAge(need int64, count func(*Room, func(time.Time) int, *[ageBuckets]int64),
	free func(*Room, func(time.Time) int, int) int64) (freed int64) {
	rooms := m.list()
	bucket := m.ageBucket(m.cfg.Clock.Now())
	var byAge [ageBuckets]int64
	for _, r := range rooms {
		count(r, bucket, &byAge)
	}
	cut := cutFor(&byAge, need)
	for _, r := range rooms {
		if freed += free(r, bucket, cut); freed >= need {
			break
		}
	}
	return freed
}

func (r *Room) vacantByAge(bucket func(time.Time) int, byAge *[ageBuckets]int64) {
	if !r.mu.TryLock() {
		return
	}
	defer r.mu.Unlock()
	if r.vacantCost <= 0 {
		return
	}
	for i := range r.slots {
		if s := &r.slots[i]; s.member == nil && s.win.cost > 0 {
			byAge[bucket(s.leftAt)] += int64(s.win.cost)
		}
	}
}

// lapseVacantFrom lapses the vacant slots with a window whose vacancy is
// in bucket cut or older, and returns what that freed.
func (r *Room) lapseVacantFrom(bucket func(time.Time) int, cut int) (freed int64) {
	if !r.mu.TryLock() {
		return 0
	}
	defer r.mu.Unlock()
	if r.vacantCost <= 0 {
		return 0
	}
	for i := range r.slots {
		if s := &r.slots[i]; s.member == nil && s.win.cost > 0 && bucket(s.leftAt) >= cut {
			freed += int64(s.win.cost)
			r.lapseLocked(s)
		}
	}
	return freed
}

// reclaimLive drops the oldest frames of live slots' windows on this
// machine, oldest first across rooms, until need bytes are freed or none
// is left, and returns what it freed. As ReclaimVacant, two passes by
// age, passing over rooms whose lock is taken. A window loses frames from
// its oldest end only, so it never holds a hole: a rejoin whose since+1
// it no longer holds is answered recovered: false, with the state.
func (m *Manager) reclaimLive(need int64) (freed int64) {
	if need <= 0 {
		return 0
	}
	return m.reclaimByAge(need, (*Room).liveByAge, (*Room).trimLiveFrom)
}

func (r *Room) liveByAge(bucket func(time.Time) int, byAge *[ageBuckets]int64) {
	if !r.mu.TryLock() {
		return
	}
	defer r.mu.Unlock()
	if r.winCost-r.vacantCost <= 0 {
		return
	}
	for i := range r.slots {
		if s := &r.slots[i]; s.member != nil {
			for _, e := range s.win.entries {
				byAge[bucket(e.at)] += int64(allocBytes(cap(e.frame)))
			}
		}
	}
}

// trimLiveFrom drops, from each live slot's window, the oldest frames
// whose age is in bucket cut or older, and returns what that freed.
func (r *Room) trimLiveFrom(bucket func(time.Time) int, cut int) (freed int64) {
	if !r.mu.TryLock() {
		return 0
	}
	defer r.mu.Unlock()
	if r.winCost-r.vacantCost <= 0 {
		return 0
	}
	for i := range r.slots {
		s := &r.slots[i]
		if s.member == nil {
			continue
		}
		before := s.win.cost
		for len(s.win.entries) > 0 && bucket(s.win.entries[0].at) >= cut {
			r.popLocked(s)
		}
		freed += int64(before - s.win.cost)
	}
	return freed
}

// reclaimBackoff is how long no machine-wide pass runs for a window's
// frame after one that could not free what it aimed at: a budget full of
// what cannot be freed must not make every frame pay for a pass.
const reclaimBackoff = 100 * time.Millisecond

// reclaimFor frees windows across the machine (Reclaim) so that pending
// bytes fit under the budget's ceiling, with a sixteenth of it to spare
// for the frames that follow, and reports whether it freed anything. It
// may be called with a room's lock held (Reclaim waits for no room), not
// with the manager's. For a window's frame (cache) it runs at most one
// pass at a time and backs off after a pass that fell short; for what
// holds a room together (a slot, a room, a state) it waits for the pass
// running and always tries.
func (m *Manager) reclaimFor(pending int64, cache bool) bool {
	if cache {
		now := m.cfg.Clock.Now().UnixNano()
		if now < m.reclaimAfter.Load() || !m.reclaimMu.TryLock() {
			return false
		}
	} else {
		m.reclaimMu.Lock()
	}
	defer m.reclaimMu.Unlock()
	b := m.cfg.Budget
	need := b.Used() + pending - b.Ceiling() + b.Ceiling()/16
	freed := m.reclaimLocked(need)
	if cache && freed < need {
		m.reclaimAfter.Store(m.cfg.Clock.Now().UnixNano() + int64(reclaimBackoff))
	}
	return freed > 0
}

// reserve takes n bytes from the budget for what holds a room together,
// and reports whether it could: when the budget is short, windows are
// freed first (reclaimFor), then what the server holds for work gone
// stale (SetStaleReclaimer).
func (m *Manager) reserve(n int64) bool {
	b := m.cfg.Budget
	if b.TryAdd(n) {
		return true
	}
	if m.reclaimFor(n, false) && b.TryAdd(n) {
		return true
	}
	if f := m.staleReclaimer.Load(); f != nil {
		(*f)(n)
	}
	return b.TryAdd(n)
}

// SetStaleReclaimer gives the manager what frees the server's work gone
// stale (a send queue that does not drain, a message that takes too long
// to arrive): when a slot, a room or a state would be refused after the
// windows, it is called with the bytes wanted, and makes room for them if
// it can. It is called with a room's lock held: it must not block on one.
func (m *Manager) SetStaleReclaimer(f func(want int64)) { m.staleReclaimer.Store(&f) }

// reserveLocked takes n bytes from the budget for what holds a room
// together (a new slot, a state), freeing this room's vacant windows
// first (oldest vacancy first), then the machine's windows and stale
// work (reserve), and reports whether it could.
func (r *Room) reserveLocked(n int64) bool {
	for !r.m.cfg.Budget.TryAdd(n) {
		if v := r.oldestVacantLocked(nil); v != nil {
			r.lapseLocked(v)
			continue
		}
		return r.m.reserve(n)
	}
	return true
}

// reserveFrameLocked takes n bytes from the budget for a window's frame,
// freeing this room's vacant windows first (oldest vacancy first,
// except's aside), then the machine's windows, and reports whether it
// could. A frame never costs anyone else more than windows.
func (r *Room) reserveFrameLocked(n int64, except *slot) bool {
	for !r.m.cfg.Budget.TryAdd(n) {
		if v := r.oldestVacantLocked(except); v != nil {
			r.lapseLocked(v)
			continue
		}
		if !r.m.reclaimFor(n, true) {
			return false
		}
	}
	return true
}

// list returns every room held here.
func (m *Manager) list() []*Room {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Room, 0, len(m.rooms))
	for _, r := range m.rooms {
		out = append(out, r)
	}
	return out
}
