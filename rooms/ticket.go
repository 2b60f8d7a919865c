package rooms

import (
	"crypto/rand"
	"encoding/binary"
	"time"

	"github.com/party-sockets/party-sockets/internal/ticket"
	"github.com/party-sockets/party-sockets/internal/wire"
)

// Tickets (docs/protocol.md "Crash-proof rooms"): a room whose members opted in
// ("tickets": true) has its ticket issued to them again whenever its
// skeleton or its state changes, coalesced to at most one issue per
// TicketGap, and every ticket.ReissueEvery while nothing changes. The
// room keeps what a ticket needs (epoch, version, slots); the issuer
// (SetIssuer) seals it outside the room's lock and hands the sealed
// frame back (SendTicket).

// TicketGap is the shortest time between two issues of one room's ticket:
// a stranger's join churn makes at most two a second.
const TicketGap = 500 * time.Millisecond

// ticketIssue is a room's issue schedule. Guarded by Room.mu.
type ticketIssue struct {
	timer Timer
	at    time.Time // when timer fires, while it is armed
	last  time.Time // the last issue
	turn  int       // bumped on every arm; a stale timer sees another turn
}

// newEpoch draws a room's epoch: random, never 0.
func newEpoch() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		if e := binary.BigEndian.Uint64(b[:]); e != 0 {
			return e
		}
	}
}

// Epoch is the room's epoch and version, read without its lock: what a
// sibling's signed probe is told (docs/protocol.md "One owner").
func (r *Room) Epoch() (epoch, version, from uint64) {
	return r.epoch, r.version.Load(), r.fromEpoch
}

// firstTicket schedules a new room's first ticket (nil: no room).
func (r *Room) firstTicket() {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changedLocked()
}

// ticketedLocked reports whether a live member opted in to tickets.
func (r *Room) ticketedLocked() bool {
	for i := range r.slots {
		if s := &r.slots[i]; s.member != nil && s.tickets {
			return true
		}
	}
	return false
}

// changedLocked records a change of the room's skeleton or state: the
// version grows, and the ticket is issued again as soon as TicketGap
// allows.
func (r *Room) changedLocked() {
	r.version.Add(1)
	if r.m.issuer.Load() == nil || r.closed || !r.ticketedLocked() {
		return
	}
	now := r.m.cfg.Clock.Now()
	at := r.tk.last.Add(TicketGap)
	if at.Before(now) {
		at = now
	}
	if r.tk.timer != nil && !r.tk.at.After(at) {
		return // an issue is due by then: it will see this change
	}
	r.armTicketLocked(at.Sub(now), at)
}

func (r *Room) armTicketLocked(d time.Duration, at time.Time) {
	if r.tk.timer != nil {
		r.tk.timer.Stop()
	}
	r.tk.turn++
	turn := r.tk.turn
	r.tk.at = at
	r.tk.timer = r.m.cfg.Clock.AfterFunc(d, func() { r.ticketDue(turn) })
}

func (r *Room) cancelTicketLocked() {
	r.tk.turn++
	if r.tk.timer != nil {
		r.tk.timer.Stop()
		r.tk.timer = nil
	}
}

// ticketDue runs on the clock's goroutine: it schedules the next periodic
// issue, then calls the issuer without the room's lock.
func (r *Room) ticketDue(turn int) {
	r.mu.Lock()
	if r.closed || turn != r.tk.turn || !r.ticketedLocked() {
		if turn == r.tk.turn {
			r.tk.timer = nil
		}
		r.mu.Unlock()
		return
	}
	now := r.m.cfg.Clock.Now()
	r.tk.last = now
	r.armTicketLocked(ticket.ReissueEvery, now.Add(ticket.ReissueEvery))
	r.mu.Unlock()
	(*r.m.issuer.Load())(r)
}

// SetIssuer sets what issues a room's ticket: it is called on the clock's
// goroutine, without any lock, when one is due. Without one (no secret),
// no ticket is ever due.
func (m *Manager) SetIssuer(f func(*Room)) { m.issuer.Store(&f) }

// TicketPlain is the room's ticket as of now, to be sealed; false when the
// room has ended. Every issue grows the version.
func (r *Room) TicketPlain() (*ticket.Plain, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, false
	}
	p := &ticket.Plain{Code: r.Code, Origin: r.Origin, URL: r.URL, Holder: r.m.selfID(), MaxClients: r.MaxClients,
		Epoch: r.epoch, FromEpoch: r.fromEpoch, Version: r.version.Add(1),
		IssuedAt: r.m.cfg.Clock.Now().UnixMilli(), Next: uint64(r.next), Slots: make([]ticket.Slot, len(r.slots))}
	for i := range r.slots {
		s := &r.slots[i]
		p.Slots[i] = ticket.Slot{Index: uint64(s.index), Vacant: s.member == nil, Key: ticket.Key(s.key[:ticket.KeyBytes])}
	}
	if r.state != nil {
		p.HasDigest, p.Digest = true, ticket.DigestOf(wire.StateData(r.state))
	}
	return p, true
}

// SendTicket sends frame (a sealed ticket, or the error that the room is
// too large for one, told once) to every live member that opted in.
func (r *Room) SendTicket(frame []byte, tooLarge bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.slots {
		s := &r.slots[i]
		if s.member == nil || !s.tickets || (tooLarge && s.toldLarge) {
			continue
		}
		s.toldLarge = tooLarge
		s.member.Send(frame)
	}
}

// partialKey is a slot's key as a ticket knows it: the first
// ticket.KeyBytes of the SHA-256, the rest zero.
func partialKey(k clientKey) clientKey {
	var p clientKey
	copy(p[:ticket.KeyBytes], k[:ticket.KeyBytes])
	return p
}

// claimLocked finds the slot a restored room knows key by (its ticket's
// prefix), and from now on knows it by the whole key.
func (r *Room) claimLocked(key clientKey) (int, bool) {
	pk := partialKey(key)
	idx, ok := r.byKey[pk]
	if !ok {
		return 0, false
	}
	s := r.slotLocked(idx)
	if s == nil || !s.restored {
		return 0, false
	}
	delete(r.byKey, pk)
	s.key = key
	r.byKey[key] = idx
	return idx, true
}

// Now is the time on the manager's clock: a ticket's age is read on it.
func (m *Manager) Now() time.Time { return m.cfg.Clock.Now() }
