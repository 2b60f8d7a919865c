package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/party-sockets/party-sockets/closecode"
)

// ServerError is an error message the server answered with.
type ServerError struct{ Message string }

func (e *ServerError) Error() string { return "party-sockets: " + e.Message }

// Is makes an answer of RoomGone match ErrRoomGone.
func (e *ServerError) Is(target error) bool {
	return target == ErrRoomGone && slices.Contains(RoomGone, e.Message)
}

type frame struct {
	Type      string          `json:"type"`
	Room      string          `json:"room"`
	Instance  string          `json:"instance"`
	Region    string          `json:"region"`
	Index     int             `json:"index"`
	Peers     []int           `json:"peers"`
	URL       string          `json:"url"`
	From      int             `json:"from"`
	Data      json.RawMessage `json:"data"`
	Message   string          `json:"message"`
	Seq       *uint64         `json:"seq"`
	Recovered *bool           `json:"recovered"`
	Restored  bool            `json:"restored"`
	Rebuilt   bool            `json:"rebuilt"`
	Ticket    string          `json:"ticket"`
}

// fresh reports whether a numbered frame is new, and records its number;
// a frame seen before (a recovery overlapping what arrived) is dropped.
func (c *Client) fresh(f *frame) bool {
	if f.Seq == nil {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if *f.Seq <= c.seq {
		return false
	}
	c.seq = *f.Seq
	return true
}

// joinedSeq takes the seq of a created or joined frame: after a complete
// recovery the frames that follow carry the numbers up to it; otherwise
// the client starts over from it.
func (c *Client) joinedSeq(f *frame) *RecoveryFailed {
	if f.Seq == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var failed *RecoveryFailed
	if f.Recovered != nil && !*f.Recovered {
		failed = &RecoveryFailed{Since: c.seq, Latest: *f.Seq}
	}
	if f.Recovered == nil || failed != nil {
		c.seq = *f.Seq
	}
	c.haveSeq = true
	return failed
}

// connect dials u, sends first and waits for created or joined; how says
// what the joined frame said of a room rebuilt from a ticket.
func (c *Client) connect(ctx context.Context, u string, first map[string]any) (how rebuiltBy, err error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: c.opts.Header})
	if err != nil {
		return notRebuilt, err
	}
	ws.SetReadLimit(1 << 20)
	b, _ := json.Marshal(first)
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		ws.CloseNow()
		return notRebuilt, err
	}
	for {
		_, raw, err := ws.Read(ctx)
		if err != nil {
			ws.CloseNow()
			return notRebuilt, err
		}
		var f frame
		if err := json.Unmarshal(raw, &f); err != nil {
			continue
		}
		switch f.Type {
		case "error":
			ws.CloseNow()
			return notRebuilt, &ServerError{f.Message}
		case "created":
			c.joinedSeq(&f)
			c.mu.Lock()
			c.ws, c.room, c.index, c.instance = ws, f.Room, 0, f.Instance
			c.mu.Unlock()
			c.emit(Created{Room: f.Room, Instance: f.Instance, Region: f.Region, URL: f.URL})
			return notRebuilt, nil
		case "joined":
			failed := c.joinedSeq(&f)
			c.mu.Lock()
			c.ws, c.room, c.index = ws, f.Room, f.Index
			pinned := c.instance != ""
			c.mu.Unlock()
			if !pinned {
				c.learnInstance(ctx, f.Room)
			}
			c.emit(Joined{Room: f.Room, Index: f.Index, Peers: f.Peers, URL: f.URL})
			if failed != nil {
				c.emit(*failed)
			}
			switch {
			case f.Restored:
				return rebuiltByUs, nil
			case f.Rebuilt:
				return rebuiltByOther, nil
			}
			return notRebuilt, nil
		}
	}
}

