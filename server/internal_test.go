package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/peerauth"
	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/internal/wire"
)

// signedCall makes a call to base signed by from, as a sibling makes it,
// with hdr added; it returns the status and the answer.
func signedCall(t *testing.T, from *Server, base, method, path string, body []byte, hdr http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
	signTo(from, req, body)
	for k, v := range hdr {
		req.Header[k] = v
	}
	return doCall(t, req)
}

func doCall(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(out))
}

// signer is a server that signs as machine id with testSecret; it serves
// nothing.
func signer(t *testing.T, id string) *Server {
	return newTestServer(t, Config{Instance: id, HandoffSecret: testSecret}).Server
}

// Issue 20: with no HANDOFF_SECRET the internal endpoints answered any
// private or loopback address. Without a secret nothing proves a sibling,
// so every internal path answers 404, on Fly or off it.
func TestInternalNotServedWithoutASecret(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{{}, {AppName: "app", Instance: "0000000200000a", Region: "fra"}} {
		ts := newTestServer(t, cfg)
		from := signer(t, "0000000300000a")
		for _, path := range []string{loadPath, handoffPath, relayPath, abortPath, roomsPath, internalPrefix + "nope"} {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				if status, answer := signedCall(t, from, ts.URL, method, path, []byte(`{}`), nil); status != 404 ||
					answer != `{"error":"Not found"}` {
					t.Errorf("AppName %q: %s %s: %d %s, want 404", cfg.AppName, method, path, status, answer)
				}
			}
		}
	}
}

// A call is served only signed with the app's key, fresh, once, for its
// own method, path and body, and never through the proxy; the previous
// release's bearer form only on the endpoints that release calls.
func TestInternalCallsAreSignedFreshAndOnce(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{Instance: "0000000200000a", HandoffSecret: testSecret})
	from := signer(t, "0000000300000a")
	key := peerauth.DeriveKey([]byte(testSecret), peerauth.LabelInternal)
	req := func(method, path string, body []byte, hdr map[string]string) *http.Request {
		r, _ := http.NewRequest(method, ts.URL+path, bytes.NewReader(body))
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		return r
	}
	signed := func(method, path string, body []byte) *http.Request {
		r := req(method, path, body, nil)
		signTo(from, r, body)
		return r
	}
	replayed := signed(http.MethodGet, loadPath, nil)
	doCall(t, replayed.Clone(t.Context()))
	stale := req(
		http.MethodGet,
		loadPath,
		nil,
		map[string]string{
			peerauth.Header: peerauth.Sign(key, "0000000300000a", "0000000200000a", "GET", loadPath, nil, time.Now().Add(-time.Minute)),
		},
	)
	otherPath := req(
		http.MethodGet,
		roomsPath,
		nil,
		map[string]string{peerauth.Header: peerauth.Sign(key, "0000000300000a", "0000000200000a", "GET", loadPath, nil, time.Now())},
	)
	otherBody := signed(http.MethodPost, abortPath, []byte(`{"code":"A","transfer":"t"}`))
	otherBody.Body, otherBody.ContentLength = io.NopCloser(strings.NewReader(`{"code":"B","transfer":"t"}`)), 27
	escaped := req(
		http.MethodGet,
		"/%2Einternal/load",
		nil,
		map[string]string{peerauth.Header: peerauth.Sign(key, "0000000300000a", "0000000200000a", "GET", loadPath, nil, time.Now())},
	)
	// A call captured on its way to another machine: each machine keeps
	// its own nonces, so only the "to" it names stops it here.
	elsewhere := req(
		http.MethodGet,
		loadPath,
		nil,
		map[string]string{peerauth.Header: peerauth.Sign(key, "0000000300000a", "0000000400000a", "GET", loadPath, nil, time.Now())},
	)
	proxied := signed(http.MethodGet, loadPath, nil)
	proxied.Header["Fly-Region"] = []string{"", "fra"}
	forwarded := signed(http.MethodGet, loadPath, nil)
	forwarded.Header["X-Forwarded-For"] = []string{""}
	bearer := map[string]string{"Authorization": "Bearer " + testSecret}
	tests := []struct {
		name   string
		req    *http.Request
		status int
	}{
		{"signed", signed(http.MethodGet, loadPath, nil), 200},
		{"signed, the room list", signed(http.MethodGet, roomsPath, nil), 200},
		{"unsigned", req(http.MethodGet, loadPath, nil, nil), 401},
		{"replayed", replayed, 401},
		{"a minute old", stale, 401},
		{"signed for another path", otherPath, 401},
		{"another body than signed", otherBody, 401},
		{"the path escaped", escaped, 401},
		{"signed for another machine", elsewhere, 401},
		{"an empty Fly-Region before a real one", proxied, 403},
		{"an empty X-Forwarded-For", forwarded, 403},
		{"the previous release's bearer", req(http.MethodGet, loadPath, nil, bearer), 200},
		{
			"a wrong bearer",
			req(http.MethodGet, loadPath, nil, map[string]string{"Authorization": "Bearer " + strings.Repeat("x", 32)}),
			401,
		},
		{"a bearer for the room list", req(http.MethodGet, roomsPath, nil, bearer), 401},
		{"a GET with a body", signed(http.MethodGet, loadPath, []byte("x")), 413},
		{"a signed hand-off over its bound", signed(http.MethodPost, handoffPath, make([]byte, MaxHandoffBytes+1)), 413},
		{"a bearer hand-off over the old bound", req(http.MethodPost, handoffPath, make([]byte, LegacyHandoffBytes+1), bearer), 413},
		{"an abort over its bound", signed(http.MethodPost, abortPath, make([]byte, maxAbortBody+1)), 413},
		{"a relay over its bound", signed(http.MethodPost, relayPath, make([]byte, DefaultMaxFrameBytes+maxRelayOverhead+1)), 413},
		{"a path that does not exist", signed(http.MethodGet, internalPrefix+"nope", nil), 404},
		{"another method", signed(http.MethodPost, loadPath, nil), 404},
	}
	for _, tt := range tests {
		resp, err := http.DefaultClient.Do(tt.req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Header.Get(peerMarker) != "v1" {
			t.Errorf("%s: %d (marker %q), want %d", tt.name, resp.StatusCode, resp.Header.Get(peerMarker), tt.status)
		}
	}
}

