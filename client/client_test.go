package client

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/regions"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/server"
)

// newCutProxy puts a network the test can cut between clients and target.
func newCutProxy(t *testing.T, target string) *testutil.NetCut {
	return testutil.StartNetCut(t, target)
}

func newServer(t *testing.T) (*httptest.Server, *rooms.Manager) {
	t.Helper()
	mgr := rooms.NewManager(rooms.Config{Instance: "m1", HostGrace: time.Minute, Codes: regions.NewGenerator("", nil)})
	reg := prometheus.NewRegistry()
	s := server.New(server.Config{Instance: "m1", Logger: slog.New(slog.DiscardHandler)}, mgr, reg, reg)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return hs, mgr
}

// hostAndGuest creates a room of 4 at url and joins a guest to it.
func hostAndGuest(t *testing.T, url string) (host, guest *Client, room string) {
	t.Helper()
	host, err := Create(t.Context(), fast(url), 4, "")
	if err != nil {
		t.Fatal(err)
	}
	room = next[Created](t, host).Room
	if guest, err = Join(t.Context(), fast(url), room); err != nil {
		t.Fatal(err)
	}
	next[Joined](t, guest)
	return host, guest, room
}

// next waits for the next event of type E, skipping others.
func next[E any](t *testing.T, c *Client) E {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				var zero E
				t.Fatalf("events closed while waiting for %T", zero)
			}
			if e, ok := ev.(E); ok {
				return e
			}
		case <-timeout:
			var zero E
			t.Fatalf("timed out waiting for %T", zero)
		}
	}
}

