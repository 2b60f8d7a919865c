package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/routing"
)

// Hand-off (docs/deploys.md): on its stop signal a machine moves every
// room it holds to a live sibling over the private network, then exits.
// This is the sending side; internal.go is the siblings' endpoints.

const (
	handoffSent     = "sent"
	handoffReceived = "received"
	handoffFailed   = "failed"

	handoffWorkers = 8 // rooms moved at once
	handoffTries   = 3 // attempts on one sibling when the outcome is unknown
)

// handoffTry bounds one call to a sibling (a variable for tests).
var handoffTry = 2 * time.Second

var (
	// A sibling that certainly did not take the room (refused, or not
	// reachable at all): the room may go to another.
	errRefused = errors.New("hand-off refused")
	// A sibling that may or may not have taken it: the room stays here
	// rather than risk two owners.
	errUnknownOutcome = errors.New("hand-off outcome unknown")
)

// movedTo is the sibling a room held here moments ago went to, or "".
func (s *Server) movedTo(code string) string {
	s.movedMu.Lock()
	defer s.movedMu.Unlock()
	return s.moved[code]
}

// sibling is a hand-off target and what we know of its load.
type sibling struct {
	id, region, addr string
	rooms, clients   int
	down             bool
}

// siblings are the targets of one hand-off, chosen least loaded first.
type siblings struct {
	mu   sync.Mutex // guards each sibling's rooms, clients and down
	list []*sibling // set before the hand-off's workers start
}

// pick returns the least loaded live sibling, of this region when one
// is left, not in tried, and counts the room's members to it.
func (ss *siblings) pick(region string, members int, tried map[*sibling]bool) *sibling {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var best *sibling
	for _, same := range []bool{true, false} {
		for _, t := range ss.list {
			if t.down || tried[t] || (t.region == region) != same {
				continue
			}
			if best == nil || t.clients < best.clients || (t.clients == best.clients && t.rooms < best.rooms) {
				best = t
			}
		}
		if best != nil {
			break
		}
	}
	if best != nil {
		best.clients += members
		best.rooms++
	}
	return best
}

func (ss *siblings) markDown(t *sibling) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	t.down = true
}

// handoffClient talks to siblings; each request is bounded by its context.
var handoffClient = &http.Client{Transport: &http.Transport{
	Proxy:               nil,
	DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
	MaxIdleConnsPerHost: handoffWorkers,
}}

// findSiblings asks every other started machine for its load; those that
// answer and are not draining are the targets.
func (s *Server) findSiblings(ctx context.Context) []*sibling {
	peers, err := s.cfg.Prober.FreshPeers(ctx)
	if err != nil {
		s.log.Warn("hand-off: no peer list", "error", err)
		return nil
	}
	var (
		mu  sync.Mutex // guards out
		out []*sibling
		wg  sync.WaitGroup
	)
	for _, peer := range peers {
		if peer.ID == s.cfg.Instance || !routing.MachineID(peer.ID) {
			continue
		}
		wg.Go(func() {
			addr, err := s.siblingAddr(ctx, peer.ID)
			if err != nil {
				return
			}
			t := &sibling{id: peer.ID, region: peer.Region, addr: addr}
			var load loadInfo
			if err := s.internalCall(ctx, http.MethodGet, t.id, t.addr, loadPath, nil, &load); err != nil || load.Draining {
				return
			}
			t.rooms, t.clients = load.Rooms, load.Clients
			mu.Lock()
			out = append(out, t)
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// siblingRetry is how often a stopping machine that found no sibling asks
// again, within its HANDOFF_TIMEOUT: the DNS may be down for a few seconds
// (and had no last good answer), or the deploy's next machine may be
// booting. Its rooms go on meanwhile; one that ends needs no move.
const siblingRetry = 500 * time.Millisecond

// findSiblingsWithin is findSiblings, asked again every siblingRetry
// until one answers, the rooms are gone or ctx ends.
func (s *Server) findSiblingsWithin(ctx context.Context) []*sibling {
	for {
		if list := s.findSiblings(ctx); len(list) > 0 || s.rooms.Len() == 0 {
			return list
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(siblingRetry):
		}
	}
}

// siblingAddr is machine id's host:port on the private network.
func (s *Server) siblingAddr(ctx context.Context, id string) (string, error) {
	p := s.cfg.Prober
	ip, err := routing.Address(ctx, p.Resolver, p.App, id)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(p.Port)), nil
}

// internalCall makes one request to sibling to's internal endpoint, signed,
// and decodes its JSON answer into out (when not nil). A status other than
// 200 is an *internalError.
//
// A sibling of the previous release knows only the unsigned bearer form:
// it answers 401 without this release's marker (peerMarker), and the call
// is made once more in that form, to that sibling only. This goes in the
// next release, with the receiving side's bearer form (docs/deploys.md).
func (s *Server) internalCall(ctx context.Context, method, to, addr, path string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, handoffTry)
	defer cancel()
	status, answer, err := s.internalDo(ctx, method, to, addr, path, body, false)
	if err == nil && status == http.StatusUnauthorized && !answer.marked && s.cfg.HandoffSecret != "" {
		status, answer, err = s.internalDo(ctx, method, to, addr, path, body, true)
	}
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		var e struct{ Error string }
		json.Unmarshal(answer.body, &e)
		return &internalError{status: status, msg: e.Error}
	}
	if out != nil {
		return json.Unmarshal(answer.body, out)
	}
	return nil
}

// internalAnswer is a sibling's answer: its body (at most 64 KiB) and
// whether it carries this release's marker.
type internalAnswer struct {
	body   []byte
	marked bool
}

// internalDo sends one request, signed or (bearer) in the previous
// release's form.
func (s *Server) internalDo(ctx context.Context, method, to, addr, path string, body []byte,
	bearer bool) (int, internalAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return 0, internalAnswer{}, err
	}
	if bearer {
		req.Header.Set("Authorization", "Bearer "+s.cfg.HandoffSecret)
	} else {
		s.signPeer(req, to, body)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := handoffClient.Do(req)
	if err != nil {
		return 0, internalAnswer{}, err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, internalAnswer{answer, resp.Header.Get(peerMarker) != ""}, nil
}

type internalError struct {
	status int
	msg    string
}

func (e *internalError) Error() string { return strconv.Itoa(e.status) + " " + e.msg }

// sendSnapshot delivers snap to t. It retries a delivery whose outcome is
// unknown (with the same transfer id, which the sibling takes once), and
// reports errRefused when t certainly did not take the room.
func (s *Server) sendSnapshot(ctx context.Context, t *sibling, snap *rooms.Snapshot) error {
	body, err := encodeSnapshot(snap)
	if err == nil && len(body) > MaxHandoffBytes {
		for i := range snap.Slots {
			snap.Slots[i].Window = nil
		}
		body, err = encodeSnapshot(snap)
	}
	if err != nil || len(body) > MaxHandoffBytes {
		return errRefused
	}
	for try := 1; ; try++ {
		err := s.internalCall(ctx, http.MethodPost, t.id, t.addr, handoffPath, body, nil)
		var ie *internalError
		var ne *net.OpError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ie):
			return errors.Join(errRefused, err)
		case errors.As(err, &ne) && ne.Op == "dial":
			return errors.Join(errRefused, err)
		case try == handoffTries || ctx.Err() != nil:
			return errors.Join(errUnknownOutcome, err)
		}
	}
}

