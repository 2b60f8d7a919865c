package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// got is one delivery a test receiver answered with 2xx.
type got struct {
	room, typ string
	seq       int
}

func (g got) String() string { return fmt.Sprintf("%s %s %d", g.room, g.typ, g.seq) }

// testReceiver is a webhook endpoint on loopback. Each request waits
// for gate (when not nil) and is answered by status (200 when nil); it
// keeps the 2xx deliveries in the order they were answered and the most
// requests it had in flight at once.
type testReceiver struct {
	gate   chan struct{}
	opened sync.Once
	status func(g got, id string) int

	mu       sync.Mutex // guards the fields below
	seen     []got
	inflight int
	peak     int
}

func (rc *testReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var ev struct {
		Type string `json:"type"`
		Data struct {
			Room string `json:"room"`
			Seq  int    `json:"seq"`
		} `json:"data"`
	}
	json.Unmarshal(body, &ev)
	g := got{ev.Data.Room, ev.Type, ev.Data.Seq}
	rc.mu.Lock()
	rc.inflight++
	rc.peak = max(rc.peak, rc.inflight)
	rc.mu.Unlock()
	if rc.gate != nil {
		select {
		case <-rc.gate:
		case <-r.Context().Done():
		}
	}
	code := 200
	if rc.status != nil {
		code = rc.status(g, r.Header.Get("webhook-id"))
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.inflight--
	if code == 200 {
		rc.seen = append(rc.seen, g)
	}
	w.WriteHeader(code)
}

// open lets every request through from now on.
func (rc *testReceiver) open() { rc.opened.Do(func() { close(rc.gate) }) }

func (rc *testReceiver) delivered() []got {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.seen)
}

func (rc *testReceiver) inFlight() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.inflight
}

// start runs a sender to rc with opts until the test ends.
func start(t *testing.T, rc *testReceiver, opts Options) *Sender {
	t.Helper()
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	if rc.gate != nil {
		t.Cleanup(rc.open) // runs first: held requests return before Close waits for them
	}
	s, err := New(srv.URL, secret, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go s.Run(ctx)
	return s
}

// send queues an event of room caused by an owner of the room's own.
func send(s *Sender, room, typ string, seq int) bool { return sendFrom(s, room, room, typ, seq) }

func sendFrom(s *Sender, room, owner, typ string, seq int) bool {
	return s.Send(room, owner, typ, map[string]any{"room": room, "seq": seq})
}

func of(all []got, room string) []got {
	var out []got
	for _, g := range all {
		if g.room == room {
			out = append(out, g)
		}
	}
	return out
}

func join(gs []got) string {
	var b strings.Builder
	for i, g := range gs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(g.String())
	}
	return b.String()
}

// Finding 6 of issue 20: one event's retries held every room's events
// back. A room whose receiver fails waits for its backoff alone; another
// room's events go out meanwhile, and the failed one is retried after.
func TestRetriesHoldBackOnlyTheirRoom(t *testing.T) {
	t.Parallel()
	var failing sync.Map
	failing.Store("A", true)
	rc := &testReceiver{status: func(g got, _ string) int {
		if _, bad := failing.Load(g.room); bad {
			return 500
		}
		return 200
	}}
	clk := &testutil.FakeClock{}
	s := start(t, rc, Options{Workers: 1, Clock: clk})
	send(s, "A", "room.created", 0)
	testutil.Eventually(t, 5*time.Second, "A's first attempt to fail", func() bool { _, r, _, _ := s.Stats(); return r == 1 })
	for i := range 5 {
		send(s, "B", "player.joined", i)
	}
	send(s, "A", "room.closed", 1)
	testutil.Eventually(t, 5*time.Second, "B's events", func() bool { return len(rc.delivered()) == 5 })
	if want := "B player.joined 0, B player.joined 1, B player.joined 2, B player.joined 3, B player.joined 4"; join(
		rc.delivered(),
	) != want {
		t.Fatalf("delivered %s, want %s", join(rc.delivered()), want)
	}
	failing.Delete("A")
	clk.Advance(500 * time.Millisecond) // A's backoff ends
	testutil.Eventually(t, 5*time.Second, "A's events", func() bool { return len(rc.delivered()) == 7 })
	if got, want := join(of(rc.delivered(), "A")), "A room.created 0, A room.closed 1"; got != want {
		t.Fatalf("A delivered %s, want %s", got, want)
	}
	if d, r, f, x := s.Stats(); d != 7 || r != 1 || f != 0 || x != 0 {
		t.Fatalf("Stats = %d delivered, %d retried, %d failed, %d dropped; want 7, 1, 0, 0", d, r, f, x)
	}
}

// Each room's events arrive in the order they were sent, even with
// several workers and retries of one in three attempts.
func TestEachRoomInOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	tried := map[string]bool{}
	rc := &testReceiver{status: func(g got, id string) int {
		mu.Lock()
		defer mu.Unlock()
		if g.seq%3 == 0 && !tried[id] {
			tried[id] = true
			return 503
		}
		return 200
	}}
	s := start(t, rc, Options{Workers: 4, FirstRetry: time.Millisecond})
	rooms := []string{"A", "B", "C"}
	for i := range 30 {
		for _, r := range rooms {
			send(s, r, "player.joined", i)
		}
	}
	testutil.Eventually(t, 10*time.Second, "every event", func() bool { return len(rc.delivered()) == 90 })
	for _, r := range rooms {
		for i, g := range of(rc.delivered(), r) {
			if g.seq != i {
				t.Fatalf("room %s: delivery %d is seq %d: %s", r, i, g.seq, join(of(rc.delivered(), r)))
			}
		}
	}
	if _, retried, _, _ := s.Stats(); retried != 30 {
		t.Fatalf("%d retries, want 30", retried)
	}
}

