package rooms

import "time"

// Reclaiming windows: eagerly, a room's age sweep; on demand, the
// machine-wide pass that frees vacant windows, oldest vacancy first, when
// the memory budget is short.

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

// ageBuckets is the resolution of "oldest vacancy first" across rooms.
const ageBuckets = 32

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
	rooms := m.list()
	now := m.cfg.Clock.Now()
	span := m.cfg.RecoverAge + m.ageSlack() + 1
	bucket := func(left time.Time) int {
		age := max(0, now.Sub(left))
		if age >= span {
			return ageBuckets - 1
		}
		return int(age / (span/ageBuckets + 1))
	}
	var byAge [ageBuckets]int64
	for _, r := range rooms {
		r.vacantByAge(bucket, &byAge)
	}
	cut, sum := 0, int64(0)
	for i := ageBuckets - 1; i >= 0; i-- {
		if sum += byAge[i]; sum >= need {
			cut = i
			break
		}
	}
	for _, r := range rooms {
		if freed += r.lapseVacantFrom(bucket, cut); freed >= need {
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

// reclaimBackoff is how long no machine-wide pass runs after one that
// could not free what it aimed at: a budget full of what cannot be freed
// must not make every frame pay for a pass.
const reclaimBackoff = 100 * time.Millisecond

// reclaimFor frees vacant windows across the machine so that pending
// bytes fit under the budget's ceiling, with a sixteenth of it to spare
// for the frames that follow, and reports whether it freed anything. It
// may be called with a room's lock held (ReclaimVacant waits for no
// room), not with the manager's. One pass at a time.
func (m *Manager) reclaimFor(pending int64) bool {
	if m.vacant.Load() <= 0 {
		return false
	}
	now := m.cfg.Clock.Now().UnixNano()
	if now < m.reclaimAfter.Load() || !m.reclaiming.CompareAndSwap(false, true) {
		return false
	}
	defer m.reclaiming.Store(false)
	b := m.cfg.Budget
	need := b.Used() + pending - b.Ceiling() + b.Ceiling()/16
	freed := m.ReclaimVacant(need)
	if freed < need {
		m.reclaimAfter.Store(now + int64(reclaimBackoff))
	}
	return freed > 0
}

// reserve takes n bytes from the budget, freeing the machine's vacant
// windows if it must, and reports whether it could.
func (m *Manager) reserve(n int64) bool {
	for !m.cfg.Budget.TryAdd(n) {
		if !m.reclaimFor(n) {
			return false
		}
	}
	return true
}

// reserveLocked takes n bytes from the budget, freeing this room's vacant
// windows first (oldest vacancy first, except's aside), then the
// machine's, and reports whether it could.
func (r *Room) reserveLocked(n int64, except *slot) bool {
	for !r.m.cfg.Budget.TryAdd(n) {
		if v := r.oldestVacantLocked(except); v != nil {
			r.lapseLocked(v)
			continue
		}
		if !r.m.reclaimFor(n) {
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
