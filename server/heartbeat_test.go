package server

import (
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// The app-level heartbeat (issue 25, item 2): {"type":"ping"} is answered
// with {"type":"pong"} to the pinging socket alone, in a room or not; it is
// never relayed and never numbered, so a recovering slot's frame numbers
// run on without a gap.
func TestPingPong(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{})
	lone := testutil.Dial(t, ts.URL)
	lone.Send(`{"type":"ping"}`)
	lone.Expect(`{"type":"pong"}`)

	h := testutil.Dial(t, ts.URL)
	h.Send(`{"type":"create","clientId":"h","maxClients":4,"recover":true}`)
	code := h.ExpectType("created").Room
	a := testutil.Dial(t, ts.URL)
	a.Send(`{"type":"join","clientId":"a","room":"` + code + `","recover":true}`)
	joined := a.ExpectType("joined")
	h.ExpectType("peer_joined")

	// Extra fields are ignored, as on every message.
	h.Send(`{"type":"ping","data":{"x":1}}`)
	h.Expect(`{"type":"pong"}`)
	a.Send(`{"type":"ping"}`)
	a.Expect(`{"type":"pong"}`)
	// Neither ping reached the other member: the next frame each sees is
	// the message sent after them, numbered right after the join.
	h.Send(`{"type":"send","data":1}`)
	got := a.ExpectType("message")
	if got.Seq != joined.Seq+1 {
		t.Fatalf("message after the pings: seq %d, want %d (a ping was numbered): %s", got.Seq, joined.Seq+1, got.Raw)
	}
	a.Send(`{"type":"send","data":2}`)
	if f := h.ExpectType("message"); f.From != 1 {
		t.Fatalf("host got %s, want a's message", f.Raw)
	}
}

// A ping is a message like any other for the message rate: pings spend
// tokens, and past the burst the sender is told and then closed.
func TestPingCountsTowardMessageRate(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{MsgRate: 0.001, MsgBurst: 3})
	c := testutil.Dial(t, ts.URL)
	for range 3 {
		c.Send(`{"type":"ping"}`)
		c.Expect(`{"type":"pong"}`)
	}
	c.Send(`{"type":"ping"}`)
	c.ExpectErr("Too many messages, slow down")
	for range 4 {
		c.Send(`{"type":"ping"}`)
	}
	c.ExpectClose(1008, "rate limit exceeded")
}

// And a frame like any other for the frame rate: at 2 frames a second with
// a burst of 4, eight pings cannot all be answered in less than about 2 s
// (the meter stops reading the socket until the client is back under).
// Only a lower bound is checked: a slow machine cannot fail it.
func TestPingCountsTowardFrameRate(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{FramesPerSec: 2})
	c := testutil.Dial(t, ts.URL)
	start := time.Now()
	for range 8 {
		c.Send(`{"type":"ping"}`)
	}
	for range 8 {
		c.Expect(`{"type":"pong"}`)
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Fatalf("8 pings answered in %v at 2 frames/s, burst 4: the frame rate did not hold them", d)
	}
}

// A ping is no way to hold a socket without a room: one that only pings
// is closed at the join timeout (1008), as one that sends nothing is.
func TestPingDoesNotHoldASocketWithoutARoom(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{JoinTimeout: 500 * time.Millisecond})
	c := testutil.Dial(t, ts.URL)
	start := time.Now()
	code := 0
	for i := 0; i < 50 && code == 0; i++ { // at most 50 pings, about 5 s
		if c.TrySend(`{"type":"ping"}`) != nil {
			code = c.CloseCode(5 * time.Second)
			break
		}
		f, err := c.Next()
		switch {
		case err != nil:
			code = int(websocket.CloseStatus(err))
		case f.Type != "pong":
			t.Fatalf("got %s, want pong", f.Raw)
		}
		time.Sleep(100 * time.Millisecond) // the client's pace, not a wait for an event
	}
	if code != 1008 {
		t.Fatalf("a socket that only pinged ended with %d, want 1008", code)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("a socket that only pinged lived %v, join timeout 500 ms", d)
	}
}
