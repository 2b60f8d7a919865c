package rooms

import (
	"errors"
	"strconv"
	"time"
)

// Message recovery (README "Catch-up after a blip"): a slot whose owner
// opted in ("recover": true) numbers every frame room traffic sends it
// (message, state, peer_joined, peer_left) with "seq", per slot from 1,
// across reconnects, and keeps the latest in a window bounded by frames,
// bytes and age. A rejoin with "since": n gets every frame above n that the
// window still holds, right after joined and before any live frame.

// Errors of the recovery extension, in the contract's shape.
var (
	ErrSinceAhead   = errors.New("since is ahead of this slot")
	ErrSinceInvalid = errors.New("since must be a non-negative integer")
)

// JoinOptions are the recovery fields of a join.
type JoinOptions struct {
	Recover bool
	Since   *uint64 // with Recover: the last seq the client has
}

// entry is one frame in a window, as it was sent: with its seq.
type entry struct {
	seq   uint64
	frame []byte
	at    time.Time
}

// window is a slot's recovery buffer, oldest first.
type window struct {
	entries []entry
	bytes   int
}

// withSeq is frame (a JSON object) with ,"seq":n before its closing brace.
func withSeq(frame []byte, seq uint64) []byte {
	b := make([]byte, 0, len(frame)+24)
	b = append(b, frame[:len(frame)-1]...)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	return append(b, '}')
}

// deliverLocked sends frame to slot s: as it is to a member that did not
// opt in, numbered and kept to one that did, even while it is away. It
// reports whether a live socket got it.
func (r *Room) deliverLocked(s *slot, frame []byte) bool {
	if !s.recover {
		if s.member == nil {
			return false
		}
		s.member.Send(frame)
		return true
	}
	s.seq++
	f := withSeq(frame, s.seq)
	r.keepLocked(s, f)
	if s.member == nil {
		return false
	}
	s.member.Send(f)
	return true
}

// keepLocked adds a numbered frame to s's window and trims it to its
// bounds.
func (r *Room) keepLocked(s *slot, f []byte) {
	now := r.m.cfg.Clock.Now()
	s.win.entries = append(s.win.entries, entry{seq: s.seq, frame: f, at: now})
	s.win.bytes += len(f)
	r.m.cfg.Budget.Add(int64(len(f)))
	r.trimLocked(s, now)
}

// trimLocked drops the oldest frames past the window's bounds.
func (r *Room) trimLocked(s *slot, now time.Time) {
	cfg := r.m.cfg
	drop := 0
	for drop < len(s.win.entries) {
		e := s.win.entries[drop]
		if len(s.win.entries)-drop <= cfg.RecoverFrames && s.win.bytes <= cfg.RecoverBytes && now.Sub(e.at) <= cfg.RecoverAge {
			break
		}
		s.win.bytes -= len(e.frame)
		r.m.cfg.Budget.Add(-int64(len(e.frame)))
		drop++
	}
	if drop > 0 {
		clear(s.win.entries[:drop])
		s.win.entries = s.win.entries[drop:]
	}
}

// dropWindowLocked frees s's window.
func (r *Room) dropWindowLocked(s *slot) {
	r.m.cfg.Budget.Add(-int64(s.win.bytes))
	s.win = window{}
}

// missedLocked returns the frames of s numbered above since, and whether
// they are all there (the window still holds since+1, or nothing was sent
// after since).
func (r *Room) missedLocked(s *slot, since uint64) (frames [][]byte, complete bool) {
	r.trimLocked(s, r.m.cfg.Clock.Now())
	if since == s.seq {
		return nil, true
	}
	es := s.win.entries
	if len(es) == 0 || es[0].seq > since+1 {
		return nil, false
	}
	for _, e := range es {
		if e.seq > since {
			frames = append(frames, e.frame)
		}
	}
	return frames, true
}

// appendRecovery adds the recovery fields to a created or joined frame:
// "seq" always, "recovered" when the join asked to recover from a seq.
func appendRecovery(frame []byte, seq uint64, recovered *bool) []byte {
	b := append(frame[:len(frame)-1:len(frame)-1], `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	if recovered != nil {
		b = append(b, `,"recovered":`...)
		b = strconv.AppendBool(b, *recovered)
	}
	return append(b, '}')
}
