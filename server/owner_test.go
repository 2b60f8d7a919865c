package server

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/rooms"
)

// The events a socket causes carry its client address as their owner, the
// key the webhooks' queue is fair by (issue 20); what the server does
// itself (a close_room's room.closed) carries "".
func TestEventsOwnedByTheClientAddress(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	clk := &testutil.FakeClock{}
	mgr := rooms.NewManager(rooms.Config{HostGrace: time.Minute, Clock: clk, Codes: &seq{},
		Events: func(e rooms.Event) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, fmt.Sprintf("%s %q", e.Type, e.Owner))
		}})
	ts := newTestServerWithManager(t, Config{}, mgr, clk)
	c := testutil.Dial(t, ts.URL)
	code := c.Create("owner-host", 4)
	p := guest(t, ts, c, code, "owner-player", 1, "0")
	p.Drop()
	c.Expect(`{"type":"peer_left","index":1}`)
	c.Send(`{"type":"close_room"}`)
	want := `room.created "127.0.0.1", player.joined "127.0.0.1", player.joined "127.0.0.1", player.left "127.0.0.1", room.closed ""`
	events := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(got, ", ")
	}
	testutil.Eventually(t, 5*time.Second, "room.closed", func() bool { return strings.Contains(events(), "room.closed") })
	if events() != want {
		t.Fatalf("events %s, want %s", events(), want)
	}
}
