package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/party-sockets/party-sockets/internal/wire"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/routing"
)

// The receiving side of a hand-off (docs/deploys.md, "Only siblings"):
// the body is bounded, reserved in the memory budget, read, checked
// against its signature, counted (snapshot.go) and decoded one at a time;
// the room is then held to create's rules (rooms.Import) and may not take
// a code that another sibling of the region holds.

const (
	// MaxHandoffBytes bounds a snapshot on the wire. A room whose body
	// would be larger moves without its recovery windows. A room of 1000
	// members (4004 slots), a 16 KiB state and 2 MiB of windows (the bound
	// assumed on a room's windows together) made of the smallest frames
	// measures 4.7 MiB.
	MaxHandoffBytes = 5 << 20
	// LegacyHandoffBytes is the previous release's bound, which its
	// machines may still send (unsigned) during the deploy that ships this
	// one. It goes with the bearer form, in the next release.
	LegacyHandoffBytes = 8 << 20
)

// What decoding a hand-off costs, reserved in the budget before the body
// is read and given back once the room is made (the room then costs what
// it holds). Measured as live heap (the body, the decoded snapshot and the
// room made of it) over the body's length, for bodies of big frames, of
// the smallest frames and of 4004 slots without windows: 3.18, 3.63 and
// 3.66 (the room alone 1.09, 1.49, 1.60). Per byte 3.5, per frame 128 (a
// decoded frame's struct, 32 bytes, the room's entry, 56, and the slices'
// growth) and per slot 512 cover them 1.10, 1.44 and 1.91 times, and an
// array of empty frames or slots, which costs its structs alone.
const (
	decodePerByteX2 = 7 // twice the reservation per byte of body
	decodePerSlot   = 512
	decodePerFrame  = 128
)

var (
	// handoffDecodeWait bounds how long a hand-off waits for the one
	// decode at a time (a variable for tests).
	handoffDecodeWait = 500 * time.Millisecond
	// holderWait bounds asking the siblings whether one holds a code: the
	// sender holds the room's lock meanwhile (a variable for tests).
	holderWait = time.Second
)

var errHandoffBusy = wire.Define("Too many hand-offs at once")

func (s *Server) receiveHandoff(w http.ResponseWriter, r *http.Request, call peerCall) {
	if s.draining.Load() {
		s.apiError(w, http.StatusServiceUnavailable, errDraining)
		return
	}
	limit := int64(MaxHandoffBytes)
	if call.legacy {
		limit = LegacyHandoffBytes
	}
	size := r.ContentLength
	switch {
	case size > limit:
		s.apiError(w, http.StatusRequestEntityTooLarge, errBodyTooLarge)
		return
	case size < 0:
		size = limit // not declared: at most the limit
	}
	reserved := decodePerByteX2 * size / 2
	if !s.reserve(reserved) {
		s.apiError(w, http.StatusServiceUnavailable, rooms.ErrOverBudget)
		return
	}
	defer s.budget.Add(-reserved)
	body, ok := s.readCall(w, r, call, limit)
	if !ok {
		return
	}
	snap, err := s.decodeHandoff(r.Context(), body)
	if err == nil {
		err = s.admitHandoff(r.Context(), snap, call)
	}
	s.answerHandoff(w, snap, err)
}

// reserve adds n to the budget if it can take it; false (nothing added)
// when it cannot.
func (s *Server) reserve(n int64) bool {
	if s.budget.Used()+n > s.budget.Limit() {
		return false
	}
	s.budget.Add(n)
	return true
}

// decodeHandoff counts body and decodes it, one decode at a time: the
// cost of what it builds is reserved first.
func (s *Server) decodeHandoff(ctx context.Context, body []byte) (*rooms.Snapshot, error) {
	wait := time.NewTimer(handoffDecodeWait)
	defer wait.Stop()
	select {
	case s.decoding <- struct{}{}:
		defer func() { <-s.decoding }()
	case <-wait.C:
		return nil, errHandoffBusy
	case <-ctx.Done():
		return nil, errHandoffBusy
	}
	maxSlots, maxFrames := s.rooms.SnapshotBounds()
	c, err := scanSnapshot(body, maxSlots, maxFrames)
	if err != nil {
		return nil, err
	}
	structs := int64(c.slots)*decodePerSlot + int64(c.frames)*decodePerFrame
	if !s.reserve(structs) {
		return nil, rooms.ErrOverBudget
	}
	defer s.budget.Add(-structs)
	snap, _, err := decodeSnapshot(body, maxSlots, maxFrames)
	if err == nil {
		err = s.rooms.CheckSnapshot(snap)
	}
	return snap, err
}

