package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

func TestCreateJoinRelay(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{Instance: "abc123", Region: "fra"})
	h := testutil.Dialer{Header: http.Header{"Origin": {"https://game.example"}}}.Dial(t, ts.URL)
	h.Send(`{"type":"create","clientId":"host-secret","maxClients":3,"room":"IGNORE"}`)
	h.Expect(`{"type":"created","room":"RoomBx","instance":"abc123","region":"fra","index":0}`)
	code := "RoomBx"
	a := testutil.Dial(t, ts.URL+"/"+code)
	a.Join(code, "a-secret")
	a.Expect(`{"type":"joined","room":"RoomBx","index":1,"peers":[0]}`)
	h.Expect(`{"type":"peer_joined","index":1}`)
	b := testutil.Dial(t, ts.URL+"/anything")
	b.Join(code, "b-secret")
	b.Expect(`{"type":"joined","room":"RoomBx","index":2,"peers":[0,1]}`)
	h.Expect(`{"type":"peer_joined","index":2}`)
	a.Expect(`{"type":"peer_joined","index":2}`)

	// Broadcast: everyone but the sender; whitespace in data is removed.
	a.Send(`{"type":"send","data":{ "buzz" : [1, 2] }}`)
	h.Expect(`{"type":"message","from":1,"data":{"buzz":[1,2]}}`)
	b.Expect(`{"type":"message","from":1,"data":{"buzz":[1,2]}}`)
	// No data: the field is omitted; null is kept.
	b.Send(`{"type":"send"}`)
	h.Expect(`{"type":"message","from":2}`)
	a.Expect(`{"type":"message","from":2}`)
	b.Send(`{"type":"send","data":null,"to":1.0}`)
	a.Expect(`{"type":"message","from":2,"data":null}`)
	// A binary frame holding JSON is handled like text.
	if err := b.WS.Write(t.Context(), websocket.MessageBinary, []byte(`{"type":"send","data":"bin","to":0}`)); err != nil {
		t.Fatal(err)
	}
	h.Expect(`{"type":"message","from":2,"data":"bin"}`)
	// Sending to yourself is allowed.
	h.Send(`{"type":"send","data":1,"to":0}`)
	h.Expect(`{"type":"message","from":0,"data":1}`)

	// GET /room/<code> answers with the room's facts and this machine's id.
	status, hdr, body := getJSON(t, ts.URL+"/room/"+code)
	if status != 200 || body != `{"clients":3,"maxClients":3,"origin":"https://game.example"}`+"\n" {
		t.Fatalf("GET /room: %d %s", status, body)
	}
	if hdr.Get("X-Instance-Id") != "abc123" || hdr.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("GET /room headers: %v", hdr)
	}
	// The clientId never leaves the server.
	if strings.Contains(body, "secret") {
		t.Fatalf("clientId leaked: %s", body)
	}
	a.Leave()
	h.Expect(`{"type":"peer_left","index":1}`)
	b.Expect(`{"type":"peer_left","index":1}`)
}

func TestReplaceReclaimAndCap(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 2)
	a := guest(t, ts, h, code, "a", 1, "0")

	// A second clientId cannot evict anyone from a full room.
	x := testutil.Dial(t, ts.URL)
	x.Join(code, "x")
	x.ExpectErr("Room is full")

	// Reconnect with the same clientId: old socket closed 4000, no peer events.
	a2 := testutil.Dial(t, ts.URL)
	a2.Join(code, "a")
	a2.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0]}`)
	a.ExpectClose(4000, "replaced")
	// The host saw nothing of it: its next frame is a2's message.
	a2.Send(`{"type":"send","data":"after replace"}`)
	h.Expect(`{"type":"message","from":1,"data":"after replace"}`)

	// The slot is freed: a new clientId takes the next index, not slot 1.
	a2.Leave()
	h.Expect(`{"type":"peer_left","index":1}`)
	x.Join(code, "x")
	x.Expect(`{"type":"joined","room":"` + code + `","index":2,"peers":[0]}`)
	h.Expect(`{"type":"peer_joined","index":2}`)
	// Reclaim of slot 1 into the re-filled room is refused.
	a3 := testutil.Dial(t, ts.URL)
	a3.Join(code, "a")
	a3.ExpectErr("Room is full")
	// Once x leaves, the reclaim keeps index 1.
	x.Leave()
	h.Expect(`{"type":"peer_left","index":2}`)
	a3.Join(code, "a")
	a3.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0]}`)
	h.Expect(`{"type":"peer_joined","index":1}`)
}

