package server

import (
	"strings"
	"testing"

	"github.com/party-sockets/party-sockets/internal/budget"
)

// With the budget spent, a create or a new slot is refused with an error
// of the contract's shape, and the socket stays open; a player taking back
// its own slot is let in.
func TestSpentBudgetRefusesCreate(t *testing.T) {
	b := budget.New(1 << 20)
	ts := newTestServer(t, Config{Budget: b})
	h := dial(t, ts.URL, "/", nil)
	code := h.create("h", 4)
	c := dial(t, ts.URL, "/", nil) // a socket is refused too (TestUpgradeRefusedWhenTheBudgetIsSpent)
	hold := b.Ceiling() - b.Used() // what can be refused is refused from here
	b.Add(hold)
	defer b.Add(-hold)
	c.send(`{"type":"create","clientId":"c","maxClients":4}`)
	c.expectErr("Over memory budget")
	c.send(`{"type":"join","clientId":"c","room":"` + code + `"}`)
	c.expectErr("Over memory budget")
	h.ws.CloseNow()
	waitFor(t, "the host to be away", func() bool { in, _ := ts.rooms.Lookup(code); return in.Clients == 0 })
	c.join(code, "h")
	c.expect(`{"type":"joined","room":"` + code + `","index":0,"peers":[]}`)
}

// Over the budget, shedding frees vacant slots' recovery windows before
// it looks at send queues: the player away loses its window (its rejoin
// says recovered: false), nobody connected is closed.
func TestShedFreesVacantWindowsFirst(t *testing.T) {
	b := budget.New(4 << 20)
	ts := newTestServer(t, Config{Budget: b})
	h := dial(t, ts.URL, "/", nil)
	code := h.create("h", 4)
	p := dial(t, ts.URL, "/", nil)
	p.send(`{"type":"join","clientId":"p","room":"` + code + `","recover":true}`)
	p.expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0],"seq":0}`)
	h.expect(`{"type":"peer_joined","index":1}`)
	p.ws.CloseNow()
	h.expect(`{"type":"peer_left","index":1}`)
	before := b.Used()
	for range 4 {
		h.send(`{"type":"send","data":"` + strings.Repeat("w", 50_000) + `"}`)
	}
	h.send(`{"type":"send","data":"mark","to":0}`) // to itself: after the four in the room's order
	h.expect(`{"type":"message","from":0,"data":"mark"}`)
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
	back := dial(t, ts.URL, "/", nil)
	back.send(`{"type":"join","clientId":"p","room":"` + code + `","recover":true,"since":0}`)
	back.expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0],"seq":5,"recovered":false}`)
	h.send(`{"type":"send","data":"still here"}`)
	back.expect(`{"type":"message","from":0,"data":"still here","seq":6}`)
}
