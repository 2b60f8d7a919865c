package server

import (
	"context"
	"sync"
	"time"

	"github.com/party-sockets/party-sockets/internal/peerauth"
	"github.com/party-sockets/party-sockets/internal/ticket"
	"github.com/party-sockets/party-sockets/internal/wire"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/routing"
)

// Restore (docs/protocol.md "Crash-proof rooms"): {"type":"restore","clientId",
// "ticket","state"?} on a socket not in a room. The checks, in order: the
// seal, the age, that the clientId owns a slot of the ticket; then that no
// machine holds the code: this one (held, or moved moments ago), then
// every other machine of the app, by signed probe (restore_probe.go). An answer that
// cannot be had (the address's probe allowance, DNS, a timeout) is
// unknown, never absent: Try again. Restores of one code run one at a
// time on a machine, and the room is looked for again under that lock.

// restoreLockWait bounds how long a restore waits for another restore of
// its code on this machine (a variable for tests).
var restoreLockWait = 3 * time.Second

// restoreRoundsPerSec bounds the sibling rounds restores start on this
// machine, whatever their addresses (burst twice that): a peer probe's
// rate (routing.DefaultRoundsPerSec).
const restoreRoundsPerSec = routing.DefaultRoundsPerSec

// machineKey is the one key of the machine-wide restores bucket.
const machineKey = "machine"

// clockSkew is how far in the future a ticket's issue time may be: the
// clocks of two machines of the app (peerauth's bound for signed calls).
const clockSkew = peerauth.DefaultMaxAge

func (se *session) restore(m *wire.Message) error {
	r, idx, restored, err := se.tryRestore(m)
	result := restoreJoined
	switch {
	case err != nil:
		result = restoreResult(err)
	case restored:
		result = restoreRestored
	}
	se.s.metrics.tickets.restores.WithLabelValues(result).Inc()
	if err != nil {
		se.s.log.Debug("restore refused", "reason", err.Error())
		return err
	}
	se.room, se.idx = r, idx
	se.c.joinDone.Store(true)
	if restored {
		se.s.log.Info("room restored", "room", r.Code, "slot", idx, "origin", se.origin)
		go se.s.confirmOwner(r.Code)
	}
	return nil
}

// confirmOwner asks the siblings once more right after a rebuild: two
// restores that raced on two machines (around the rendezvous: a pin's
// fallback, differing DNS views) both see the other's copy from the one
// that rebuilt second, and one copy gives way (settleCopies).
func (s *Server) confirmOwner(code string) {
	defer s.confirmed.Add(1)
	if s.cfg.Prober == nil {
		return
	}
	ans, _ := s.askSiblings(s.baseCtx, code, true)
	if len(ans.holders) > 0 {
		s.log.Warn("restore: another machine holds the code too; one copy gives way", "room", code)
		s.settleCopies(s.baseCtx, code, ans.holders)
	}
}

func (se *session) tryRestore(m *wire.Message) (*rooms.Room, int, bool, error) {
	if se.room != nil {
		return nil, 0, false, errAlreadyInRoom
	}
	clientID, err := requireClientID(m)
	if err != nil {
		return nil, 0, false, err
	}
	if se.s.sealer == nil {
		return nil, 0, false, errTicketsOff
	}
	if se.counted && se.s.perAddr.blocked(se.ip) {
		return nil, 0, false, errTooManyMisses
	}
	p, err := se.s.openTicket(m.Ticket, se.s.rooms.Now())
	if err != nil {
		if err == errInvalidTicket && se.counted {
			se.s.perAddr.miss(se.ip) // a ticket is free to get: a bad one is a failed lookup
		}
		return nil, 0, false, err
	}
	if !rooms.InTicket(p, clientID) {
		// An honest client never gets this: a member guessing the others'
		// clientIds with its own ticket pays for each guess as a miss.
		if se.counted {
			se.s.perAddr.miss(se.ip)
		}
		return nil, 0, false, rooms.ErrNotInTicket
	}
	if se.s.draining.Load() {
		return nil, 0, false, errTryAgain // a stopping machine rebuilds nothing: its rooms are leaving
	}
	opt, err := recoveryOptions(m) // a restore into a room that is here already recovers as a rejoin does
	if err != nil {
		return nil, 0, false, err
	}
	opt.Tickets = se.ticketOptIn(m)
	release, ok := se.s.restoring.lock(p.Code, restoreLockWait)
	if !ok {
		return nil, 0, false, errTryAgain
	}
	defer release()
	held := se.s.rooms.Held(p.Code)
	if !held {
		if err := se.s.mayRebuild(se.s.baseCtx, p.Code, se.ip, se.counted); err != nil {
			return nil, 0, false, err
		}
	}
	r, idx, restored, err := se.s.rooms.Restore(rooms.RestoreRequest{Plain: p, ClientID: clientID, Member: se.c,
		Join: opt, State: presentedState(m.State), JoinOnly: held})
	switch err {
	case rooms.ErrOtherRoom:
		err = errRoomExists
	case rooms.ErrRoomEnded:
		err = errRoomEnded
	case rooms.ErrRestoreAgain:
		err = errTryAgain
	}
	return r, idx, restored, err
}

