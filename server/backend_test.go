package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/internal/webhook"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/tokens"
)

var tokenSecret = []byte("a-secret-of-at-least-32-bytes-for-tests")

// Creates need a token: every failure answers exactly Unauthorized, leaves
// the socket open and spends one of the address's misses.
func TestCreateTokens(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{Tokens: &tokens.Verifier{Secret: tokenSecret}, JoinMissesPerMin: 60})
	c := testutil.Dialer{Header: http.Header{"Origin": {"https://game.example"}}}.Dial(t, ts.URL)
	forged, _ := tokens.Mint([]byte("not-the-secret-not-the-secret-xx"), time.Minute, tokens.Claims{})
	expired, _ := tokens.Mint(tokenSecret, -time.Minute, tokens.Claims{})
	four, _ := tokens.Mint(tokenSecret, time.Minute, tokens.Claims{MaxClients: 4})
	elsewhere, _ := tokens.Mint(tokenSecret, time.Minute, tokens.Claims{Origin: "https://other.example"})
	for _, msg := range []string{
		`{"type":"create","clientId":"h","maxClients":4}`,
		`{"type":"create","clientId":"h","maxClients":4,"token":"` + forged + `"}`,
		`{"type":"create","clientId":"h","maxClients":4,"token":"` + expired + `"}`,
		`{"type":"create","clientId":"h","maxClients":5,"token":"` + four + `"}`,
	} {
		c.Send(msg)
		c.ExpectErr("Unauthorized")
	}
	c.Send(`{"type":"create","clientId":"h","maxClients":4,"token":"` + elsewhere + `"}`)
	c.ExpectErr("Unauthorized")
	// Each failure spent one of the address's misses.
	if w, ok := ts.perAddr.misses.Peek("127.0.0.1"); !ok || w.current(time.Now()) != 5 {
		t.Fatal("bad tokens did not count as misses")
	}
	good, _ := tokens.Mint(tokenSecret, time.Minute, tokens.Claims{MaxClients: 4, Origin: "https://game.example"})
	c.Send(`{"type":"create","clientId":"h","maxClients":4,"token":"` + good + `"}`)
	if got, _ := c.Read(); !strings.HasPrefix(got, `{"type":"created"`) {
		t.Fatalf("create with a good token: %s", got)
	}
	// Joins stay open: the code is the capability.
	code := ts.rooms.Snapshot()[0].Code
	g := testutil.Dial(t, ts.URL)
	g.Join(code, "g")
	g.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0]}`)
}

func apiCall(t *testing.T, url, key, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestServerAPI(t *testing.T) {
	t.Parallel()
	const key = "server-api-key-of-at-least-32-bytes"
	ts := newTestServer(t, Config{APIKey: key})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 4)
	p := guest(t, ts, h, code, "p", 1, "0")
	u := ts.URL + "/room/" + code
	tests := []struct {
		name, path, key, body string
		status                int
		answer                string
	}{
		{"no key", "/send", "", `{"data":1}`, 401, `{"error":"Unauthorized"}`},
		{"wrong key", "/send", key + "!", `{"data":1}`, 401, `{"error":"Unauthorized"}`},
		{"bad body", "/send", key, `{"data":`, 400, `{"error":"Invalid JSON"}`},
		{"not an object", "/send", key, `[1]`, 400, `{"error":"Body must be a JSON object"}`},
		{"bad to", "/send", key, `{"data":1,"to":"x"}`, 400, `{"error":"Target peer not found"}`},
		{"state without data", "/state", key, `{}`, 400, `{"error":"data is required"}`},
		{"body over 64 KiB", "/send", key, `{"data":"` + strings.Repeat("x", 70000) + `"}`, 413, `{"error":"Body too large"}`},
		{"send to all", "/send", key, `{"data":{"q":1}}`, 200, `{"delivered":2}`},
		{"send to one", "/send", key, `{"data":"psst","to":1}`, 200, `{"delivered":1}`},
		{"state", "/state", key, `{"data":{"phase":2}}`, 200, `{"ok":true}`},
	}
	for _, tt := range tests {
		if status, body := apiCall(t, u+tt.path, tt.key, tt.body); status != tt.status || body != tt.answer {
			t.Errorf("%s: %d %s, want %d %s", tt.name, status, body, tt.status, tt.answer)
		}
	}
	h.Expect(`{"type":"message","from":-1,"data":{"q":1}}`)
	p.Expect(`{"type":"message","from":-1,"data":{"q":1}}`)
	p.Expect(`{"type":"message","from":-1,"data":"psst"}`)
	h.Expect(`{"type":"state","data":{"phase":2}}`)
	p.Expect(`{"type":"state","data":{"phase":2}}`)
	if status, body := apiCall(t, ts.URL+"/room/NOROOM/send", key, `{"data":1}`); status != 404 ||
		body != `{"error":"Room not found"}` {
		t.Fatalf("unknown room: %d %s", status, body)
	}
	if status, _ := apiCall(t, u+"/close", key, ""); status != 200 {
		t.Fatalf("close: %d", status)
	}
	p.ExpectClose(4001, "room closed")
	off := newTestServer(t, Config{})
	if status, body := apiCall(t, off.URL+"/room/"+code+"/send", key, `{"data":1}`); status != 404 ||
		body != `{"error":"Server API is off"}` {
		t.Fatalf("API off: %d %s", status, body)
	}
}

// hook is a webhook receiver that verifies every delivery the way the
// Standard Webhooks spec says, written here from the spec.
type hook struct {
	t      *testing.T
	key    []byte
	mu     sync.Mutex
	events []string // "type room index reason"
	ids    map[string]int
	fail   int // answer 500 to this many deliveries first
	hang   chan struct{}
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.hang != nil {
		select {
		case <-h.hang:
		case <-r.Context().Done():
		}
		return
	}
	body, _ := io.ReadAll(r.Body)
	id, ts, sig := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature")
	mac := hmac.New(sha256.New, h.key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	sec, _ := strconv.ParseInt(ts, 10, 64)
	if !hmac.Equal([]byte(sig), []byte(want)) || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		h.t.Errorf("bad signature on %s", body)
		w.WriteHeader(400)
		return
	}
	if strings.Contains(string(body), "clientId") || strings.Contains(string(body), "secret-") {
		h.t.Errorf("a clientId leaked into a webhook: %s", body)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ids[id]++
	if h.fail > 0 {
		h.fail--
		w.WriteHeader(500)
		return
	}
	var ev struct {
		Type string `json:"type"`
		Data struct {
			Room   string `json:"room"`
			Index  *int   `json:"index"`
			Reason string `json:"reason"`
		} `json:"data"`
	}
	json.Unmarshal(body, &ev)
	s := ev.Type
	if ev.Data.Index != nil {
		s += " " + strconv.Itoa(*ev.Data.Index)
	}
	if ev.Data.Reason != "" {
		s += " " + ev.Data.Reason
	}
	h.events = append(h.events, s)
}

func (h *hook) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.events...)
}

func webhookServer(t *testing.T, h *hook, opts webhook.Options) *testServer {
	t.Helper()
	recv := httptest.NewServer(h)
	t.Cleanup(recv.Close)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(h.key)
	sender, err := webhook.New(recv.URL, secret, opts)
	if err != nil {
		t.Fatal(err)
	}
	go sender.Run(t.Context())
	clk := &testutil.FakeClock{}
	mgr := rooms.NewManager(rooms.Config{HostGrace: time.Minute, Clock: clk, Codes: &seq{},
		Events: func(e rooms.Event) {
			sender.Send(e.Room, e.Owner, e.Type, map[string]any{"room": e.Room, "index": e.Index, "reason": e.Reason})
		}})
	return newTestServerWithManager(t, Config{Webhooks: sender}, mgr, clk)
}

// Every event of a room's life, in order, signed; a delivery answered
// with 500 is retried with the same webhook-id.
func TestWebhooksSignedInOrderAndRetried(t *testing.T) {
	t.Parallel()
	h := &hook{t: t, key: []byte("0123456789abcdef0123456789abcdef"), ids: map[string]int{}, fail: 2}
	ts := webhookServer(t, h, webhook.Options{FirstRetry: 10 * time.Millisecond})
	c := testutil.Dial(t, ts.URL)
	code := c.Create("secret-host", 4)
	p := guest(t, ts, c, code, "secret-player", 1, "0")
	p.Drop()
	c.Expect(`{"type":"peer_left","index":1}`)
	c.Send(`{"type":"close_room"}`)
	want := []string{"room.created 0", "player.joined 0", "player.joined 1", "player.left 1", "room.closed 0 host_closed"}
	testutil.Eventually(t, 5*time.Second, "every event", func() bool { return len(h.seen()) == len(want) })
	if got := h.seen(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events %q, want %q", got, want)
	}
	h.mu.Lock()
	retried := 0
	for _, n := range h.ids {
		if n > 1 {
			retried += n - 1
		}
	}
	h.mu.Unlock()
	if retried != 2 {
		t.Fatalf("%d retries with a repeated webhook-id, want 2", retried)
	}
}

// A receiver that hangs never slows the relay: events past the queue are
// dropped and counted, and every message is relayed at once.
func TestHangingWebhookReceiverDoesNotSlowTheRelay(t *testing.T) {
	t.Parallel()
	h := &hook{t: t, key: []byte("0123456789abcdef0123456789abcdef"), ids: map[string]int{}, hang: make(chan struct{})}
	ts := webhookServer(t, h, webhook.Options{QueueSize: 4, Timeout: 10 * time.Second})
	t.Cleanup(func() { close(h.hang) }) // before the receiver's Close, which waits for its requests
	for i := range 20 {
		c := testutil.Dial(t, ts.URL)
		code := c.Create("h"+strconv.Itoa(i), 2)
		p := guest(t, ts, c, code, "p", 1, "0")
		c.Send(`{"type":"send","data":1}`)
		p.Expect(`{"type":"message","from":0,"data":1}`)
	}
	_, _, _, dropped := ts.cfg.Webhooks.Stats()
	if dropped == 0 {
		t.Fatal("nothing dropped: the queue is not bounded")
	}
	if status, _, body := getJSON(t, ts.URL+"/metrics"); status != 200 ||
		!strings.Contains(body, `party_sockets_webhooks_total{instance="local",region="LOCAL",result="dropped",version="dev"}`) {
		t.Fatalf("/metrics lacks the dropped webhooks: %d", status)
	}
}

// A state the memory budget refuses is the machine's trouble, not the
// call's: 503, so a backend retries later rather than give up.
func TestStatusOfOverBudget(t *testing.T) {
	t.Parallel()
	if got := statusOf(rooms.ErrOverBudget); got != http.StatusServiceUnavailable {
		t.Fatalf("statusOf(ErrOverBudget) = %d, want 503", got)
	}
}
