package client

import (
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/regions"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/server"
)

// Issue 25, item 2: a black-holed network (nothing forwarded, nothing
// closed: no RST, no FIN) is noticed within two heartbeats, sends are
// refused instead of vanishing, and the client rejoins its slot once the
// network is back.
func TestBlackholedLinkIsNoticedAndRejoined(t *testing.T) {
	t.Parallel()
	hs, _ := newServer(t)
	ctx := t.Context()
	host, err := Create(ctx, fast(hs.URL), 4, "")
	if err != nil {
		t.Fatal(err)
	}
	room := next[Created](t, host).Room
	proxy := testutil.StartNetCut(t, strings.TrimPrefix(hs.URL, "http://"))
	opts := fast("ws://" + proxy.Addr())
	opts.Heartbeat = 200 * time.Millisecond
	guest, err := Join(ctx, opts, room)
	if err != nil {
		t.Fatal(err)
	}
	index := next[Joined](t, guest).Index
	// Idle and alive: its pings are answered and it stays connected
	// through several heartbeats.
	idle := time.After(time.Second)
	for waiting := true; waiting; {
		select {
		case ev := <-guest.Events():
			t.Fatalf("idle guest got %#v", ev)
		case <-idle:
			waiting = false
		}
	}
	proxy.Blackhole(time.Minute)
	holed := time.Now()
	r := next[Reconnecting](t, guest)
	took := time.Since(holed)
	if !errors.Is(r.Err, ErrDeadLink) || took > 2*time.Second {
		t.Fatalf("reconnecting after %v with %v, want ErrDeadLink within 2 s (heartbeat 200 ms)", took, r.Err)
	}
	t.Logf("black hole noticed after %v (heartbeat 200 ms)", took)
	if err := guest.Send(ctx, "lost?"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("send on the dead link: %v, want ErrNotConnected", err)
	}
	proxy.Blackhole(0)
	if j := next[Joined](t, guest); j.Index != index {
		t.Fatalf("rejoined slot %d, want %d", j.Index, index)
	}
	if err := guest.Send(ctx, "back"); err != nil {
		t.Fatal(err)
	}
	if m := next[Message](t, host); string(m.Data) != `"back"` {
		t.Fatalf("host got %s", m.Data)
	}
}

// Issue 25, item 1: a Rejoin whose room is gone says so with ErrRoomGone,
// for "Room not found" and for the too-many-misses answer alike, and the
// caller creates a fresh room.
func TestRejoinGoneRoomIsErrRoomGone(t *testing.T) {
	t.Parallel()
	mgr := rooms.NewManager(rooms.Config{Instance: "m1", HostGrace: time.Minute, Codes: regions.NewGenerator("", nil)})
	reg := prometheus.NewRegistry()
	hs := httptest.NewServer(server.New(server.Config{Instance: "m1", JoinMissesPerMin: 1,
		Logger: slog.New(slog.DiscardHandler)}, mgr, reg, reg))
	t.Cleanup(hs.Close)
	ctx := t.Context()
	host, err := Create(ctx, fast(hs.URL), 4, "")
	if err != nil {
		t.Fatal(err)
	}
	room := next[Created](t, host).Room
	saved := host.ClientID()
	host.CloseRoom(ctx)
	next[Closed](t, host)

	opts := fast(hs.URL)
	opts.ClientID = saved
	// The first try misses ("Room not found"), and the second, 500 ms
	// later (a room in a hand-off), is refused: one miss a minute.
	start := time.Now()
	_, err = Rejoin(ctx, opts, room, "m1")
	var se *ServerError
	if !errors.As(err, &se) || se.Message != "Too many failed joins, try again later" || !errors.Is(err, ErrRoomGone) {
		t.Fatalf("rejoin a closed room: %v, want the too-many-misses answer, matching ErrRoomGone", err)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("rejoin gave up after %v: not asked again", d)
	}
	// On a machine with the default limits: "Room not found" twice.
	hs2, _ := newServer(t)
	if _, err = Rejoin(ctx, fast(hs2.URL), room, ""); !errors.As(err, &se) || se.Message != "Room not found" ||
		!errors.Is(err, ErrRoomGone) {
		t.Fatalf("rejoin a room that never was: %v, want Room not found, matching ErrRoomGone", err)
	}
	fresh, err := Create(ctx, opts, 4, "")
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if c := next[Created](t, fresh); c.Room == room || c.Room == "" {
		t.Fatalf("fresh room %q (old %q)", c.Room, room)
	}
	// Any other answer is not a gone room.
	if errors.Is(&ServerError{"Already in a room"}, ErrRoomGone) {
		t.Fatal("Already in a room matched ErrRoomGone")
	}
}
