package rooms

import (
	"time"

	"github.com/party-sockets/party-sockets/internal/budget"
	"github.com/party-sockets/party-sockets/internal/ticket"
	"github.com/party-sockets/party-sockets/internal/wire"
)

// Message recovery (docs/protocol.md "Catch-up after a blip"): a slot whose owner
// opted in ("recover": true) numbers every frame room traffic sends it
// (message, state, peer_joined, peer_left) with "seq", per slot from 1,
// across reconnects, and keeps the latest in a window bounded by frames,
// bytes and age. A rejoin with "since": n gets every frame above n that the
// window still holds, right after joined and before any live frame.
//
// What windows may hold is bounded three ways: each window (frames, bytes,
// age), each room's windows together (RecoverRoomBytes) and the machine's
// memory budget, which a frame must fit in before it is kept (TryAdd).
// When a frame does not fit, vacant slots' windows go first, oldest
// vacancy first: such a slot stops being numbered (it lapses) and answers
// its next rejoin with "recovered": false and the state. Then a live
// slot's own oldest frames; a live slot whose frame still cannot be kept
// loses its whole window (its member got the frame live). A vacant slot
// lapses too once it has been vacant for the window's age (reclaim.go).

// Errors of the recovery extension, in the old relay's shape (README
// "Catch-up after a blip").
var (
	ErrSinceAhead   = wire.Define("since is ahead of this slot")
	ErrSinceInvalid = wire.Define("since must be a non-negative integer")
)

// JoinOptions are the recovery fields of a join.
type JoinOptions struct {
	Recover bool
	Since   *uint64 // with Recover: the last seq the client has
	// Tickets: the member opted in to tickets (ticket.go). Restored: the
	// join rebuilt the room from a ticket ("restored": true in joined).
	Tickets, Restored bool
	// Ticket: the member's own newest ticket of this room, checked by the
	// caller (seal, age, the member's slot). A room rebuilt from an older
	// ticket of its epoch moves up to it before the join (takeTicket):
	// the member takes back its own slot, never a fresh index that an
	// older ticket would give out twice.
	Ticket *ticket.Plain
}

// deliverLocked sends frame to slot s: as it is to a member that did not
// opt in, numbered and kept to one that did, even while it is away. It
// reports whether a live socket got it. sh is a broadcast's shared cost
// (nil for a targeted frame): a numbered frame is the slot's own copy.
func (r *Room) deliverLocked(s *slot, frame []byte, sh *budget.Shared) bool {
	if !s.numbering() {
		if s.member == nil {
			return false
		}
		if ss, ok := s.member.(SharedSender); ok && sh != nil {
			ss.SendShared(frame, sh)
		} else {
			s.member.Send(frame)
		}
		return true
	}
	s.seq++
	f := wire.WithSeq(frame, s.seq)
	kept := r.keepLocked(s, f)
	if s.member == nil {
		if !kept {
			r.stopNumberingLocked(s) // s.seq, this frame's, marks the gap
		}
		return false
	}
	if !kept {
		r.dropWindowLocked(s) // no hole in the middle: the window restarts after f
	}
	s.member.Send(f)
	return true
}

// keepLocked adds a numbered frame to s's window, within the window's own
// bounds, the room's and the machine's budget, and reports whether it could.
func (r *Room) keepLocked(s *slot, f []byte) bool {
	cfg := &r.m.cfg
	now := cfg.Clock.Now()
	r.trimLocked(s, now, 1, len(f))
	if len(f) > cfg.RecoverBytes || !r.fitRoomLocked(s, f) || !r.fitBudgetLocked(s, f) {
		return false
	}
	r.accountLocked(s, s.win.push(entry{seq: s.seq, frame: f, at: now}))
	r.armAgeLocked(now.Add(cfg.RecoverAge))
	return true
}

// fitRoomLocked makes room for f under the room's bound: vacant windows
// go first, then s's own oldest frames if s is live.
func (r *Room) fitRoomLocked(s *slot, f []byte) bool {
	for r.winCost+s.win.pushCost(f) > r.m.cfg.RecoverRoomBytes {
		if v := r.oldestVacantLocked(s); v != nil {
			r.lapseLocked(v)
			continue
		}
		if s.member == nil || len(s.win.entries) == 0 {
			return false
		}
		r.popLocked(s)
	}
	return true
}