// Issue 20: a relay was taken into any room, as any slot, with any bytes.
// It is taken only into a room the relaying machine handed here, and its
// data obeys a client message's rules.
func TestRelayHeldToTheClientsRules(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{Instance: "0000000200000a", HandoffSecret: testSecret})
	sender, other := signer(t, "0000000300000a"), signer(t, "0000000400000a")
	snap := `{"v":1,"transfer":"t1","from":"0000000300000a","code":"MOVED1","maxClients":4,"next":2,"graceMs":-1,` +
		`"slots":[{"index":0,"key":"` + keyHex("host") + `"},{"index":1,"key":"` + keyHex("p") + `"}]}`
	if status, answer := signedCall(t, sender, ts.URL, http.MethodPost, handoffPath, []byte(snap), nil); status != 200 {
		t.Fatalf("hand-off: %d %s", status, answer)
	}
	p := testutil.Dial(t, ts.URL)
	p.Join("MOVED1", "p")
	p.Expect(`{"type":"joined","room":"MOVED1","index":1,"peers":[]}`)
	h := testutil.Dial(t, ts.URL)
	mine := h.Create("h", 4)
	relay := func(code, rest string) []byte { return []byte(`{"code":"` + code + `",` + rest + `}`) }
	deep := strings.Repeat("[", wire.MaxDepth+1) + strings.Repeat("]", wire.MaxDepth+1)
	keys := ""
	for i := range wire.MaxKeys {
		keys += `,"k` + itoa(i) + `":0`
	}
	tests := []struct {
		name   string
		from   *Server
		body   []byte
		status int
		answer string
	}{
		{"not UTF-8", sender, relay("MOVED1", "\"from\":0,\"kind\":\"send\",\"data\":\"\xff\""), 400, `{"error":"Invalid UTF-8"}`},
		{"not JSON", sender, relay("MOVED1", `"from":0,"kind":"send","data":`), 400, `{"error":"Invalid JSON"}`},
		{"too deep", sender, relay("MOVED1", `"from":0,"kind":"send","data":`+deep), 400, `{"error":"Message too complex"}`},
		{"too many keys", sender, relay("MOVED1", `"from":0,"kind":"send"`+keys), 400, `{"error":"Message too complex"}`},
		{"another kind", sender, relay("MOVED1", `"from":0,"kind":"join"`), 400, `{"error":"Unknown message type"}`},
		{"a slot the room never had", sender, relay("MOVED1", `"from":7,"kind":"send","data":1`), 400, `{"error":"Not in a room"}`},
		{
			"state from a guest",
			sender,
			relay("MOVED1", `"from":1,"kind":"state","data":1`),
			400,
			`{"error":"Only the host can set state"}`,
		},
		{"close from a guest", sender, relay("MOVED1", `"from":1,"kind":"close"`), 400, `{"error":"Only the host can close the room"}`},
		{
			"state too large",
			sender,
			relay("MOVED1", `"from":0,"kind":"state","data":"`+strings.Repeat("x", 16384)+`"`),
			400,
			`{"error":"State too large"}`,
		},
		{
			"from another machine",
			other,
			relay("MOVED1", `"from":0,"kind":"send","data":"forged"`),
			403,
			`{"error":"Room not handed over by this machine"}`,
		},
		{
			"into a room made here",
			sender,
			relay(mine, `"from":0,"kind":"send","data":"forged"`),
			403,
			`{"error":"Room not handed over by this machine"}`,
		},
		{"a room not here", sender, relay("NOPE00", `"from":0,"kind":"send"`), 404, `{"error":"Room not found"}`},
		{"the sender, as the host", sender, relay("MOVED1", `"from":0,"kind":"send","data":"late"`), 200, `{"ok":true}`},
	}
	for _, tt := range tests {
		if status, answer := signedCall(t, tt.from, ts.URL, http.MethodPost, relayPath, tt.body, nil); status != tt.status ||
			answer != tt.answer {
			t.Errorf("%s: %d %s, want %d %s", tt.name, status, answer, tt.status, tt.answer)
		}
	}
	// The player heard only the last.
	p.Expect(`{"type":"message","from":0,"data":"late"}`)
	h.Send(`{"type":"send","data":"mine","to":0}`)
	h.Expect(`{"type":"message","from":0,"data":"mine"}`)
}

// keyHex is what a snapshot carries of a clientId.
func keyHex(clientID string) string {
	sum := sha256.Sum256([]byte(clientID))
	return hex.EncodeToString(sum[:])
}
