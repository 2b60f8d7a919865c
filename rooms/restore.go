package rooms

import (
	"errors"
	"slices"

	"github.com/party-sockets/party-sockets/internal/ticket"
	"github.com/party-sockets/party-sockets/internal/wire"
)

// Restore (docs/protocol.md "Crash-proof rooms"): a member whose room was lost with
// its machine presents the room's ticket, which the server has opened and
// checked (seal, age, that no machine holds the code). The room is rebuilt
// here with the ticket's code, slots, indices and next index, a new epoch,
// no recovery windows and no state until a member presents the state whose
// digest a ticket holds; or, when a room with the code already lives
// here, the restore is a join of that room, which a newer ticket of the
// epoch it was restored from moves up.

// ErrNotInTicket: the presenter's clientId hashes to none of the
// ticket's slots.
var ErrNotInTicket = wire.Define("Not in this ticket")

// ErrRoomEnded: the code's room ended here within the ticket window; it
// is not rebuilt (the server answers Room ended).
var ErrRoomEnded = errors.New("rooms: the code's room ended here")

// ErrRestoreAgain: the room the caller found here is gone (a JoinOnly
// restore): the caller checks again (the server answers Try again).
var ErrRestoreAgain = errors.New("rooms: the room is gone since the restore looked")

// ErrOtherRoom: a room with the ticket's code lives here, but it is not
// the ticket's room nor one restored from it (the server answers Room
// exists: the client may join it as anyone may).
var ErrOtherRoom = errors.New("rooms: the code's room is not the ticket's")

// sameRoom reports whether r is p's room: the same epoch, or restored
// from it, or the room p's was restored from.
func (r *Room) sameRoom(p *ticket.Plain) bool {
	return r.epoch == p.Epoch || (r.fromEpoch != 0 && r.fromEpoch == p.Epoch) || (p.FromEpoch != 0 && r.epoch == p.FromEpoch)
}

// RestoreRequest is a checked restore.
type RestoreRequest struct {
	Plain    *ticket.Plain
	ClientID string
	Member   Member
	Join     JoinOptions
	State    []byte // the compact state the presenter last saw; nil for none
	// JoinOnly: the caller checked no machine for the code (the room was
	// here): if it is gone meanwhile (ended, handed off, yielded),
	// ErrRestoreAgain rather than a rebuild nothing checked.
	JoinOnly bool
}

// InTicket reports whether clientID owns one of p's slots.
func InTicket(p *ticket.Plain, clientID string) bool {
	k := ticket.KeyOf(clientID)
	return slices.ContainsFunc(p.Slots, func(s ticket.Slot) bool { return s.Key == k })
}

// Restore rebuilds the ticket's room with the presenter live in its own
// slot, or joins the room with its code that lives here. restored reports
// whether this call rebuilt it.
func (m *Manager) Restore(req RestoreRequest) (r *Room, idx int, restored bool, err error) {
	if len(req.ClientID) > MaxClientIDBytes {
		return nil, 0, false, ErrClientIDTooLong
	}
	if !InTicket(req.Plain, req.ClientID) {
		return nil, 0, false, ErrNotInTicket
	}
	r = m.get(req.Plain.Code)
	if r != nil && !r.sameRoom(req.Plain) {
		return nil, 0, false, ErrOtherRoom
	}
	if r == nil && req.JoinOnly {
		return nil, 0, false, ErrRestoreAgain
	}
	if r == nil {
		if r, restored, err = m.rebuild(req.Plain); err != nil {
			return nil, 0, false, err
		}
		if !restored && !r.sameRoom(req.Plain) { // another took the code meanwhile
			return nil, 0, false, ErrOtherRoom
		}
	}
	opt := req.Join
	opt.Restored = restored
	if opt.Recover && restored {
		zero := uint64(0)
		opt.Since = &zero // the rebuilt slot answers recovered: false
	}
	// Into a room that was here already (handed off, or another member's
	// restore), the member's since (when it sent one) recovers as on a
	// rejoin: the window replays what it missed, or it is told
	// recovered: false. Without one, it joins as a member that opts in.
	r.takeTicket(req.Plain, req.State)
	idx, err = r.join(keyOf(req.ClientID), req.Member, opt)
	if err != nil {
		return nil, 0, false, err
	}
	if restored {
		m.event(Event{Type: EventRoomRestored, Room: r.Code, Index: idx, Owner: ownerOf(req.Member)})
	}
	return r, idx, restored, nil
}