// HandOff moves every room held here to a live sibling: the least loaded
// of this region, another region only when this one has none. A room that
// cannot move stays and drains as before. It returns how many rooms moved
// and how many are left here.
func (s *Server) HandOff(ctx context.Context) (moved, left int) {
	codes := s.rooms.Codes()
	if len(codes) == 0 {
		return 0, 0
	}
	var targets siblings
	if s.cfg.Prober != nil {
		targets.list = s.findSiblingsWithin(ctx)
	}
	if len(targets.list) == 0 {
		s.log.Warn("hand-off: no sibling to take the rooms; they drain here", "rooms", len(codes))
		s.metrics.handoffs.WithLabelValues(handoffFailed).Add(float64(len(codes)))
		return 0, s.rooms.Len()
	}
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(handoffWorkers, len(codes)) {
		wg.Go(func() {
			for code := range work {
				s.moveRoom(ctx, code, &targets)
			}
		})
	}
	for _, code := range codes {
		work <- code
	}
	close(work)
	wg.Wait()
	left = s.rooms.Len()
	return len(codes) - left, left
}

// moveRoom hands one room to a sibling, trying the next one when a
// sibling refuses.
func (s *Server) moveRoom(ctx context.Context, code string, targets *siblings) {
	info, ok := s.rooms.Lookup(code)
	if !ok {
		return // ended on its own meanwhile
	}
	transfer := randomID()
	tried := map[*sibling]bool{}
	for {
		t := targets.pick(s.cfg.Region, info.Clients, tried)
		if t == nil {
			break
		}
		tried[t] = true
		start := time.Now()
		err := s.rooms.Move(code, transfer, t.id, func(snap *rooms.Snapshot) error { return s.sendSnapshot(ctx, t, snap) })
		switch {
		case err == nil:
			s.movedMu.Lock()
			s.moved[code] = t.id
			s.movedMu.Unlock()
			s.metrics.handoffs.WithLabelValues(handoffSent).Inc()
			s.metrics.handoffDur.Observe(time.Since(start).Seconds())
			s.log.Info("room handed off", "room", code, "to", t.id, "region", t.region, "clients", info.Clients,
				"ms", time.Since(start).Milliseconds())
			return
		case errors.Is(err, rooms.ErrRoomNotFound):
			return
		case errors.Is(err, errRefused):
			var ie *internalError
			if !errors.As(err, &ie) {
				targets.markDown(t) // unreachable: no other room tries it
			}
			s.log.Warn("hand-off refused", "room", code, "to", t.id, "error", err)
			continue
		}
		// The sibling may hold a copy it took without our learning so:
		// this room stays, and the copy must go (unless someone joined it).
		s.log.Warn("hand-off failed; the room stays", "room", code, "to", t.id, "error", err)
		s.abortTransfer(t, code, transfer)
		break
	}
	s.metrics.handoffs.WithLabelValues(handoffFailed).Inc()
}

// abortTransfer asks t, best effort and briefly, to drop its copy of a
// room whose transfer we could not confirm.
func (s *Server) abortTransfer(t *sibling, code, transfer string) {
	body, _ := json.Marshal(map[string]string{"code": code, "transfer": transfer})
	var answer struct{ Dropped bool }
	err := s.internalCall(context.Background(), http.MethodPost, t.id, t.addr, abortPath, body, &answer)
	s.log.Warn("hand-off aborted", "room", code, "to", t.id, "dropped", answer.Dropped, "error", err)
}

func randomID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}