func TestStateReplayOnJoinAndReconnect(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 8)
	a := guest(t, ts, h, code, "a", 1, "0")
	h.Send(`{"type":"set_state","data":{ "round": 3 }}`)
	a.Expect(`{"type":"state","data":{"round":3}}`)
	// The boundary: exactly 16384 bytes is accepted.
	exact := `"` + strings.Repeat("b", 16382) + `"`
	h.Send(`{"type":"set_state","data":` + exact + `}`)
	a.Expect(`{"type":"state","data":` + exact + `}`)
	h.Send(`{"type":"set_state","data":{"round":4}}`)
	a.Expect(`{"type":"state","data":{"round":4}}`)

	b := testutil.Dial(t, ts.URL)
	b.Join(code, "b")
	b.Expect(`{"type":"joined","room":"` + code + `","index":2,"peers":[0,1]}`)
	b.Expect(`{"type":"state","data":{"round":4}}`)
	// Reconnect (replace) gets the state again right after joined.
	b2 := testutil.Dial(t, ts.URL)
	b2.Join(code, "b")
	b2.Expect(`{"type":"joined","room":"` + code + `","index":2,"peers":[0,1]}`)
	b2.Expect(`{"type":"state","data":{"round":4}}`)
	b.ExpectClose(4000, "replaced")
	// Reclaim after a real disconnect, too.
	b2.Leave()
	a.Expect(`{"type":"peer_joined","index":2}`)
	a.Expect(`{"type":"peer_left","index":2}`)
	b3 := testutil.Dial(t, ts.URL)
	b3.Join(code, "b")
	b3.Expect(`{"type":"joined","room":"` + code + `","index":2,"peers":[0,1]}`)
	b3.Expect(`{"type":"state","data":{"round":4}}`)
}

func TestCloseRoomClosesEveryone(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 8)
	a := guest(t, ts, h, code, "a", 1, "0")
	// A message queued before the close is still delivered, then the close.
	h.Send(`{"type":"send","data":"last words"}`)
	h.Send(`{"type":"close_room"}`)
	a.Expect(`{"type":"message","from":0,"data":"last words"}`)
	a.ExpectClose(4001, "room closed")
	h.ExpectClose(4001, "room closed")
	if status, _, body := getJSON(t, ts.URL+"/room/"+code); status != 404 || body != `{"error":"Room not found"}`+"\n" {
		t.Fatalf("GET /room after close: %d %s", status, body)
	}
}

func TestHostGraceExpiry(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 8)
	a := guest(t, ts, h, code, "a", 1, "0")
	h.Leave()
	a.Expect(`{"type":"peer_left","index":0}`)
	ts.clock.Advance(2*time.Minute - time.Second)
	if status, _, _ := getJSON(t, ts.URL+"/room/"+code); status != 200 {
		t.Fatalf("room gone before the grace window: %d", status)
	}
	ts.clock.Advance(time.Second)
	a.ExpectClose(4001, "room closed")
	if status, _, _ := getJSON(t, ts.URL+"/room/"+code); status != 404 {
		t.Fatalf("room outlived its grace: %d", status)
	}
}

func TestHostReturnsWithinGrace(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 8)
	a := guest(t, ts, h, code, "a", 1, "0")
	h.Leave()
	a.Expect(`{"type":"peer_left","index":0}`)
	h2 := testutil.Dial(t, ts.URL)
	h2.Join(code, "h")
	h2.Expect(`{"type":"joined","room":"` + code + `","index":0,"peers":[1]}`)
	a.Expect(`{"type":"peer_joined","index":0}`)
	ts.clock.Advance(time.Hour)
	h2.Send(`{"type":"send","data":"back"}`)
	a.Expect(`{"type":"message","from":0,"data":"back"}`)
}

func TestEmptyRoomDeletedAtOnce(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 8)
	h.Leave()
	testutil.Eventually(t, 5*time.Second, "room deleted", func() bool { return !ts.rooms.Held(code) })
}

