package abuse

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/party-sockets/party-sockets/internal/flydns"
	"github.com/party-sockets/party-sockets/internal/peerauth"
	"github.com/party-sockets/party-sockets/internal/testutil"
)

// The attacks of issue 20 on the siblings' internal endpoints
// (/.internal/*), from 127.0.0.1: a stranger with no secret, and a caller
// that has it but not the code it tries to take.

// caller makes calls to a machine's internal endpoints: as a stranger
// (no secret), or as machine id holding the secret. A holder signs (this
// release) and also sends the previous release's bearer form, so one call
// reaches a server of either release; bearerOnly sends only the latter,
// as a machine of the previous release does.
type caller struct {
	secret, id string
	to         string // the machine the calls are signed for; "" is "local", a machine off Fly
	bearerOnly bool
}

// at is c calling machine to.
func (c caller) at(to string) caller {
	c.to = to
	return c
}

var stranger = caller{}

func (c caller) do(t testing.TB, base, method, path string, body []byte, hdr http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if c.secret != "" {
		req.Header.Set("Authorization", "Bearer "+c.secret)
		if !c.bearerOnly {
			key := peerauth.DeriveKey([]byte(c.secret), peerauth.LabelInternal)
			to := c.to
			if to == "" {
				to = "local"
			}
			req.Header.Set(peerauth.Header, peerauth.Sign(key, c.id, to, method, path, body, time.Now()))
			req.Header.Set(peerauth.BodyHeader, peerauth.BodyHash(body))
		}
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, strings.TrimSpace(string(out))
}

func (c caller) post(t testing.TB, base, path string, body any) (int, string) {
	t.Helper()
	b, ok := body.([]byte)
	if !ok {
		b, _ = json.Marshal(body)
	}
	return c.do(t, base, http.MethodPost, path, b, nil)
}

// keyOf is what a room keeps of a clientId.
func keyOf(clientID string) string {
	sum := sha256.Sum256([]byte(clientID))
	return hex.EncodeToString(sum[:])
}

// forgedRoom is a hand-off snapshot of a room whose host is clientID.
func forgedRoom(code, transfer, from, url, clientID string) map[string]any {
	room := map[string]any{"v": 1, "transfer": transfer, "from": from, "code": code, "maxClients": 8,
		"origin": "https://forged.example", "next": 1, "graceMs": -1,
		"slots": []map[string]any{{"index": 0, "key": keyOf(clientID)}}}
	if url != "" {
		room["url"] = url
	}
	return room
}

const notFound = `{"error":"Not found"}`

// Finding 2: with no HANDOFF_SECRET (the default) the internal endpoints
// answered anyone on a private or loopback address, on Fly or off it.
// Now every /.internal/ path answers 404 without a secret, and on Fly the
// hand-off turns itself off with a warning.
func TestInternalClosedWithoutASecret(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
	}{{"off Fly", nil}, {"on Fly", flyEnv()}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := testutil.Start(t, tc.env...)
			strangerAttacks(t, srv)
			if tc.env != nil && !strings.Contains(srv.Log(), "hand-off is off") {
				t.Errorf("on Fly without a secret, no warning that hand-off is off:\n%s", srv.Log())
			}
		})
	}
}

// strangerAttacks runs every attack of the finding against a live room
// and checks that none had an effect.
func strangerAttacks(t *testing.T, srv *testutil.Server) {
	host, player, code := pair(t, srv.URL, "victim", 8)
	var failed []string
	try := func(what string, status int, answer string) {
		t.Logf("%s: %d %s", what, status, answer)
		if status != 404 || answer != notFound {
			failed = append(failed, fmt.Sprintf("%s: %d %s", what, status, answer))
		}
	}
	for _, c := range []struct{ what, kind, data string }{
		{"relay a message as slot 0", "send", `"forged"`},
		{"replace the state", "state", `{"forged":true}`},
		{"relay invalid UTF-8", "send", "\"\xff\xfe forged\""},
	} {
		body := []byte(`{"code":"` + code + `","from":0,"kind":"` + c.kind + `","data":` + c.data + `}`)
		status, answer := stranger.post(t, srv.URL, "/.internal/relay", body)
		try(c.what, status, answer)
	}
	// What the player got before the host's real message.
	host.Send(`{"type":"send","data":"real"}`)
	for {
		b, err := player.Read()
		if err != nil {
			t.Fatalf("the player, waiting for the host's message: %v", err)
		}
		if strings.Contains(b, `"real"`) {
			break
		}
		failed = append(failed, fmt.Sprintf("the player got %q (valid UTF-8: %v)", b, utf8.ValidString(b)))
	}

	// A room of the stranger's, with a javascript: url and itself as host.
	forged := forgedRoom("FORGED1", "t-forged", "0000000900000a", "javascript:alert(1)", "attacker")
	status, answer := stranger.post(t, srv.URL, "/.internal/handoff", forged)
	try("import a forged room", status, answer)
	if status, _ := getJSON(t, srv.URL+"/room/FORGED1", nil); status == 200 {
		failed = append(failed, "the forged room is served")
		m := testutil.Dial(t, srv.URL)
		m.Join("FORGED1", "attacker")
		joined := m.ExpectType("joined")
		t.Logf("the stranger joined its forged room as slot %v, url %v", joined.Index, joined.URL)
		m.Send(`{"type":"close_room"}`)
		m.CloseCode(5 * time.Second)
	}
	status, answer = stranger.post(t, srv.URL, "/.internal/handoff", forged)
	try("replay the transfer after its room ended", status, answer)

	walked := map[int]int{}
	for i := range 100 {
		status, _ := stranger.post(
			t,
			srv.URL,
			"/.internal/abort",
			map[string]string{"code": fmt.Sprintf("WALK%02d", i), "transfer": "t"},
		)
		walked[status]++
	}
	t.Logf("walk 100 codes through /.internal/abort: statuses %v", walked)
	if walked[404] != 100 {
		failed = append(failed, fmt.Sprintf("abort answered %v to 100 codes", walked))
	}
	status, answer = stranger.do(t, srv.URL, http.MethodGet, "/.internal/load", nil, nil)
	try("read the load", status, answer)

	status, answer = stranger.post(t, srv.URL, "/.internal/relay", map[string]any{"code": code, "from": 0, "kind": "close"})
	try("close the room", status, answer)
	// The room goes on: the player still hears the host.
	host.Send(`{"type":"send","data":"still here"}`)
	if v, err := player.Next(); err != nil || v.Text() != "still here" {
		failed = append(failed, fmt.Sprintf("after the close: the player got %v, %v", v, err))
	}
	for _, f := range failed {
		t.Error(f)
	}
}

