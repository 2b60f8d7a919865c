package server

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/party-sockets/party-sockets/rooms"
)

// One owner across a crash (docs/protocol.md "One owner"): when machines find two
// copies of one room (a signed probe answers 200 from more than one, with
// X-Room-Version), the newer (rooms.Newer) wins and the others are told,
// by a signed POST /.internal/yield {"code","epoch","version","from"}: a
// holder told of a newer copy closes its members with 1012 and drops the
// room without room.closed. A machine that was frozen (its watch sees its
// own ticks stop for more than freezeGap) asks the region's siblings
// about every room it holds, and gives way to a newer copy.

const yieldPath = internalPrefix + "yield"

// maxYieldBody bounds a yield call's body: a code and three numbers.
const maxYieldBody = 1 << 10

// yieldCall is POST /.internal/yield.
type yieldCall struct {
	Code    string `json:"code"`
	Epoch   uint64 `json:"epoch"`
	Version uint64 `json:"version"`
	From    uint64 `json:"from"`
}

func (s *Server) receiveYield(w http.ResponseWriter, r *http.Request, call peerCall) {
	body, ok := s.readCall(w, r, call, maxYieldBody)
	if !ok {
		return
	}
	var y yieldCall
	if json.Unmarshal(body, &y) != nil || y.Code == "" || y.Epoch == 0 {
		s.apiError(w, http.StatusBadRequest, errBadYield)
		return
	}
	yielded := s.rooms.Yield(y.Code, rooms.Version{Epoch: y.Epoch, Version: y.Version, From: y.From})
	if yielded {
		s.log.Warn("room yielded to a newer copy", "room", y.Code, "from", call.sender)
	}
	writeJSON(w, http.StatusOK, map[string]bool{"yielded": yielded})
}

// settleCopies makes the newest of the copies of code that answered a
// round (and this machine's, if it holds one) the only one: the others
// are told to yield, and this machine yields itself if it is older. It
// reports whether this machine still holds the code.
func (s *Server) settleCopies(ctx context.Context, code string, copies []heldCopy) bool {
	newest := rooms.Version{}
	newestID := ""
	if r := s.rooms.Room(code); r != nil {
		newest, newestID = r.VersionOf(), s.cfg.Instance
	}
	for _, c := range copies {
		v := rooms.Version{Epoch: c.epoch, Version: c.version, From: c.from}
		if c.versioned && (newestID == "" || rooms.Newer(v, newest)) {
			newest, newestID = v, c.id
		}
	}
	if newestID == "" {
		return false
	}
	var wg sync.WaitGroup
	for _, c := range copies {
		if c.id != newestID && c.versioned {
			wg.Go(func() { s.tellYield(ctx, c.id, code, newest) })
		}
	}
	wg.Wait()
	if newestID != s.cfg.Instance && s.rooms.Yield(code, newest) {
		s.log.Warn("room yielded to a newer copy", "room", code, "holder", newestID)
	}
	return s.rooms.Held(code)
}

// tellYield tells sibling id of the newer copy v of code.
func (s *Server) tellYield(ctx context.Context, id, code string, v rooms.Version) {
	addr, err := s.siblingAddr(ctx, id)
	if err != nil {
		return
	}
	body, _ := json.Marshal(yieldCall{Code: code, Epoch: v.Epoch, Version: v.Version, From: v.From})
	var out struct{ Yielded bool }
	if err := s.internalCall(ctx, http.MethodPost, id, addr, yieldPath, body, &out); err != nil {
		s.log.Info("yield call failed", "room", code, "to", id, "error", err)
		return
	}
	if out.Yielded {
		s.log.Warn("a sibling's older copy yielded", "room", code, "sibling", id)
	}
}

// freezeTick and freezeGap: the watch ticks every freezeTick; a tick that
// comes more than freezeGap after the last means the machine was frozen
// (SIGSTOP, a host paused) or starved that long.
const (
	freezeTick = time.Second
	freezeGap  = 5 * time.Second
)

// watchFreeze runs until the server closes (a goroutine of New).
func (s *Server) watchFreeze() {
	if s.sealer == nil || s.cfg.Prober == nil {
		return // no tickets, or no siblings: nobody can have restored a room elsewhere
	}
	t := time.NewTicker(freezeTick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-s.baseCtx.Done():
			return
		case <-t.C:
			// time.Now, not the tick's value: a ticker sends the time it
			// was due, which hides a freeze.
			if gap := time.Since(last); gap > freezeGap {
				s.log.Warn("this machine was frozen: asking its siblings about its rooms", "gap", gap.Round(time.Millisecond))
				s.checkOwnership(s.baseCtx)
			}
			last = time.Now()
		}
	}
}

// checkOwnership asks the region's siblings about every room held here,
// a few at a time, and settles each code that two machines hold.
func (s *Server) checkOwnership(ctx context.Context) {
	codes := s.rooms.Codes()
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(4, len(codes)) {
		wg.Go(func() {
			for code := range work {
				ans, _ := s.askSiblings(ctx, code, false)
				if len(ans.holders) > 0 {
					s.settleCopies(ctx, code, ans.holders)
				}
			}
		})
	}
	for _, code := range codes {
		work <- code
	}
	close(work)
	wg.Wait()
}