// errFromNotSender refuses a signed snapshot that names another sender.
var errFromNotSender = rooms.ErrHandoffFormat.With("from")

// admitHandoff takes the room unless a sibling of this region, other than
// its sender, holds its code.
func (s *Server) admitHandoff(ctx context.Context, snap *rooms.Snapshot, call peerCall) error {
	sender := call.sender
	if call.legacy {
		sender = snap.From // unsigned: as the snapshot says
	} else if snap.From != sender {
		return errFromNotSender
	}
	if !s.rooms.Held(snap.Code) { // held here: Import answers (a retry, or taken)
		holder, err := s.siblingHolding(ctx, snap.Code, sender)
		switch {
		case holder != "":
			s.log.Warn("hand-off refused: a sibling holds the code", "room", snap.Code, "from", sender, "holder", holder)
			return rooms.ErrCodeTaken
		case err != nil:
			// The call is authenticated, and refusing would lose rooms on
			// a deploy during a DNS outage.
			s.log.Warn("hand-off: not every sibling said whether it holds the code; taking the room",
				"room", snap.Code, "from", sender, "error", err)
		}
	}
	return s.rooms.Import(snap)
}

func (s *Server) answerHandoff(w http.ResponseWriter, snap *rooms.Snapshot, err error) {
	switch {
	case err == nil:
		s.metrics.handoffs.WithLabelValues(handoffReceived).Inc()
		s.log.Info("room received", "room", snap.Code, "from", snap.From, "slots", len(snap.Slots))
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	case errors.Is(err, rooms.ErrCodeTaken), errors.Is(err, rooms.ErrTransferAborted), errors.Is(err, rooms.ErrTransferDone):
		s.apiError(w, http.StatusConflict, err)
	case errors.Is(err, rooms.ErrOverBudget), errors.Is(err, rooms.ErrTooManyRooms),
		errors.Is(err, rooms.ErrTooManyTransfers), errors.Is(err, errHandoffBusy):
		s.apiError(w, http.StatusServiceUnavailable, err)
	default:
		s.apiError(w, http.StatusBadRequest, err)
	}
}

// siblingHolding asks every machine of this region but this one and
// sender (which holds the room until the move ends, and would say so)
// whether it holds code, within holderWait in all. It
// returns the first that does; err when some could not say.
func (s *Server) siblingHolding(ctx context.Context, code, sender string) (string, error) {
	p := s.cfg.Prober
	if p == nil {
		return "", nil // off Fly: no siblings
	}
	ctx, cancel := context.WithTimeout(ctx, holderWait)
	defer cancel()
	// A sibling that started moments ago may be missing from a cached
	// list: ask DNS afresh (one question per hand-off received).
	peers, err := p.FreshPeers(ctx)
	if err != nil {
		return "", err
	}
	var (
		mu      sync.Mutex // guards holder, unknown
		holder  string
		unknown error
		wg      sync.WaitGroup
	)
	for _, peer := range peers {
		if peer.Region != s.cfg.Region || peer.ID == s.cfg.Instance || peer.ID == sender || !routing.MachineID(peer.ID) {
			continue
		}
		wg.Go(func() {
			held, err := s.holds(ctx, peer.ID, code)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case held && holder == "":
				holder = peer.ID
				cancel() // one is enough
			case err != nil && unknown == nil:
				unknown = err
			}
		})
	}
	wg.Wait()
	if holder != "" {
		return holder, nil
	}
	return "", unknown
}

// holds asks machine id for GET /room/<code> (signed: a peer's probe).
// held is a 200; a 404 is a clean no; anything else is an error.
func (s *Server) holds(ctx context.Context, id, code string) (held bool, err error) {
	addr, err := s.siblingAddr(ctx, id)
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/room/"+url.PathEscape(code), nil)
	if err != nil {
		return false, err
	}
	s.signPeer(req, id, nil)
	resp, err := handoffClient.Do(req)
	if err != nil {
		return false, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // reused when read to its end
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, &internalError{status: resp.StatusCode}
}
