package client

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// Crash-proof rooms against the real server: one machine, killed with -9
// and started again on the same port (empty: its rooms died with it).

const ticketSecret = "restore-test-secret-0123456789abcdef"

// ticketed starts the server binary with secret on port.
func ticketed(t *testing.T, port int, secret string) *testutil.Server {
	t.Helper()
	return testutil.Start(t, "HANDOFF_SECRET="+secret, fmt.Sprintf("PORT=%d", port))
}

// crash kills s with SIGKILL and starts a new machine on its port.
func crash(t *testing.T, s *testutil.Server, port int, secret string) *testutil.Server {
	t.Helper()
	s.Cmd.Process.Kill()
	s.Cmd.Wait()
	return ticketed(t, port, secret)
}

// patient is fast() that outlasts a machine's restart.
func patient(url string) Options {
	o := fast(url)
	o.MaxAttempts = 200 // 100 ms apart at most: 20 s
	return o
}

func (c *Client) heldTicket() string { c.mu.Lock(); defer c.mu.Unlock(); return c.ticket }

// stateRoom makes a room of host and guest on url with the state set, and
// waits until both hold a ticket issued after the state.
func stateRoom(t *testing.T, opts Options) (host, guest *Client, room string) {
	t.Helper()
	ctx := t.Context()
	host, err := Create(ctx, opts, 4, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	room = next[Created](t, host).Room
	if guest, err = Join(ctx, opts, room); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { guest.Close() })
	next[Joined](t, guest)
	testutil.Eventually(t, 5*time.Second, "both members' first ticket", func() bool {
		return host.heldTicket() != "" && guest.heldTicket() != ""
	})
	before := guest.heldTicket()
	if err := host.SetState(ctx, map[string]int{"round": 7}); err != nil {
		t.Fatal(err)
	}
	next[State](t, guest)
	testutil.Eventually(t, 5*time.Second, "a ticket that carries the state", func() bool {
		return host.heldTicket() != before && guest.heldTicket() != before
	})
	return host, guest, room
}

// back waits until c is in room again and returns its Restored event and
// the state it got after it.
func back(t *testing.T, c *Client, room string, slot int) (Restored, State) {
	t.Helper()
	j := next[Joined](t, c)
	if j.Room != room || j.Index != slot {
		t.Fatalf("back in %s slot %d, want %s slot %d", j.Room, j.Index, room, slot)
	}
	r := next[Restored](t, c)
	return r, next[State](t, c)
}

// Issue 23, item 7: kill -9 the room's machine. One member's restore
// rebuilds the room on the machine started in its place, the other joins
// it; each is in its own slot, the state is back, and the game goes on.
func TestRestoreAfterKill(t *testing.T) {
	t.Parallel()
	port := testutil.FreePort(t)
	srv := ticketed(t, port, ticketSecret)
	host, guest, room := stateRoom(t, patient(srv.URL))
	crash(t, srv, port, ticketSecret)

	rebuilt := 0
	for slot, c := range []*Client{host, guest} { // their events are buffered: one after the other
		r, s := back(t, c, room, slot)
		if r.Room != room {
			t.Errorf("restored %+v, want room %s", r, room)
		}
		if !r.ByOther {
			rebuilt++
		}
		if string(s.Data) != `{"round":7}` {
			t.Errorf("slot %d's state after the restore = %s", slot, s.Data)
		}
	}
	if rebuilt != 1 {
		t.Fatalf("%d members rebuilt the room, want exactly 1", rebuilt)
	}
	if err := guest.Send(t.Context(), "after the crash"); err != nil {
		t.Fatal(err)
	}
	if m := next[Message](t, host); m.From != 1 || string(m.Data) != `"after the crash"` {
		t.Fatalf("host got %+v", m)
	}
	if host.heldTicket() == "" || guest.heldTicket() == "" {
		t.Fatal("no ticket of the rebuilt room: a second crash would lose it")
	}
}

