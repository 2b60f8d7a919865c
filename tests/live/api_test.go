package live

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// The game's backend speaks into a room by its code alone: a server send
// through the edge of another region than the room's reaches its members
// on the machine that holds it (region replay, then probe and instance
// replay, with the body replayed at every hop). A call without the key is
// refused before any routing.
func TestServerAPIAcrossRegions(t *testing.T) {
	key := apiKey(t)
	home := cluster.regions()[0]
	away := cluster.regions()[1]
	host := dial(t, home, "/", nil)
	code := create(t, host, "api-host").Room
	guest := dial(t, home, "/"+code, nil)
	join(t, guest, code, "api-guest")
	host.ExpectType("peer_joined")

	post := func(path, body, bearer string) (int, string) {
		req := cluster.edgeRequest(t, "POST", away, path)
		req.Body = http.NoBody
		if body != "" {
			req.Body = io.NopCloser(strings.NewReader(body))
			req.ContentLength = int64(len(body))
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, text := do(t, noRedirect(), req)
		return resp.StatusCode, text
	}
	if status, body := post("/room/"+code+"/send", `{"data":"x"}`, ""); status != 401 || !strings.Contains(body, "Unauthorized") {
		t.Fatalf("no key: %d %s", status, body)
	}
	if status, _ := post("/room/"+code+"/send", `{"data":"x"}`, key+"x"); status != 401 {
		t.Fatalf("wrong key: %d", status)
	}
	status, body := post("/room/"+code+"/send", `{"data":{"round":2}}`, key)
	if status != 200 || strings.TrimSpace(body) != `{"delivered":2}` {
		t.Fatalf("send via %s: %d %s", away, status, body)
	}
	for _, p := range []*testutil.Client{host, guest} {
		if m := p.ExpectType("message"); m.From != -1 || string(m.Data) != `{"round":2}` {
			t.Fatalf("member got %+v", m)
		}
	}
	if status, body := post("/room/"+code+"/send", `{"data":"just you","to":1}`, key); status != 200 ||
		strings.TrimSpace(body) != `{"delivered":1}` {
		t.Fatalf("send to slot 1: %d %s", status, body)
	}
	if m := guest.ExpectType("message"); string(m.Data) != `"just you"` {
		t.Fatalf("guest got %+v", m)
	}
	if status, body := post("/room/"+code+"/state", `{"data":{"phase":"vote"}}`, key); status != 200 {
		t.Fatalf("state: %d %s", status, body)
	}
	if m := guest.ExpectType("state"); string(m.Data) != `{"phase":"vote"}` {
		t.Fatalf("guest got %+v", m)
	}
	if status, _ := post("/room/"+code+"/close", "", key); status != 200 {
		t.Fatalf("close: %d", status)
	}
	if c := guest.CloseCode(closeWait); c != 4001 {
		t.Fatalf("guest closed with %d, want 4001", c)
	}
	if status, body := post("/room/"+code+"/send", `{"data":1}`, key); status != 404 || !strings.Contains(body, "Room not found") {
		t.Fatalf("send to a closed room: %d %s", status, body)
	}
}
