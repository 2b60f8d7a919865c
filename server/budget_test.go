package server

import (
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
	hold := b.Ceiling() - b.Used() // what can be refused is refused from here
	b.Add(hold)
	defer b.Add(-hold)
	c := dial(t, ts.URL, "/", nil)
	c.send(`{"type":"create","clientId":"c","maxClients":4}`)
	c.expectErr("Over memory budget")
	c.send(`{"type":"join","clientId":"c","room":"` + code + `"}`)
	c.expectErr("Over memory budget")
	h.ws.CloseNow()
	waitFor(t, "the host to be away", func() bool { in, _ := ts.rooms.Lookup(code); return in.Clients == 0 })
	back := dial(t, ts.URL, "/", nil)
	back.join(code, "h")
	back.expect(`{"type":"joined","room":"` + code + `","index":0,"peers":[]}`)
}
