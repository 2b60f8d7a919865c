package webhook

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// Dropping by owner (queue.go): who caused the player events pays for them.

// Issue 20, webhooks: one address's churn cannot starve the rest. With
// the queue full, the owner with the most player events waiting, in all
// its rooms together, pays: an attacker with 3, 2 and 1 in three rooms
// loses its own, not the game's, whose room holds 4 from owners of their
// own (the room with the most, which lost them before). Among the
// attacker's rooms, the one with the most pays first, and the attacker's
// event into a room with about as many as its most is refused.
func TestOwnerWithTheMostPlayerEventsDropsFirst(t *testing.T) {
	t.Parallel()
	rc := &testReceiver{gate: make(chan struct{})}
	s := start(t, rc, Options{Workers: 1, QueueSize: 15})
	send(s, "x", "room.created", 0)
	testutil.Eventually(t, 5*time.Second, "x's head in flight", func() bool { return rc.inFlight() == 1 })
	attacker := []string{"a1", "a2", "a3"}
	for n, r := range attacker {
		sendFrom(s, r, "attacker", "room.created", 0)
		for i := range 3 - n {
			sendFrom(s, r, "attacker", "player.joined", 1+i)
		}
	}
	game := []string{"room.created 0"}
	sendFrom(s, "game", "host", "room.created", 0)
	for i := 1; i <= 4; i++ {
		sendFrom(s, "game", fmt.Sprintf("guest %d", i), "player.joined", i)
		game = append(game, fmt.Sprintf("player.joined %d", i))
	}
	if s.pending() != 15 {
		t.Fatalf("%d events queued, want the bound, 15", s.pending())
	}
	if !sendFrom(s, "a4", "attacker", "player.joined", 0) {
		t.Fatal("the attacker's event into a new room was refused while a1 held 3 of its player events")
	}
	for i := 2; i <= 5; i++ {
		if sendFrom(s, "a3", "attacker", "player.left", i) {
			t.Fatalf("the attacker's event %d into a3 was kept, with a3 about level with its rooms with the most", i)
		}
	}
	for i, typ := range []string{"player.left", "room.closed"} {
		if !sendFrom(s, "game", "guest 1", typ, 5+i) {
			t.Fatalf("the game's %s was dropped for the attacker's events", typ)
		}
		game = append(game, fmt.Sprintf("%s %d", typ, 5+i))
	}
	rc.open()
	testutil.Eventually(t, 5*time.Second, "the queue to drain", func() bool { return s.pending() == 0 })
	var got []string
	for _, g := range of(rc.delivered(), "game") {
		got = append(got, fmt.Sprintf("%s %d", g.typ, g.seq))
	}
	if strings.Join(got, ", ") != strings.Join(game, ", ") {
		t.Fatalf("the game got %s, want %s", strings.Join(got, ", "), strings.Join(game, ", "))
	}
	var kept []string
	for _, r := range append(attacker, "a4") {
		kept = append(kept, fmt.Sprintf("%s: %d", r, len(of(rc.delivered(), r))))
	}
	if got, want := strings.Join(kept, ", "), "a1: 2, a2: 2, a3: 2, a4: 1"; got != want {
		t.Fatalf("the attacker's rooms got %s events, want %s", got, want)
	}
	if _, _, _, dropped := s.Stats(); dropped != 7 {
		t.Fatalf("%d dropped, want 7: 3 of the attacker's, 4 of its refused", dropped)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.owners) != 0 || len(s.hogs) != 0 || len(s.rooms) != 0 {
		t.Fatalf("with the queue empty, %d owners, %d hogs and %d rooms are kept",
			len(s.owners), len(s.hogs), len(s.rooms))
	}
}