// openTicket opens a restore's ticket and checks its age.
func (s *Server) openTicket(raw []byte, now time.Time) (*ticket.Plain, error) {
	if len(raw) > ticket.MaxBytes+2 {
		return nil, errInvalidTicket // bound before decode
	}
	t, ok := wire.String(raw)
	if !ok {
		return nil, errInvalidTicket
	}
	p, err := s.sealer.Open(t)
	if err != nil {
		return nil, errInvalidTicket
	}
	if age := now.Sub(p.Issued()); age > ticket.Window || age < -clockSkew {
		return nil, errTicketExpired
	}
	return p, nil
}

// presentedState is a restore's state as the room would keep it: compact
// JSON within the state bound; nil for none, null, or too large.
func presentedState(raw []byte) []byte {
	if raw == nil || string(raw) == "null" || len(raw) > 4*rooms.MaxStateBytes {
		return nil
	}
	if c := wire.Compact(raw); len(c) <= rooms.MaxStateBytes {
		return c
	}
	return nil
}

// mayRebuild checks that no machine holds code and none ended it: this
// one first, then every other machine of the app (one probe round, paid
// for by the address's probe allowance).
func (s *Server) mayRebuild(ctx context.Context, code, ip string, counted bool) error {
	switch {
	case s.rooms.Ended(code):
		return errRoomEnded
	case s.movedTo(code) != "":
		return errRoomExists
	case s.cfg.Prober == nil:
		return nil // off Fly: no siblings
	case counted && !s.probes.take(ip, time.Now()), !s.restores.take(machineKey, time.Now()):
		return errTryAgain
	}
	ans, err := s.askSiblings(ctx, code, true)
	switch {
	case len(ans.holders) > 1:
		s.settleCopies(ctx, code, ans.holders) // two copies: one gives way
		return errRoomExists
	case len(ans.holders) > 0, ans.moved:
		return errRoomExists
	case ans.ended:
		return errRoomEnded
	case err != nil:
		s.log.Info("restore: not every sibling said whether it holds the code", "room", code, "error", err)
		return errTryAgain
	}
	if rv := s.rendezvous(ctx, code); rv != "" && rv != s.cfg.Instance {
		// One machine decides a code: another rebuilds nothing (it still
		// answers Room exists or Room ended, above), and the
		// client's next try (through the proxy, to /<code>) is replayed to
		// the rendezvous. Two views of the DNS that differ agree again
		// within its TTL. Before, this machine rebuilt too, and two
		// members restoring at once on two machines made two copies
		// (tests/live TestRestoreTwoAtOnce, under load).
		s.log.Info("restore: this machine is not the code's rendezvous: Try again", "room", code, "rendezvous", rv)
		return errTryAgain
	}
	return nil
}

// onItsWay reports whether a join that found no room here is a member
// following its room, which this machine can tell: the room was handed
// to a sibling moments ago, or another member's restore of it is running
// here. Such a join is not a miss.
func (s *Server) onItsWay(code string) bool { return s.movedTo(code) != "" || s.restoring.busy(code) }

// codeLocks runs one restore of a code at a time. Each waiting session
// holds at most one entry: the map is bounded by the sessions.
type codeLocks struct {
	mu   sync.Mutex               // guards held
	held map[string]chan struct{} // code → closed when its restore ends
}

// busy reports whether a restore of code is running.
func (l *codeLocks) busy(code string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.held[code]
	return ok
}

// lock takes code's lock, waiting at most wait; it returns the release.
func (l *codeLocks) lock(code string, wait time.Duration) (func(), bool) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		if l.held == nil {
			l.held = map[string]chan struct{}{}
		}
		busy, ok := l.held[code]
		if !ok {
			done := make(chan struct{})
			l.held[code] = done
			l.mu.Unlock()
			return func() {
				l.mu.Lock()
				delete(l.held, code)
				l.mu.Unlock()
				close(done)
			}, true
		}
		l.mu.Unlock()
		select {
		case <-busy:
		case <-deadline.C:
			return nil, false
		}
	}
}