// With every room together at the bound, the room with the most player
// events waiting loses its newest ones, first for another room's room
// events, then for its player events; its own next player event is
// refused. The head in flight is never dropped. The same holds when both
// rooms have one owner (games behind one NAT): within an owner, the room
// with the most pays.
func TestPlayerEventsDropFirst(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, hog, game string }{
		{"an owner each", "hog's address", "game's address"},
		{"one owner", "nat", "nat"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc := &testReceiver{gate: make(chan struct{})}
			s := start(t, rc, Options{Workers: 1, QueueSize: 6})
			sendFrom(s, "hog", tt.hog, "room.created", 0)
			testutil.Eventually(t, 5*time.Second, "the hog's head in flight", func() bool { return rc.inFlight() == 1 })
			for i := 1; i <= 5; i++ {
				sendFrom(s, "hog", tt.hog, "player.joined", i)
			}
			for i, typ := range []string{"room.created", "player.joined", "player.left", "room.closed"} {
				if !sendFrom(s, "game", tt.game, typ, i) {
					t.Fatalf("the game's %s was dropped", typ)
				}
			}
			if sendFrom(s, "hog", tt.hog, "player.left", 6) {
				t.Fatal("the hog's player event was kept with the queue full")
			}
			for range 6 {
				rc.gate <- struct{}{}
			}
			testutil.Eventually(t, 5*time.Second, "the queue to drain", func() bool { return s.pending() == 0 })
			if got, want := join(of(rc.delivered(), "game")),
				"game room.created 0, game player.joined 1, game player.left 2, game room.closed 3"; got != want {
				t.Fatalf("the game got %s, want %s", got, want)
			}
			if got, want := join(of(rc.delivered(), "hog")), "hog room.created 0, hog player.joined 1"; got != want {
				t.Fatalf("the hog got %s, want %s", got, want)
			}
			if _, _, _, dropped := s.Stats(); dropped != 5 {
				t.Fatalf("%d dropped, want 5", dropped)
			}
		})
	}
}

// A room at its own bound keeps its room events: room.closed takes the
// place of its newest player event, and a player event is refused.
func TestRoomBoundKeepsRoomEvents(t *testing.T) {
	t.Parallel()
	rc := &testReceiver{gate: make(chan struct{})}
	s := start(t, rc, Options{Workers: 1, RoomQueue: 4})
	send(s, "A", "room.created", 0)
	testutil.Eventually(t, 5*time.Second, "the head in flight", func() bool { return rc.inFlight() == 1 })
	for i := 1; i <= 3; i++ {
		send(s, "A", "player.joined", i)
	}
	if send(s, "A", "player.joined", 4) {
		t.Fatal("a fifth event of a room bounded at 4 was kept")
	}
	if !send(s, "A", "room.closed", 5) {
		t.Fatal("room.closed was dropped for a player event")
	}
	if !send(s, "B", "player.joined", 0) {
		t.Fatal("another room's event was dropped: A's bound is A's alone")
	}
	for range 5 {
		rc.gate <- struct{}{}
	}
	testutil.Eventually(t, 5*time.Second, "the queue to drain", func() bool { return s.pending() == 0 })
	if got, want := join(of(rc.delivered(), "A")), "A room.created 0, A player.joined 1, A player.joined 2, A room.closed 5"; got != want {
		t.Fatalf("A got %s, want %s", got, want)
	}
}

// One worker serves the rooms in turn: a game's events that arrive behind
// a hundred of another room's go out between them, not after them.
func TestRoomsServedInTurn(t *testing.T) {
	t.Parallel()
	rc := &testReceiver{gate: make(chan struct{})}
	s := start(t, rc, Options{Workers: 1})
	send(s, "hog", "player.joined", 0)
	testutil.Eventually(t, 5*time.Second, "the hog's head in flight", func() bool { return rc.inFlight() == 1 })
	for i := 1; i < 100; i++ {
		send(s, "hog", "player.joined", i)
	}
	for i := range 4 {
		send(s, "game", "player.joined", i)
	}
	rc.open()
	testutil.Eventually(t, 10*time.Second, "the queue to drain", func() bool { return s.pending() == 0 })
	all := rc.delivered()
	last := slices.IndexFunc(all, func(g got) bool { return g.room == "game" && g.seq == 3 })
	if last < 0 || last > 8 {
		t.Fatalf("the game's last event was delivery %d of %d, want at most 8: %s", last, len(all), join(all[:min(12, len(all))]))
	}
}

// At most Workers deliveries are in flight at once, however many rooms
// wait.
func TestDeliveriesInFlightBounded(t *testing.T) {
	t.Parallel()
	rc := &testReceiver{gate: make(chan struct{})}
	s := start(t, rc, Options{Workers: 3})
	for i := range 12 {
		send(s, fmt.Sprintf("room-%d", i), "room.created", i)
	}
	testutil.Eventually(t, 5*time.Second, "3 deliveries in flight", func() bool { return rc.inFlight() == 3 })
	for range 12 {
		rc.gate <- struct{}{}
	}
	testutil.Eventually(t, 5*time.Second, "every event", func() bool { return len(rc.delivered()) == 12 })
	if rc.peak != 3 {
		t.Fatalf("%d deliveries in flight at once, want at most 3", rc.peak)
	}
}