// fitBudgetLocked takes f's cost from the memory budget: vacant windows
// go first, this room's then the machine's, then the machine's oldest
// live frames (reserveFrameLocked), then s's own oldest frames if s is
// live.
func (r *Room) fitBudgetLocked(s *slot, f []byte) bool {
	for !r.reserveFrameLocked(int64(s.win.pushCost(f)), s) {
		if s.member == nil || len(s.win.entries) == 0 {
			return false
		}
		r.popLocked(s)
	}
	return true
}

// trimLocked drops s's oldest frames until room for extra more frames of
// extraBytes fits the window's bounds, and every frame older than the
// window's age.
func (r *Room) trimLocked(s *slot, now time.Time, extra, extraBytes int) {
	cfg := &r.m.cfg
	for len(s.win.entries) > 0 {
		e := &s.win.entries[0]
		if len(s.win.entries)+extra <= cfg.RecoverFrames && s.win.frames+extraBytes <= cfg.RecoverBytes &&
			now.Sub(e.at) <= cfg.RecoverAge {
			return
		}
		r.popLocked(s)
	}
}

// popLocked drops s's oldest frame.
func (r *Room) popLocked(s *slot) {
	c := s.win.popOldest()
	r.accountLocked(s, c)
	r.m.cfg.Budget.Add(int64(c))
}

// dropWindowLocked frees s's window.
func (r *Room) dropWindowLocked(s *slot) {
	c := s.win.cost
	s.win = window{}
	r.accountLocked(s, -c)
	r.m.cfg.Budget.Add(-int64(c))
}

// accountLocked records a change of c bytes in s's window in the room's
// totals, and in the manager's when s is vacant.
func (r *Room) accountLocked(s *slot, c int) {
	r.winCost += c
	if s.member == nil {
		r.vacantCost += c
		r.m.vacant.Add(int64(c))
	}
}

// lapseLocked stops numbering a vacant slot and frees its window: the seq
// it skips stands for every frame it will not get, so its next rejoin
// cannot be told recovered: true.
func (r *Room) lapseLocked(s *slot) {
	s.seq++
	r.stopNumberingLocked(s)
}

// stopNumberingLocked frees a vacant slot's window and stops numbering
// frames for it until its owner is back.
func (r *Room) stopNumberingLocked(s *slot) {
	r.dropWindowLocked(s)
	s.lapsed = true
}

// oldestVacantLocked returns the slot other than except (which may be nil)
// that has been vacant longest and still holds a window, or nil.
func (r *Room) oldestVacantLocked(except *slot) *slot {
	own := 0
	if except != nil && except.member == nil {
		own = except.win.cost
	}
	if r.vacantCost-own <= 0 {
		return nil
	}
	var v *slot
	for i := range r.slots {
		s := &r.slots[i]
		if s != except && s.member == nil && s.win.cost > 0 && (v == nil || s.left < v.left) {
			v = s
		}
	}
	return v
}

// vacateLocked records that s's member is gone: its window now counts as
// vacant, and the age sweep will lapse it if it stays away.
func (r *Room) vacateLocked(s *slot) {
	s.member = nil
	r.leaves++
	s.left, s.leftAt = r.leaves, r.m.cfg.Clock.Now()
	r.vacantCost += s.win.cost
	r.m.vacant.Add(int64(s.win.cost))
	if s.numbering() {
		r.armAgeLocked(s.leftAt.Add(r.m.cfg.RecoverAge))
	}
}

// occupyLocked gives vacant slot s to mem.
func (r *Room) occupyLocked(s *slot, mem Member) {
	r.vacantCost -= s.win.cost
	r.m.vacant.Add(-int64(s.win.cost))
	s.member = mem
}

// missedLocked returns the frames of s numbered above since, and whether
// they are all there (the window still holds since+1, or nothing was sent
// after since).
func (r *Room) missedLocked(s *slot, since uint64) (frames [][]byte, complete bool) {
	r.trimLocked(s, r.m.cfg.Clock.Now(), 0, 0)
	if since == s.seq {
		return nil, true
	}
	if len(s.win.entries) == 0 || s.win.first() > since+1 {
		return nil, false
	}
	for _, e := range s.win.entries {
		if e.seq > since {
			frames = append(frames, e.frame)
		}
	}
	return frames, true
}