func TestFrameTooBigCloses1009(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{MaxFrameBytes: 2048})
	c := testutil.Dial(t, ts.URL)
	c.Send(`{"type":"send","data":"` + strings.Repeat("x", 4096) + `"}`)
	c.ExpectClose(1009, "read limited at 2049 bytes")
}

func TestAllowedOrigins(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{AllowedOrigins: []string{"game.example"}})
	testutil.Dialer{Header: http.Header{"Origin": {"https://game.example"}}}.Dial(t, ts.URL)
	_, resp, err := testutil.Dialer{Header: http.Header{"Origin": {"https://evil.example"}}}.TryDial(t, ts.URL)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: err %v resp %v, want 403", err, resp)
	}
	// By default any origin may connect.
	open := newTestServer(t, Config{})
	testutil.Dialer{Header: http.Header{"Origin": {"https://anywhere.example"}}}.Dial(t, open.URL)
}

func TestHTTPRoutes(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{Instance: "m1"})
	status, hdr, body := getJSON(t, ts.URL+"/health")
	if status != 200 || body != `{"status":"ok"}`+"\n" || hdr.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("/health: %d %q %v", status, body, hdr)
	}
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 4)
	status, _, body = getJSON(t, ts.URL+"/")
	if status != 200 || body != "rooms: 1\nclients: 1\n" {
		t.Fatalf("GET /: %d %q", status, body)
	}
	// /room/<code> is percent-decoded.
	esc := strings.ReplaceAll(code, "R", "%52")
	if status, _, _ := getJSON(t, ts.URL+"/room/"+esc); status != 200 {
		t.Fatalf("GET /room/%s: %d", esc, status)
	}
	status, _, body = getJSON(t, ts.URL+"/metrics")
	if status != 200 || !strings.Contains(body, `party_sockets_rooms{instance="m1",region="LOCAL",version="dev"} 1`) {
		t.Fatalf("/metrics: %d\n%s", status, body)
	}

	dash := newTestServer(t, Config{DashboardURL: "https://dash.example/d"})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(dash.URL + "/anything")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "https://dash.example/d" {
		t.Fatalf("dashboard redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// A receiver that stops reading is closed with 4002 once its queue is full;
// its room keeps going for everyone else.
func TestSlowConsumerClosed(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{QueueFrames: 8})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 4)
	guest(t, ts, h, code, "slow", 1, "0") // never reads again
	fast := guest(t, ts, h, code, "fast", 2, "0,1")
	// slow never reads again; fast reads every message, in lockstep with
	// the host, so only slow can fall behind.
	payload := strings.Repeat("p", 60000)
	left := 0
	sent := 0
	for ; sent < 2000 && left == 0; sent++ {
		h.Send(`{"type":"send","data":"` + payload + `"}`)
		for {
			s, err := fast.Read()
			if err != nil {
				t.Fatalf("fast reader after %d messages: %v", sent, err)
			}
			if strings.Contains(s, `"peer_left"`) {
				left++
				continue
			}
			if !strings.Contains(s, `"message"`) {
				t.Fatalf("fast reader got %.80s", s)
			}
			break
		}
	}
	if left != 1 {
		t.Fatalf("slow consumer not closed after %d large frames", sent)
	}
	h.Expect(`{"type":"peer_left","index":1}`)
	_, _, metrics := getJSON(t, ts.URL+"/metrics")
	if !strings.Contains(metrics, `reason="slow_consumer",region="LOCAL",version="dev"} 1`) {
		t.Fatalf("slow consumer close not counted:\n%s", metrics)
	}
}

func TestDeadPeerClosedByHeartbeat(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{PingInterval: 50 * time.Millisecond})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 4)
	// This client never reads, so it never answers pings.
	mute := testutil.Dial(t, ts.URL)
	mute.Join(code, "mute")
	h.Expect(`{"type":"peer_joined","index":1}`)
	// The host reads (and so answers pings) and stays.
	h.Expect(`{"type":"peer_left","index":1}`)
	h.Send(`{"type":"send","data":1,"to":0}`)
	h.Expect(`{"type":"message","from":0,"data":1}`)
}
