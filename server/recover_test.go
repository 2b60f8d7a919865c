package server

import (
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// The recovery extension over real sockets, byte for byte.
func TestRecoveryOverSockets(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{})
	h := testutil.Dial(t, ts.URL)
	h.Send(`{"type":"create","clientId":"h","maxClients":4,"recover":true}`)
	h.Expect(`{"type":"created","room":"RoomBx","instance":"","region":"","index":0,"seq":0}`)
	code := "RoomBx"
	p := testutil.Dial(t, ts.URL)
	p.Send(`{"type":"join","clientId":"p","room":"` + code + `","recover":true}`)
	p.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0],"seq":0}`)
	h.Expect(`{"type":"peer_joined","index":1,"seq":1}`)
	h.Send(`{"type":"send","data":"a"}`)
	p.Expect(`{"type":"message","from":0,"data":"a","seq":1}`)
	p.Drop() // a blip: no close frame
	h.Expect(`{"type":"peer_left","index":1,"seq":2}`)
	h.Send(`{"type":"send","data":"b","to":1}`) // kept for the slot, not "Target peer not found"
	h.Send(`{"type":"send","data":"c"}`)

	bad := testutil.Dial(t, ts.URL)
	bad.Send(`{"type":"join","clientId":"p","room":"` + code + `","recover":true,"since":9}`)
	bad.ExpectErr("since is ahead of this slot")
	bad.Send(`{"type":"join","clientId":"p","room":"` + code + `","recover":true,"since":-1}`)
	bad.ExpectErr("since must be a non-negative integer")

	back := testutil.Dial(t, ts.URL)
	back.Send(`{"type":"join","clientId":"p","room":"` + code + `","recover":true,"since":1}`)
	back.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0],"seq":3,"recovered":true}`)
	back.Expect(`{"type":"message","from":0,"data":"b","seq":2}`)
	back.Expect(`{"type":"message","from":0,"data":"c","seq":3}`)
	h.Expect(`{"type":"peer_joined","index":1,"seq":3}`)
}

// A room whose last member blips is kept for the host grace (GET /room
// answers with 0 clients); one whose last member leaves with 1000 ends.
func TestEmptyRoomKeptForTheHostGraceAfterABlip(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 4)
	h.Drop()
	testutil.Eventually(t, 5*time.Second, "the host's socket to be gone", func() bool {
		in, ok := ts.rooms.Lookup(code)
		return ok && in.Clients == 0
	})
	if status, _, body := getJSON(t, ts.URL+"/room/"+code); status != 200 ||
		body != `{"clients":0,"maxClients":4,"origin":"unknown"}`+"\n" {
		t.Fatalf("GET /room after a blip: %d %s", status, body)
	}
	back := testutil.Dial(t, ts.URL)
	back.Join(code, "h")
	back.Expect(`{"type":"joined","room":"` + code + `","index":0,"peers":[]}`)
	back.Leave()
	testutil.Eventually(t, 5*time.Second, "the room to end", func() bool { return !ts.rooms.Held(code) })
	ts.clock.Advance(3 * time.Minute) // nothing left to expire
}