// learnInstance asks GET /room/<code> which machine holds the room
// (X-Instance-Id), so reconnects can pin it. Best effort.
func (c *Client) learnInstance(ctx context.Context, code string) {
	base := strings.Replace(strings.Replace(c.opts.URL, "ws://", "http://", 1), "wss://", "https://", 1)
	u := base + "/room/" + url.PathEscape(code)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return
	}
	for k, v := range c.opts.Header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	resp.Body.Close()
	if id := resp.Header.Get("X-Instance-Id"); resp.StatusCode == 200 && id != "" {
		c.mu.Lock()
		c.instance = id
		c.mu.Unlock()
	}
}

// unpin forgets the room's machine: the next rejoin goes by code, and
// learns the machine again.
func (c *Client) unpin() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.instance = ""
}

func (c *Client) rejoinURL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.opts.URL + "/" + url.PathEscape(c.room)
	if c.instance != "" {
		u += "?instance=" + url.QueryEscape(c.instance)
	}
	return u
}

func (c *Client) emit(ev any) {
	select {
	case c.events <- ev:
	case <-c.ctx.Done():
	}
}

// run reads until the socket ends, then reconnects or stops.
func (c *Client) run() {
	defer close(c.done)
	defer close(c.events)
	for {
		err := c.readAll()
		code := int(websocket.CloseStatus(err))
		c.mu.Lock()
		c.ws = nil
		c.mu.Unlock()
		switch {
		case c.ctx.Err() != nil:
			c.forgetTicket()
			c.final(Closed{Code: 1000, Reason: "closed by the client"})
			return
		case closecode.Code(code).Final():
			c.forgetTicket() // replaced, or the room ended: never restore it
			c.final(Closed{Code: code, Reason: closecode.Code(code).Reason(), Final: true, Err: err})
			return
		case code == int(websocket.StatusGoingAway) || code == int(closecode.Restarting):
			// The machine is stopping (Fly's proxy says 1001, the server
			// 1012): its room moves to a sibling, so the pin is stale.
			c.unpin()
		}
		if closed, ok := c.reconnect(err); !ok {
			c.final(closed)
			return
		}
	}
}

// final delivers the last event even when nobody reads any more.
func (c *Client) final(ev Closed) {
	select {
	case c.events <- ev:
	case <-time.After(time.Second):
	}
}

func (c *Client) readAll() error {
	c.mu.Lock()
	ws := c.ws
	c.mu.Unlock()
	dead := c.watch(ws)
	defer dead.stop()
	for {
		_, raw, err := ws.Read(c.ctx)
		if err != nil {
			if dead.fired() {
				return ErrDeadLink
			}
			return err
		}
		c.heard.Store(time.Now().UnixNano()) // any frame is proof of life
		var f frame
		if json.Unmarshal(raw, &f) != nil || c.heartbeatAnswer(&f) || !c.fresh(&f) {
			continue
		}
		switch f.Type {
		case "peer_joined":
			c.emit(PeerJoined{f.Index})
		case "peer_left":
			c.emit(PeerLeft{f.Index})
		case "message":
			c.emit(Message{From: f.From, Data: f.Data})
		case "state":
			c.keepState(f.Data)
			c.emit(State{Data: f.Data})
		case "ticket":
			c.keepTicket(f.Ticket) // not the game's: no event
		case "error":
			if f.Message == answerTicketsOff && !c.opts.NoTickets {
				continue // asked by default, not by the game: no tickets here, as before
			}
			c.emit(Error{f.Message})
		}
	}
}

// rebuiltBy is what a joined frame says of a room rebuilt from a ticket.
type rebuiltBy uint8

const (
	notRebuilt     rebuiltBy = iota
	rebuiltByUs              // "restored": true: this client's restore rebuilt it
	rebuiltByOther           // "rebuilt": true: back in a room another member rebuilt
)