func fast(url string) Options {
	return Options{URL: url, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
}

func TestCreateJoinRelay(t *testing.T) {
	t.Parallel()
	hs, _ := newServer(t)
	ctx := t.Context()
	host, err := Create(ctx, fast(hs.URL), 4, "")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	created := next[Created](t, host)
	if created.Instance != "m1" || host.Index() != 0 {
		t.Fatalf("created = %+v", created)
	}
	guest, err := Join(ctx, fast(hs.URL), created.Room)
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	if j := next[Joined](t, guest); j.Index != 1 || len(j.Peers) != 1 {
		t.Fatalf("joined = %+v", j)
	}
	if guest.Instance() != "m1" {
		t.Fatalf("guest did not learn the instance: %q", guest.Instance())
	}
	next[PeerJoined](t, host)
	if err := guest.Send(ctx, map[string]int{"buzz": 1}); err != nil {
		t.Fatal(err)
	}
	if m := next[Message](t, host); m.From != 1 || string(m.Data) != `{"buzz":1}` {
		t.Fatalf("message = %+v", m)
	}
	host.SendTo(ctx, 1, "just you")
	if m := next[Message](t, guest); string(m.Data) != `"just you"` {
		t.Fatalf("message = %+v", m)
	}
	host.SetState(ctx, map[string]int{"round": 2})
	if s := next[State](t, guest); string(s.Data) != `{"round":2}` {
		t.Fatalf("state = %+v", s)
	}
	if _, err := Join(ctx, fast(hs.URL), "nope00"); err == nil || !strings.Contains(err.Error(), "Room not found") {
		t.Fatalf("join of a missing room: %v", err)
	}
}

// A cut socket: the client rejoins its own slot, pinned to the room's
// instance. Without recovery it gets the retained state again.
func TestReconnectKeepsSlotAndState(t *testing.T) {
	t.Parallel()
	hs, _ := newServer(t)
	ctx := t.Context()
	host, err := Create(ctx, fast(hs.URL), 4, "")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	room := next[Created](t, host).Room
	host.SetState(ctx, "round 3")
	proxy := newCutProxy(t, strings.TrimPrefix(hs.URL, "http://"))
	opts := fast("ws://" + proxy.Addr())
	opts.NoRecover = true
	guest, err := Join(ctx, opts, room)
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	next[Joined](t, guest)
	next[State](t, guest)
	next[PeerJoined](t, host)

	proxy.Cut(0)
	if r := next[Reconnecting](t, guest); r.Attempt != 1 {
		t.Fatalf("reconnecting = %+v", r)
	}
	if j := next[Joined](t, guest); j.Index != 1 {
		t.Fatalf("rejoined at slot %d, want 1", j.Index)
	}
	if s := next[State](t, guest); string(s.Data) != `"round 3"` {
		t.Fatalf("state after reconnect = %s", s.Data)
	}
	lines := proxy.RequestLines()
	if last := lines[len(lines)-1]; !strings.Contains(last, "/"+room+"?instance=m1 ") {
		t.Fatalf("reconnect request %q is not pinned to the room's instance", last)
	}
	// The host saw the slot leave and come back, nothing more.
	next[PeerLeft](t, host)
	if p := next[PeerJoined](t, host); p.Index != 1 {
		t.Fatalf("host saw %+v", p)
	}
	if err := guest.Send(ctx, "back"); err != nil {
		t.Fatal(err)
	}
	if m := next[Message](t, host); string(m.Data) != `"back"` {
		t.Fatalf("host got %+v", m)
	}
}

// Recovery (on by default): a player's socket is cut while the host sends
// 100 targeted and 100 broadcast messages; after the rejoin the player has
// all 200, exactly once, in order, and no resync was needed.
func TestReconnectRecoversEveryMessage(t *testing.T) {
	t.Parallel()
	hs, _ := newServer(t)
	ctx := t.Context()
	host, err := Create(ctx, fast(hs.URL), 4, "")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	room := next[Created](t, host).Room
	proxy := newCutProxy(t, strings.TrimPrefix(hs.URL, "http://"))
	guest, err := Join(ctx, fast("ws://"+proxy.Addr()), room)
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	next[Joined](t, guest)
	next[PeerJoined](t, host)
	proxy.Cut(0)
	for i := range 100 {
		for host.SendTo(ctx, 1, i) != nil || host.Send(ctx, 1000+i) != nil {
			t.Fatal("the host could not send")
		}
	}
	got, rejoined := 0, false
	timeout := time.After(10 * time.Second)
	for got < 200 || !rejoined {
		select {
		case ev := <-guest.Events():
			switch e := ev.(type) {
			case Joined:
				rejoined = true
			case Message:
				want := got / 2
				if got%2 == 1 {
					want += 1000
				}
				if string(e.Data) != strconv.Itoa(want) {
					t.Fatalf("message %d is %s, want %d (a gap, a duplicate or a reorder)", got, e.Data, want)
				}
				got++
			case RecoveryFailed, State:
				t.Fatalf("recovery failed: %+v", e)
			}
		case <-timeout:
			t.Fatalf("got %d of 200 messages", got)
		}
	}
	if guest.Seq() < 200 {
		t.Fatalf("seq %d after 200 numbered frames", guest.Seq())
	}
}

func TestRoomClosedIsFinal(t *testing.T) {
	t.Parallel()
	hs, _ := newServer(t)
	ctx := t.Context()
	host, guest, _ := hostAndGuest(t, hs.URL)
	host.CloseRoom(ctx)
	for _, c := range []*Client{host, guest} {
		if cl := next[Closed](t, c); !cl.Final || cl.Code != CodeRoomClosed {
			t.Fatalf("closed = %+v, want final 4001", cl)
		}
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("client kept going after 4001")
		}
	}
}

func TestReplacedIsFinal(t *testing.T) {
	t.Parallel()
	hs, _ := newServer(t)
	ctx := t.Context()
	host, _ := Create(ctx, fast(hs.URL), 4, "")
	defer host.Close()
	room := next[Created](t, host).Room
	opts := fast(hs.URL)
	opts.ClientID = "same-player"
	first, err := Join(ctx, opts, room)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Join(ctx, opts, room)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if cl := next[Closed](t, first); !cl.Final || cl.Code != CodeReplaced {
		t.Fatalf("closed = %+v, want final 4000", cl)
	}
	if second.Index() != first.Index() {
		t.Fatalf("the replacing client got slot %d, want %d", second.Index(), first.Index())
	}
}

