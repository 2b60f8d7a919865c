package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/party-sockets/party-sockets/regions"
	"github.com/party-sockets/party-sockets/routing"
)

// What a sibling's signed probe (GET /room/<code>) is told beyond the
// public answer (docs/protocol.md "One owner"): a 200 carries the room's
// X-Room-Version: <epoch>.<version> (and X-Room-From: <epoch> when it was
// restored from a ticket), a code handed off moments ago answers 200 with
// X-Room-Moved: <id> (the room lives on elsewhere: not absent), and a code
// whose room ended here within the ticket window answers 410 with
// X-Room-Ended: 1. A client's lookup sees none of these.
const (
	headerRoomVersion = "X-Room-Version"
	headerRoomFrom    = "X-Room-From"
	headerRoomEnded   = "X-Room-Ended"
	headerRoomMoved   = "X-Room-Moved"
)

// siblingLookup adds what a signed probe is told; it reports whether it
// answered (410 for an ended code).
func (s *Server) siblingLookup(w http.ResponseWriter, code string, found bool) bool {
	if found {
		if r := s.rooms.Room(code); r != nil {
			epoch, version, from := r.Epoch()
			w.Header().Set(headerRoomVersion, strconv.FormatUint(epoch, 10)+"."+strconv.FormatUint(version, 10))
			if from != 0 {
				w.Header().Set(headerRoomFrom, strconv.FormatUint(from, 10))
			}
		}
		return false
	}
	if to := s.movedTo(code); to != "" {
		// Handed off moments ago: the room lives on, on to (a machine the
		// asker's DNS may not list yet). Not absent: a restore must not
		// rebuild it.
		w.Header().Set(headerRoomMoved, to)
		writeJSON(w, http.StatusOK, map[string]string{"moved": to})
		return true
	}
	if !s.rooms.Ended(code) {
		return false
	}
	w.Header().Set(headerRoomEnded, "1")
	s.apiError(w, http.StatusGone, errRoomEnded)
	return true
}

// heldCopy is a sibling that holds a code, and its copy's version.
type heldCopy struct {
	id                   string
	epoch, version, from uint64
	versioned            bool // the answer had X-Room-Version (a machine of this release)
	moved                bool // the sibling handed the room off moments ago (X-Room-Moved): no copy of its own
}

// siblingAnswers is what a round of signed probes learned of a code.
type siblingAnswers struct {
	holders []heldCopy
	ended   bool
	moved   bool // a sibling handed the room off moments ago: it lives on elsewhere
}

// askSiblings asks every started machine of this region and of the code's
// home region (but this one) about code, within holderWait once it has
// the list (FreshPeers: within a second); err
// when one could not say. wide asks every started machine of the app: a
// restore must not rebuild a room that lives abroad (a region that lost
// its machines sent its rooms away, and the machines it started since do
// not know where), or two copies would go on. Restores are rare and
// bounded (restoreRoundsPerSec, the address's probe allowance), so they
// may pay for a wide round; the checks of a whole machine's rooms after a
// freeze stay narrow. For a wide round, a DNS that fails makes the answer
// unknown (Prober.LivePeers): a deploy during the outage started machines
// the last good answer does not name. It still asks the machines that
// answer names: a holder found there is an answer (Room exists, and the
// member's join finds it), none is not.
func (s *Server) askSiblings(ctx context.Context, code string, wide bool) (siblingAnswers, error) {
	var ans siblingAnswers
	p := s.cfg.Prober
	var listed error // the DNS failed: the list is the last good answer, and "no holder" is unknown
	var peers []routing.Peer
	var err error
	if !wide {
		peers, err = p.FreshPeers(ctx)
	} else if peers, err = p.LivePeers(ctx); errors.Is(err, routing.ErrStandIn) {
		listed, err = err, nil
	}
	if err != nil {
		return ans, err
	}
	// The list took at most freshWait (a failing DNS: all of it); the
	// siblings have holderWait of their own.
	ctx, cancel := context.WithTimeout(ctx, holderWait)
	defer cancel()
	home, _ := regions.HomeOf(code)
	var (
		mu      sync.Mutex // guards ans, unknown
		unknown error
		wg      sync.WaitGroup
	)
	for _, peer := range peers {
		if (!wide && peer.Region != s.cfg.Region && peer.Region != home) || peer.ID == s.cfg.Instance || !routing.MachineID(peer.ID) {
			continue
		}
		wg.Go(func() {
			c, ended, err := s.askSibling(ctx, peer.ID, code)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				unknown = err
			case ended:
				ans.ended = true
			case c.moved:
				ans.moved = true
			case c.id != "":
				ans.holders = append(ans.holders, c)
			}
		})
	}
	wg.Wait()
	if unknown == nil {
		unknown = listed
	}
	return ans, unknown
}

// askSibling is one signed probe: the copy the sibling holds (id set), or
// that it ended the code, or neither (404); anything else is an error.
func (s *Server) askSibling(ctx context.Context, id, code string) (c heldCopy, ended bool, err error) {
	addr, err := s.siblingAddr(ctx, id)
	if err != nil {
		return c, false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/room/"+url.PathEscape(code), nil)
	if err != nil {
		return c, false, err
	}
	s.signPeer(req, id, nil)
	resp, err := handoffClient.Do(req)
	if err != nil {
		return c, false, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK && resp.Header.Get(headerRoomMoved) != "":
		return heldCopy{moved: true}, false, nil
	case resp.StatusCode == http.StatusOK:
		c = heldCopy{id: id}
		c.epoch, c.version, c.versioned = parseRoomVersion(resp.Header.Get(headerRoomVersion))
		c.from, _ = strconv.ParseUint(resp.Header.Get(headerRoomFrom), 10, 64)
		return c, false, nil
	case resp.StatusCode == http.StatusGone && resp.Header.Get(headerRoomEnded) == "1":
		return c, true, nil
	case resp.StatusCode == http.StatusNotFound:
		return c, false, nil
	}
	return c, false, &internalError{status: resp.StatusCode}
}

// parseRoomVersion reads <epoch>.<version> (two decimal uint64s).
func parseRoomVersion(v string) (epoch, version uint64, ok bool) {
	if len(v) > 41 {
		return 0, 0, false
	}
	e, ver, found := strings.Cut(v, ".")
	if !found {
		return 0, 0, false
	}
	epoch, err1 := strconv.ParseUint(e, 10, 64)
	version, err2 := strconv.ParseUint(ver, 10, 64)
	return epoch, version, err1 == nil && err2 == nil
}

// rendezvous is the machine of code's home region that decides it
// (routing.Rendezvous over the started machines DNS lists, a cached
// answer will do); "" without tickets, off Fly, or when DNS fails.
func (s *Server) rendezvous(ctx context.Context, code string) string {
	p := s.cfg.Prober
	if s.sealer == nil || p == nil {
		return ""
	}
	home, ok := regions.HomeOf(code)
	if !ok {
		return ""
	}
	peers, err := routing.Peers(ctx, p.Resolver, p.App)
	if err != nil {
		return ""
	}
	ids := make([]string, 0, len(peers))
	for _, peer := range peers {
		if peer.Region == home && routing.MachineID(peer.ID) {
			ids = append(ids, peer.ID)
		}
	}
	return routing.Rendezvous(code, ids)
}