// The owners' bookkeeping matches the queue after every step of 3000
// random sends by 5 owners into 8 rooms, with deliveries let through now
// and then; each room's events still arrive in order, and once the queue
// is empty no owner is kept.
func TestOwnerBookkeepingMatchesTheQueue(t *testing.T) {
	t.Parallel()
	rc := &testReceiver{gate: make(chan struct{})}
	s := start(t, rc, Options{Workers: 2, QueueSize: 30, RoomQueue: 6})
	rnd := rand.New(rand.NewPCG(20, 20))
	types := []string{"room.created", "player.joined", "player.left", "player.joined", "room.closed"}
	for i := range 3000 {
		sendFrom(s, fmt.Sprintf("r%d", rnd.IntN(8)), fmt.Sprintf("o%d", rnd.IntN(5)), types[rnd.IntN(len(types))], i)
		if rnd.IntN(4) == 0 && rc.inFlight() > 0 { // let one delivery through
			select {
			case rc.gate <- struct{}{}:
			case <-time.After(time.Second):
			}
		}
		if err := s.checkBookkeeping(); err != nil {
			t.Fatalf("after send %d: %v", i, err)
		}
	}
	rc.open()
	testutil.Eventually(t, 10*time.Second, "the queue to drain", func() bool { return s.pending() == 0 })
	if err := s.checkBookkeeping(); err != nil {
		t.Fatalf("drained: %v", err)
	}
	s.mu.Lock()
	owners := len(s.owners)
	s.mu.Unlock()
	if owners != 0 {
		t.Fatalf("%d owners kept with the queue empty", owners)
	}
	for r := range 8 {
		evs := of(rc.delivered(), fmt.Sprintf("r%d", r))
		for i := 1; i < len(evs); i++ {
			if evs[i].seq <= evs[i-1].seq {
				t.Fatalf("room r%d: %s after %s", r, evs[i], evs[i-1])
			}
		}
	}
	d, _, _, x := s.Stats()
	t.Logf("%d delivered, %d dropped", d, x)
	if d+x != 3000 || x == 0 {
		t.Fatalf("%d delivered and %d dropped of 3000, want some of each", d, x)
	}
}

// checkBookkeeping reports where owners, shares and the heaps disagree
// with the rooms' queues.
func (s *Sender) checkBookkeeping() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	queued, linked := 0, 0
	for code, q := range s.rooms {
		if len(q.events) == 0 {
			return fmt.Errorf("room %s kept with no event", code)
		}
		queued += len(q.events)
		for i, j := range q.events {
			switch {
			case i == 0 && j.in != nil:
				return fmt.Errorf("room %s: its head may be dropped", code)
			case i > 0 && j.player != (j.in != nil):
				return fmt.Errorf("room %s: event %d is a player event: %v, may be dropped: %v", code, i, j.player, j.in != nil)
			case j.in != nil && j.in.room != q:
				return fmt.Errorf("room %s: event %d is in another room's share", code, i)
			case j.in != nil:
				linked++
			}
		}
	}
	if queued != s.queued {
		return fmt.Errorf("%d events in the rooms, %d counted", queued, s.queued)
	}
	if len(s.hogs) != len(s.owners) {
		return fmt.Errorf("%d owners, %d in the heap", len(s.owners), len(s.hogs))
	}
	counted := 0
	for key, o := range s.owners {
		if s.hogs[o.heapAt] != o || o.players == 0 || len(o.big) != len(o.rooms) {
			return fmt.Errorf("owner %q: at %d, %d players, %d shares, %d in its heap", key, o.heapAt, o.players, len(o.rooms), len(o.big))
		}
		sum := 0
		for q, sh := range o.rooms {
			n := 0
			for j := sh.newest; j != nil; j = j.older {
				if j.in != sh || (j.older != nil && j.older.newer != j) {
					return fmt.Errorf("owner %q, room %s: the list is broken", key, q.code)
				}
				n++
			}
			if n != sh.players || n == 0 || sh.by != o || sh.room != q || o.big[sh.heapAt] != sh {
				return fmt.Errorf("owner %q, room %s: %d listed, %d counted", key, q.code, n, sh.players)
			}
			sum += n
		}
		if sum != o.players {
			return fmt.Errorf("owner %q: %d in its shares, %d counted", key, sum, o.players)
		}
		counted += sum
		for i := 1; i < len(o.big); i++ {
			if o.big[(i-1)/2].players < o.big[i].players {
				return fmt.Errorf("owner %q: its heap is out of order", key)
			}
		}
	}
	if counted != linked {
		return fmt.Errorf("%d droppable events in the rooms, %d in the owners", linked, counted)
	}
	for i := 1; i < len(s.hogs); i++ {
		if s.hogs[(i-1)/2].players < s.hogs[i].players {
			return errors.New("the owners' heap is out of order")
		}
	}
	return nil
}
