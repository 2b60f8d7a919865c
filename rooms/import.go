package rooms

import (
	"bytes"
	enchex "encoding/hex"
	"encoding/json"
	"time"

	"github.com/party-sockets/party-sockets/internal/wire"
)

// Import takes a room handed over by a sibling. It refuses a code held
// here by another room (ErrCodeTaken) and takes a retry of a transfer
// whose room lives here as done; a transfer whose room has ended here, or
// that its sender aborted, is refused (ErrTransferDone,
// ErrTransferAborted; transfers.go). Every slot arrives vacant: its owner
// reconnects. The room is checked whole before anything changes: a forged
// snapshot can make a room nobody knows the clientIds of, but never touch
// one that exists.
//
// The room costs the budget what it would had it been made here: its
// windows are filled by keepLocked, as a room's own are.
func (m *Manager) Import(s *Snapshot) error {
	if err := m.checkSnapshot(s); err != nil {
		return err
	}
	now := m.cfg.Clock.Now()
	m.mu.Lock()
	err := m.admitLocked(s, now)
	m.mu.Unlock()
	if err != nil {
		return errOrRetry(err)
	}
	if b := m.cfg.Budget; b != nil && b.Used()+snapshotCost(s) > b.Ceiling() {
		return ErrOverBudget
	}
	r, wasLive := m.buildRoom(s, now)
	// r is not in the map yet: nobody else can hold or wait for its lock.
	// Room before manager is the lock order.
	r.mu.Lock()
	defer r.mu.Unlock()
	m.mu.Lock()
	if err := m.admitLocked(s, now); err != nil {
		m.mu.Unlock()
		r.releaseLocked() // gives its cost back; it was never in the map
		return errOrRetry(err)
	}
	m.transfers.addLocked(s.Transfer, false, now) // admitLocked checked there is room
	m.rooms[s.Code] = r
	m.mu.Unlock()
	r.trackEmptyLocked() // nobody is in it until its members are back
	// The members that were live have left, as far as this room knows:
	// the slots that recover are told so, in order, as after any blip.
	for _, idx := range wasLive {
		r.leaves++
		r.slotLocked(idx).left = r.leaves
		r.broadcastLocked(idx, wire.PeerFrame(wire.PeerLeft, idx))
	}
	grace := m.cfg.HostGrace
	if s.GraceMs >= 0 {
		grace = min(grace, time.Duration(s.GraceMs)*time.Millisecond)
	}
	r.armGraceLocked(grace)
	return nil
}

// errRetry marks a retry of a transfer whose room lives here: Import
// answers it as done.
type errRetry struct{}

func (errRetry) Error() string { return "retry of a transfer taken" }

func errOrRetry(err error) error {
	if _, ok := err.(errRetry); ok {
		return nil
	}
	return err
}

// admitLocked decides whether s may become a room here now. m.mu must be
// held.
func (m *Manager) admitLocked(s *Snapshot, now time.Time) error {
	if old := m.rooms[s.Code]; old != nil {
		if old.transfer == s.Transfer {
			return errRetry{}
		}
		return ErrCodeTaken
	}
	switch known, aborted := m.transfers.lookupLocked(s.Transfer, now); {
	case aborted:
		return ErrTransferAborted
	case known:
		return ErrTransferDone
	}
	if m.cfg.MaxRooms > 0 && len(m.rooms) >= m.cfg.MaxRooms {
		return ErrTooManyRooms
	}
	if !m.transfers.roomLocked(now) {
		return ErrTooManyTransfers
	}
	return nil
}

// snapshotCost is what the room s makes costs the budget, at least: the
// room, its slots, its state and its frames.
func snapshotCost(s *Snapshot) int64 {
	cost := int64(RoomBytes + len(s.Slots)*SlotBytes + len(s.State))
	for _, sl := range s.Slots {
		for _, f := range sl.Window {
			cost += int64(len(f.Frame))
		}
	}
	return cost
}

// buildRoom makes the room s describes, not yet in the map, and charges
// its slots, state and windows to the budget. It returns the slots that
// were live on the sender.
func (m *Manager) buildRoom(s *Snapshot, now time.Time) (*Room, []int) {
	r := &Room{m: m, Code: s.Code, MaxClients: min(s.MaxClients, float64(m.cfg.MaxMembers)), Origin: s.Origin, URL: s.URL,
		next: s.Next, leaves: s.Leaves, byKey: make(map[clientKey]int, len(s.Slots)), transfer: s.Transfer, sender: s.From}
	r.history = slotHistory(r.MaxClients)
	r.epoch, r.fromEpoch = s.Epoch, s.FromEpoch
	if r.epoch == 0 {
		r.epoch = newEpoch()
	}
	r.version.Store(s.RoomVersion)
	r.fromVersion = s.FromVersion
	r.mu.Lock()
	defer r.mu.Unlock()
	var wasLive []int
	r.slots = make([]slot, 0, len(s.Slots))
	for _, in := range s.Slots {
		sl := slot{index: in.Index, left: in.Left, recover: in.Recover, restored: in.Restored}
		enchex.Decode(sl.key[:], []byte(in.Key))
		r.byKey[sl.key] = sl.index
		r.slots = append(r.slots, sl)
		if in.Live {
			wasLive = append(wasLive, in.Index)
		}
	}
	m.cfg.Budget.Add(int64(RoomBytes + len(r.slots)*SlotBytes))
	for i, in := range s.Slots {
		sl := &r.slots[i]
		sl.leftAt = now // vacant from now: the age sweep and vacant-first eviction count from here
		for _, f := range in.Window {
			sl.seq = f.Seq
			if !r.keepLocked(sl, []byte(f.Frame)) {
				// The room's bound or the budget refused it: what is kept
				// must have no hole, so the slot resyncs from the state.
				r.stopNumberingLocked(sl)
				break
			}
			sl.win.entries[len(sl.win.entries)-1].at = now.Add(-time.Duration(f.AgeMs) * time.Millisecond)
		}
		sl.seq = in.Seq
		if sl.numbering() {
			r.armAgeLocked(now.Add(m.cfg.RecoverAge))
		}
	}
	if s.State != nil {
		var buf bytes.Buffer
		json.Compact(&buf, s.State) // checked valid
		r.state = wire.StateFrame(buf.Bytes())
		m.cfg.Budget.Add(int64(len(r.state)))
	}
	return r, wasLive
}