// The room ends while the client is away: once the room wait is over
// (a moving room is not found for a moment), it stops instead of retrying.
func TestRoomGoneWhileAwayIsFinal(t *testing.T) {
	t.Parallel()
	hs, _ := newServer(t)
	ctx := t.Context()
	host, _ := Create(ctx, fast(hs.URL), 4, "")
	room := next[Created](t, host).Room
	proxy := newCutProxy(t, strings.TrimPrefix(hs.URL, "http://"))
	opts := fast("ws://" + proxy.Addr())
	opts.MinBackoff = 300 * time.Millisecond
	opts.RoomWait = time.Second
	guest, err := Join(ctx, opts, room)
	if err != nil {
		t.Fatal(err)
	}
	next[Joined](t, guest)
	proxy.Cut(0)
	cut := time.Now()
	host.CloseRoom(ctx) // the host was the last member: the room is gone
	if cl := next[Closed](t, guest); !cl.Final || cl.Reason != "room not found" {
		t.Fatalf("closed = %+v", cl)
	}
	if waited := time.Since(cut); waited < time.Second {
		t.Fatalf("gave up %v after the cut, before the room wait", waited)
	}
}

func TestSendWhileDisconnectedIsAnError(t *testing.T) {
	t.Parallel()
	hs, _ := newServer(t)
	host, _ := Create(t.Context(), fast(hs.URL), 4, "")
	next[Created](t, host)
	host.Close()
	if err := host.Send(context.Background(), 1); err != ErrNotConnected {
		t.Fatalf("send after close: %v", err)
	}
}

// A host alone in its lobby whose socket blips keeps its room: the server
// keeps an emptied room for the host grace after a blip (the old relay
// deleted it), and the client rejoins slot 0 with the same code.
func TestLoneHostBlipKeepsTheRoom(t *testing.T) {
	t.Parallel()
	hs, _ := newServer(t)
	proxy := newCutProxy(t, strings.TrimPrefix(hs.URL, "http://"))
	host, err := Create(t.Context(), fast("ws://"+proxy.Addr()), 4, "")
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	room := next[Created](t, host).Room
	proxy.Cut(0)
	if j := next[Joined](t, host); j.Room != room || j.Index != 0 {
		t.Fatalf("after the blip the host joined %+v, want room %s slot 0", j, room)
	}
	guest, err := Join(t.Context(), fast(hs.URL), room)
	if err != nil {
		t.Fatalf("the lobby's code no longer works: %v", err)
	}
	defer guest.Close()
}

// A stopping machine hands the room away and closes its members with
// 1012; their rejoin can come before the room arrives. The client keeps
// trying "Room not found" (RoomWait) and is back in its slot once the
// room is there (the state it has already: recovery is complete).
func TestRejoinWaitsForAMovingRoom(t *testing.T) {
	t.Parallel()
	hs, mgr := newServer(t)
	ctx := t.Context()
	host, guest, room := hostAndGuest(t, hs.URL)
	host.SetState(ctx, map[string]int{"round": 2})
	next[State](t, guest)

	// The room leaves (its members get 1012) and comes back once both
	// have been told "Room not found", as a hand-off's import would bring
	// it.
	var snap *rooms.Snapshot
	if err := mgr.Move(room, "t", "elsewhere", func(s *rooms.Snapshot) error { snap = s; return nil }); err != nil {
		t.Fatal(err)
	}
	toldNotFound(t, host)
	toldNotFound(t, guest)
	if mgr.Held(room) {
		t.Fatal("the room is still here")
	}
	if err := mgr.Import(snap); err != nil {
		t.Fatal(err)
	}
	if j := next[Joined](t, guest); j.Index != 1 {
		t.Fatalf("the guest came back as slot %d", j.Index)
	}
	if j := next[Joined](t, host); j.Index != 0 {
		t.Fatalf("the host came back as slot %d", j.Index)
	}
	host.Send(ctx, "after the move")
	if m := next[Message](t, guest); string(m.Data) != `"after the move"` {
		t.Fatalf("guest got %s", m.Data)
	}
}

// toldNotFound waits until a rejoin of c's was answered "Room not found":
// the try after it carries that error.
func toldNotFound(t *testing.T, c *Client) {
	t.Helper()
	for {
		r := next[Reconnecting](t, c)
		var se *ServerError
		if errors.As(r.Err, &se) && se.Message == "Room not found" {
			return
		}
	}
}