// reconnect retries with exponential backoff and jitter, rejoining with the
// same clientId. It gives up after MaxAttempts, or when the room is gone:
// "Room not found" for longer than RoomWait after the first such answer
// (a room being handed to another machine is not found for a moment; the
// client then also drops its pin and rejoins by code; while the machine
// does not answer at all, the wait has not begun). Holding a ticket, it
// answers "Room not found" with a restore (tickets.go: nextStep).
func (c *Client) reconnect(cause error) (Closed, bool) {
	delay := c.opts.MinBackoff
	var lost time.Time // the first answer that the room is not there
	// Waiting for a moving room: quick first (a hand-off takes
	// milliseconds), then half as long again each time, up to one try
	// every 2 s, so a room that is really gone costs the address few
	// misses. A restore told "Try again" backs off the same way.
	roomDelay := min(c.opts.MinBackoff, 500*time.Millisecond)
	restoring, byOther := false, false // sending a restore; another member restored the room
	for attempt := 1; c.opts.MaxAttempts < 0 || attempt <= c.opts.MaxAttempts; attempt++ {
		wait := delay/2 + time.Duration(rand.Int64N(int64(delay/2)+1)) // jitter: [d/2, d]
		c.emit(Reconnecting{Attempt: attempt, Delay: wait, Err: cause})
		select {
		case <-c.ctx.Done():
			return Closed{Code: 1000, Reason: "closed by the client"}, false
		case <-time.After(wait):
		}
		msg, u := c.rejoinMsg()
		if restoring {
			msg, u = c.restoreMsg()
		}
		how, err := c.connect(c.ctx, u, msg)
		if err == nil {
			// A plain rejoin may land in a room another member rebuilt
			// meanwhile ("rebuilt": true): reported as when told Room exists.
			if restoring || byOther || how == rebuiltByOther {
				c.emit(Restored{Room: c.Room(), ByOther: how != rebuiltByUs})
			}
			return Closed{}, true
		}
		if c.ctx.Err() != nil {
			return Closed{Code: 1000, Reason: "closed by the client"}, false
		}
		var se *ServerError
		if !errors.As(err, &se) {
			cause, delay = err, min(2*delay, c.opts.MaxBackoff)
			continue // no answer (the machine is down): the same try again
		}
		switch nextStep(se.Message, restoring, c.haveTicket()) {
		case stepRetry:
			cause, delay = err, min(2*delay, c.opts.MaxBackoff)
			continue
		case stepFinal:
			c.forgetTicket()
			c.emit(RestoreFailed{Room: c.Room(), Reason: se.Message})
			return Closed{Reason: "room not found", Final: true, Err: err}, false
		case stepNoTickets:
			c.forgetTicket()
			c.emit(RestoreFailed{Room: c.Room(), Reason: se.Message})
			restoring = false
		case stepJoin:
			restoring, byOther = false, true
		case stepRestore:
			restoring = true
		case stepWaitRoom:
		}
		if lost.IsZero() {
			lost = time.Now()
		}
		if time.Since(lost) > c.opts.RoomWait {
			return Closed{Reason: "room not found", Final: true, Err: err}, false
		}
		c.unpin()
		cause, delay, roomDelay = err, roomDelay, min(roomDelay*3/2, 2*time.Second)
		if se.Message == answerRoomExists {
			delay = 0 // the room is back: join it at once
		}
		attempt-- // waiting for a moving or lost room is not a failed attempt
	}
	return Closed{Reason: fmt.Sprintf("gave up after %d attempts", c.opts.MaxAttempts), Err: cause}, false
}

// rejoinMsg is the join of a reconnect, and its URL (pinned when known).
func (c *Client) rejoinMsg() (map[string]any, string) {
	msg := map[string]any{"type": "join", "clientId": c.opts.ClientID, "room": c.Room()}
	c.addRecovery(msg)
	c.addTickets(msg)
	c.mu.Lock()
	if c.ticket != "" {
		// A room rebuilt from another member's older ticket moves up to
		// ours first: we take back our own slot, not a fresh index.
		msg["ticket"] = c.ticket
	}
	c.mu.Unlock()
	return msg, c.rejoinURL()
}
