package server

import (
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/budget"
	"github.com/party-sockets/party-sockets/internal/testutil"
)

// With the budget spent, a create or a new slot is refused with an error
// of the contract's shape, and the socket stays open; a player taking back
// its own slot is let in.
func TestSpentBudgetRefusesCreate(t *testing.T) {
	t.Parallel()
	b := budget.New(1 << 20)
	ts := newTestServer(t, Config{Budget: b})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 4)
	c := testutil.Dial(t, ts.URL)  // a socket is refused too (TestUpgradeRefusedWhenTheBudgetIsSpent)
	hold := b.Ceiling() - b.Used() // what can be refused is refused from here
	b.Add(hold)
	defer b.Add(-hold)
	c.Send(`{"type":"create","clientId":"c","maxClients":4}`)
	c.ExpectErr("Over memory budget")
	c.Send(`{"type":"join","clientId":"c","room":"` + code + `"}`)
	c.ExpectErr("Over memory budget")
	h.Drop()
	testutil.Eventually(
		t,
		5*time.Second,
		"the host to be away",
		func() bool { in, _ := ts.rooms.Lookup(code); return in.Clients == 0 },
	)
	c.Join(code, "h")
	c.Expect(`{"type":"joined","room":"` + code + `","index":0,"peers":[]}`)
}

// Over the budget, shedding frees vacant slots' recovery windows before
// it looks at send queues: the player away loses its window (its rejoin
// says recovered: false), nobody connected is closed.
func TestShedFreesVacantWindowsFirst(t *testing.T) {
	t.Parallel()
	b := budget.New(4 << 20)
	ts := newTestServer(t, Config{Budget: b})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 4)
	p := testutil.Dial(t, ts.URL)
	p.Send(`{"type":"join","clientId":"p","room":"` + code + `","recover":true}`)
	p.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0],"seq":0}`)
	h.Expect(`{"type":"peer_joined","index":1}`)
	p.Drop()
	h.Expect(`{"type":"peer_left","index":1}`)
	before := b.Used()
	for range 4 {
		h.Send(`{"type":"send","data":"` + strings.Repeat("w", 50_000) + `"}`)
	}
	h.Send(`{"type":"send","data":"mark","to":0}`) // to itself: after the four in the room's order
	h.Expect(`{"type":"message","from":0,"data":"mark"}`)
	// The mark arrives while h's session still holds the room's lock, and
	// a shedding pass passes over a room whose lock is taken: wait until
	// the session has counted the mark, after the lock. (Shed at once, it
	// sometimes freed nothing on a busy machine.)
	testutil.Eventually(t, 5*time.Second, "the mark to be counted", func() bool {
		return originValue(gather(t, ts.reg), "party_sockets_messages_total", "") == 5
	})
	windows := b.Used() - before
	// What only counts (queues) puts the budget over its limit, by less
	// than the window holds.
	extra := b.Limit() - b.Used() + windows/2
	b.Add(extra)
	ts.shed()
	// What is left is what was held before the window filled, give or
	// take a frame in flight.
	if left := b.Used() - extra; left > before+1024 {
		t.Fatalf("after shedding the budget counts %d, %d before the vacant window took %d", left, before, windows)
	}
	b.Add(-extra) // the queues drained
	back := testutil.Dial(t, ts.URL)
	back.Send(`{"type":"join","clientId":"p","room":"` + code + `","recover":true,"since":0}`)
	back.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0],"seq":5,"recovered":false}`)
	h.Send(`{"type":"send","data":"still here"}`)
	back.Expect(`{"type":"message","from":0,"data":"still here","seq":6}`)
}
