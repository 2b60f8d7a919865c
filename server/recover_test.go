package server

import (
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The recovery extension over real sockets, byte for byte.
func TestRecoveryOverSockets(t *testing.T) {
	ts := newTestServer(t, Config{})
	h := dial(t, ts.URL, "/", nil)
	h.send(`{"type":"create","clientId":"h","maxClients":4,"recover":true}`)
	h.expect(`{"type":"created","room":"RoomBx","instance":"","region":"","index":0,"seq":0}`)
	code := "RoomBx"
	p := dial(t, ts.URL, "/", nil)
	p.send(`{"type":"join","clientId":"p","room":"` + code + `","recover":true}`)
	p.expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0],"seq":0}`)
	h.expect(`{"type":"peer_joined","index":1,"seq":1}`)
	h.send(`{"type":"send","data":"a"}`)
	p.expect(`{"type":"message","from":0,"data":"a","seq":1}`)
	p.ws.CloseNow() // a blip: no close frame
	h.expect(`{"type":"peer_left","index":1,"seq":2}`)
	h.send(`{"type":"send","data":"b","to":1}`) // kept for the slot, not "Target peer not found"
	h.send(`{"type":"send","data":"c"}`)

	bad := dial(t, ts.URL, "/", nil)
	bad.send(`{"type":"join","clientId":"p","room":"` + code + `","recover":true,"since":9}`)
	bad.expectErr("since is ahead of this slot")
	bad.send(`{"type":"join","clientId":"p","room":"` + code + `","recover":true,"since":-1}`)
	bad.expectErr("since must be a non-negative integer")

	back := dial(t, ts.URL, "/", nil)
	back.send(`{"type":"join","clientId":"p","room":"` + code + `","recover":true,"since":1}`)
	back.expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0],"seq":3,"recovered":true}`)
	back.expect(`{"type":"message","from":0,"data":"b","seq":2}`)
	back.expect(`{"type":"message","from":0,"data":"c","seq":3}`)
	h.expect(`{"type":"peer_joined","index":1,"seq":3}`)
}

// A room whose last member blips is kept for the host grace (GET /room
// answers with 0 clients); one whose last member leaves with 1000 ends.
func TestEmptyRoomKeptForTheHostGraceAfterABlip(t *testing.T) {
	ts := newTestServer(t, Config{})
	h := dial(t, ts.URL, "/", nil)
	code := h.create("h", 4)
	h.ws.CloseNow()
	waitFor(t, "the host's socket to be gone", func() bool {
		in, ok := ts.rooms.Lookup(code)
		return ok && in.Clients == 0
	})
	if status, _, body := getJSON(t, ts.URL+"/room/"+code); status != 200 || body != `{"clients":0,"maxClients":4,"origin":"unknown"}`+"\n" {
		t.Fatalf("GET /room after a blip: %d %s", status, body)
	}
	back := dial(t, ts.URL, "/", nil)
	back.join(code, "h")
	back.expect(`{"type":"joined","room":"` + code + `","index":0,"peers":[]}`)
	back.ws.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "the room to end", func() bool { return !ts.rooms.Held(code) })
	ts.clock.Advance(3 * time.Minute) // nothing left to expire
}