// With NoTickets the client asks for none, holds none, and a crash ends it
// as before: the room is not found within the room wait.
func TestNoTicketsCrashIsFinal(t *testing.T) {
	t.Parallel()
	port := testutil.FreePort(t)
	srv := ticketed(t, port, ticketSecret)
	opts := patient(srv.URL)
	opts.NoTickets, opts.RoomWait = true, 500*time.Millisecond
	host, guest, _ := hostAndGuest(t, opts.URL)
	player, err := Join(t.Context(), opts, host.Room())
	if err != nil {
		t.Fatal(err)
	}
	defer player.Close()
	next[Joined](t, player)
	// The guest (tickets on) gets one; the player never does.
	testutil.Eventually(t, 5*time.Second, "the guest's ticket", func() bool { return guest.heldTicket() != "" })
	if player.heldTicket() != "" {
		t.Fatal("a client with NoTickets holds a ticket")
	}
	host.Close()
	guest.Close()
	crash(t, srv, port, ticketSecret)
	for {
		switch ev := (<-player.Events()).(type) {
		case Restored, RestoreFailed:
			t.Fatalf("a client with NoTickets restored: %+v", ev)
		case Closed:
			if !ev.Final || ev.Reason != "room not found" {
				t.Fatalf("closed = %+v, want final room not found", ev)
			}
			return
		}
	}
}

// A restore the server refuses for good is reported with its answer, and
// the client ends: here the machine came back with another secret, so the
// tickets no longer open.
func TestRestoreRefusedIsReported(t *testing.T) {
	t.Parallel()
	port := testutil.FreePort(t)
	srv := ticketed(t, port, ticketSecret)
	_, guest, room := stateRoom(t, patient(srv.URL))
	crash(t, srv, port, strings.Repeat("z", 40))
	if f := next[RestoreFailed](t, guest); f.Room != room || f.Reason != "Invalid ticket" {
		t.Fatalf("restore failed = %+v, want room %s, Invalid ticket", f, room)
	}
	if cl := next[Closed](t, guest); !cl.Final || !strings.Contains(fmt.Sprint(cl.Err), "Invalid ticket") {
		t.Fatalf("closed = %+v, want final with the server's answer", cl)
	}
	if guest.heldTicket() != "" {
		t.Fatal("the refused ticket is still held")
	}
}

// A relay without tickets (no HANDOFF_SECRET, or the old relay) says so
// once to a client that asked: the game sees no error for it.
func TestTicketsOffIsNoEvent(t *testing.T) {
	t.Parallel()
	hs, _ := newServer(t)
	host, guest, _ := hostAndGuest(t, hs.URL)
	defer host.Close()
	defer guest.Close()
	if err := guest.Send(t.Context(), "hi"); err != nil {
		t.Fatal(err)
	}
	for {
		switch ev := (<-host.Events()).(type) {
		case Error:
			t.Fatalf("the game got %+v", ev)
		case Message:
			return
		}
	}
}

// Ending the room or leaving drops the ticket: an ended room is never
// restored.
func TestTicketDroppedWhenTheRoomEnds(t *testing.T) {
	t.Parallel()
	srv := ticketed(t, testutil.FreePort(t), ticketSecret)
	host, guest, _ := stateRoom(t, patient(srv.URL))
	if err := host.CloseRoom(t.Context()); err != nil {
		t.Fatal(err)
	}
	if cl := next[Closed](t, guest); cl.Code != CodeRoomClosed {
		t.Fatalf("closed = %+v", cl)
	}
	<-guest.Done()
	if host.heldTicket() != "" || guest.heldTicket() != "" {
		t.Fatal("a ticket of an ended room is still held")
	}
}

func TestNextStep(t *testing.T) {
	tests := []struct {
		name       string
		answer     string
		restoring  bool
		haveTicket bool
		want       step
	}{
		{"rejoin, no room, ticket", "Room not found", false, true, stepRestore},
		{"rejoin, no room, no ticket", "Room not found", false, false, stepWaitRoom},
		{"rejoin, full", "Room is full", false, true, stepRetry},
		{"restore, another member was first", "Room exists", true, true, stepJoin},
		{"restore, not sure yet", "Try again", true, true, stepRestore},
		{"restore, forged", "Invalid ticket", true, true, stepFinal},
		{"restore, old", "Ticket expired", true, true, stepFinal},
		{"restore, not ours", "Not in this ticket", true, true, stepFinal},
		{"restore, ended", "Room ended", true, true, stepFinal},
		{"restore, locked out", "Too many failed joins, try again later", true, true, stepFinal},
		{"restore, no secret", "Tickets are off", true, true, stepNoTickets},
		{"restore, old relay", "Unknown message type", true, true, stepNoTickets},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextStep(tt.answer, tt.restoring, tt.haveTicket); got != tt.want {
				t.Errorf("nextStep(%q, %v, %v) = %v, want %v", tt.answer, tt.restoring, tt.haveTicket, got, tt.want)
			}
		})
	}
}