// Finding 2: "came through Fly's proxy" was a non-empty first Fly-Region,
// so an empty one, alone or before a real one, passed. Any proxy header
// present now refuses, whatever its value.
func TestInternalRefusesAnyProxyHeader(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("s", 32)
	srv := testutil.Start(t, "HANDOFF_SECRET="+secret)
	sibling := caller{secret: secret, id: "0000000900000a"}
	if status, answer := sibling.do(t, srv.URL, http.MethodGet, "/.internal/load", nil, nil); status != 200 {
		t.Fatalf("a sibling's call: %d %s", status, answer)
	}
	for _, hdr := range []http.Header{
		{"Fly-Region": {""}},
		{"Fly-Region": {"", "fra"}},
		{"Fly-Client-Ip": {"203.0.113.9"}},
		{"X-Forwarded-For": {""}},
	} {
		status, answer := sibling.do(t, srv.URL, http.MethodGet, "/.internal/load", nil, hdr)
		t.Logf("with %v: %d %s", hdr, status, answer)
		if status != 403 || answer != `{"error":"Internal endpoint"}` {
			t.Errorf("with %v: %d %s, want 403", hdr, status, answer)
		}
	}
}

// siblings is a few real server processes of one Fly region on one port,
// each on its own loopback address, with Fly's internal DNS.
type siblings struct {
	t    *testing.T
	dns  *flydns.Server
	port int
}

func newSiblings(t *testing.T) *siblings {
	return &siblings{t: t, dns: testutil.StartFlyDNS(t, "app"), port: testutil.FreePort(t)}
}

// siblingID is machine n's id, shaped like Fly's.
func siblingID(n int) string { return fmt.Sprintf("%07d%07x", n, 0xa) }

// start runs machine n on 127.0.0.n in fra, with env added, from cmd
// (nil: this build).
func (rg *siblings) start(n int, bin string, env ...string) *testutil.Server {
	t := rg.t
	ip := fmt.Sprintf("127.0.0.%d", n)
	if bin == "" {
		bin = testutil.Binary(t)
	}
	rg.dns.Add(siblingID(n), "fra", ip)
	return testutil.StartCmd(t, exec.Command(bin), append([]string{"HOST=" + ip, fmt.Sprint("PORT=", rg.port),
		"FLY_APP_NAME=app", "FLY_MACHINE_ID=" + siblingID(n), "FLY_REGION=fra", "INTERNAL_DNS=" + rg.dns.Addr,
		"DASHBOARD_URL=http://127.0.0.1:9/"}, env...)...)
}

// Finding 2: with two machines in a region, a forged hand-off of a code
// the other machine held was accepted, and a player joining by code
// landed in the forger's room. Without a secret it is not served at all;
// a caller that has the secret but not the room is refused (409) once a
// sibling says it holds the code, and the player reaches the real room.
func TestForgedHandOffOfASiblingsCode(t *testing.T) {
	secret := strings.Repeat("s", 32)
	for _, tc := range []struct {
		name   string
		env    []string
		forger caller
		want   int
	}{
		{"a stranger", nil, stranger, 404},
		{"a holder of the secret", []string{"HANDOFF_SECRET=" + secret}, caller{secret: secret, id: siblingID(9)}, 409},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rg := newSiblings(t)
			a, b := rg.start(2, "", tc.env...), rg.start(3, "", tc.env...)
			host := testutil.Dial(t, b.URL)
			code := host.Create("real-host", 8)
			status, answer := tc.forger.at(siblingID(2)).
				post(t, a.URL, "/.internal/handoff", forgedRoom(code, "t-squat", siblingID(9), "", "attacker"))
			t.Logf("a forged hand-off of %s (held by the other machine): %d %s", code, status, answer)
			if status != tc.want {
				t.Errorf("the forged hand-off: %d %s, want %d", status, answer, tc.want)
			}
			// A player's join by code that reaches a through the proxy.
			proxied := http.Header{"Fly-Region": {"fra"}, "Fly-Client-Ip": {"198.51.100.7"}}
			m, resp, err := testutil.Dialer{Header: proxied}.TryDial(t, a.URL+"/"+code)
			if err == nil {
				m.Join(code, "player")
				joined := m.ExpectType("joined")
				t.Fatalf("the player joined the forger's room on the wrong machine: %v", joined)
			}
			if resp == nil || resp.StatusCode != 409 || !strings.HasPrefix(resp.Header.Get("Fly-Replay"), "instance="+siblingID(3)) {
				t.Fatalf("the player's join: %v %v, want a replay to %s", resp, err, siblingID(3))
			}
			host.Send(`{"type":"send","data":1,"to":0}`)
			host.ExpectType("message")
		})
	}
}