// restoreIndexGap is how far past the ticket's next index a rebuilt room
// hands out fresh ones. The ticket may be older than the room was (a
// member restores with the one it has, up to ticket.Window old): the
// members who joined since hold indices from the ticket's next on, and
// come back with their newer tickets (which move the room up). A stranger
// joining the rebuilt room first must not take one of their indices (an
// attack review of crash-proof rooms). 64 covers more joins than a party
// room sees between two tickets it is issued (one at most every 500 ms,
// and every change); past that the room still never gives out one index
// twice to members it knows.
const restoreIndexGap = 64

// rebuild makes the ticket's room and puts it in the map (made), or
// returns the room that took its code meanwhile.
func (m *Manager) rebuild(p *ticket.Plain) (r *Room, made bool, err error) {
	cost := int64(RoomBytes + len(p.Slots)*SlotBytes) // what releaseLocked gives back
	if !m.reserve(cost) {
		return nil, false, ErrOverBudget
	}
	now := m.cfg.Clock.Now()
	r = &Room{m: m, Code: p.Code, MaxClients: min(p.MaxClients, float64(m.cfg.MaxMembers)), Origin: p.Origin,
		URL: p.URL, next: int(p.Next) + restoreIndexGap, epoch: newEpoch(), fromEpoch: p.Epoch, fromVersion: p.Version,
		byKey: make(map[clientKey]int, len(p.Slots)), slots: make([]slot, 0, len(p.Slots))}
	r.history = slotHistory(r.MaxClients)
	for _, ts := range p.Slots {
		r.leaves++
		var k clientKey
		copy(k[:], ts.Key[:])
		r.slots = append(r.slots, slot{index: int(ts.Index), key: k, restored: true, left: r.leaves, leftAt: now})
		r.byKey[k] = int(ts.Index)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m.mu.Lock()
	if old := m.rooms[p.Code]; old != nil {
		m.mu.Unlock()
		m.cfg.Budget.Add(-cost)
		return old, false, nil
	}
	if m.ended.hasLocked(p.Code, now) { // it ended here since the restore's checks
		m.mu.Unlock()
		m.cfg.Budget.Add(-cost)
		return nil, false, ErrRoomEnded
	}
	if m.cfg.MaxRooms > 0 && len(m.rooms) >= m.cfg.MaxRooms {
		m.mu.Unlock()
		m.cfg.Budget.Add(-cost)
		return nil, false, ErrTooManyRooms
	}
	m.rooms[p.Code] = r
	m.mu.Unlock()
	r.armGraceLocked(m.cfg.HostGrace) // the host's slot is vacant until its owner is back
	return r, true, nil
}

// takeTicket moves a restored room up to a newer ticket of the epoch it
// was restored from (a higher next index, the slots it adds: an index is
// never given out twice), and takes the presented state when the room
// has none and its digest is the one the ticket holds.
func (r *Room) takeTicket(p *ticket.Plain, state []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.fromEpoch == 0 || p.Epoch != r.fromEpoch || p.Version < r.fromVersion {
		return
	}
	if p.Version > r.fromVersion {
		r.fromVersion = p.Version
		r.moveUpLocked(p)
	}
	if r.state == nil && state != nil && p.HasDigest && ticket.DigestOf(state) == p.Digest {
		r.setStateLocked(-1, state) // pushed to every member already back
	}
}

// moveUpLocked takes p's next index if higher, and the slots p has that
// the room does not, within the room's history and the budget.
func (r *Room) moveUpLocked(p *ticket.Plain) {
	r.next = max(r.next, int(p.Next))
	for _, ts := range p.Slots {
		var k clientKey
		copy(k[:], ts.Key[:])
		if r.slotLocked(int(ts.Index)) != nil || r.knowsLocked(k) {
			continue
		}
		if len(r.slots) >= r.history || !r.reserveLocked(SlotBytes) {
			return
		}
		r.leaves++
		at, _ := slices.BinarySearchFunc(r.slots, int(ts.Index), func(s slot, i int) int { return s.index - i })
		r.slots = slices.Insert(r.slots, at, slot{index: int(ts.Index), key: k, restored: true, left: r.leaves,
			leftAt: r.m.cfg.Clock.Now()})
		r.byKey[k] = int(ts.Index)
	}
	r.changedLocked()
}

// knowsLocked reports whether a slot is known by the partial key k, or by
// a whole key it is the prefix of.
func (r *Room) knowsLocked(k clientKey) bool {
	if _, ok := r.byKey[k]; ok {
		return true
	}
	for i := range r.slots {
		if partialKey(r.slots[i].key) == k {
			return true
		}
	}
	return false
}
