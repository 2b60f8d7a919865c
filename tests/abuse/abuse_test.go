// Package abuse attacks a real server process from one address, the way a
// stranger would, and checks each bound of docs/limits.md. Each
// test names the hole it pins; each failed on the build before the fix.
package abuse

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/server"
)

const selfID = "0a1b2c3d4e5f01" // shaped like a Fly machine id

// flyEnv makes the server believe it runs on Fly, in fra. Its DNS points at
// a closed port: no peer ever answers.
func flyEnv(extra ...string) []string {
	return append([]string{"FLY_APP_NAME=app", "INSTANCE_ID=" + selfID, "REGION=fra", "INTERNAL_DNS=127.0.0.1:9",
		"DASHBOARD_URL=http://127.0.0.1:9/"}, extra...)
}

// noRedirect is a client that shows a redirect instead of following it:
// tests never leave loopback.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// rawRequest writes req on a new TCP connection and returns the status line
// of the answer ("" when the server closed without one).
func rawRequest(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go c.Write([]byte(req))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// Hole 1: the Origin header was kept whole (a 200-byte slice of a header
// that could be 1 MiB lived on in metrics, sessions and rooms).
func TestOriginAndHeadersBounded(t *testing.T) {
	srv := testutil.Start(t)
	hdr := http.Header{"Origin": {"https://" + strings.Repeat("a", 400) + ".example"}}
	if _, resp, err := (testutil.Dialer{Header: hdr}).TryDial(t, srv.URL); err == nil || resp == nil || resp.StatusCode != 400 {
		t.Fatalf("upgrade with a 400-byte Origin: err %v, resp %v; want 400", err, resp)
	}
	hdr = http.Header{"Origin": {"https://" + strings.Repeat("a", 250) + ".example"}}
	if _, _, err := (testutil.Dialer{Header: hdr}).TryDial(t, srv.URL); err != nil {
		t.Fatalf("a long but real Origin was refused: %v", err)
	}
	big := "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("p", 1<<20) + "\r\n\r\n"
	if got := rawRequest(t, srv.Addr, big); !strings.Contains(got, "431") {
		t.Fatalf("1 MiB of headers answered %q, want 431", got)
	}
	if n := srv.Metric(t, "party_sockets_errors_total", `kind="Origin header too long"`); n != 1 {
		t.Fatalf("errors_total{Origin header too long} = %v", n)
	}
}

// Hole 2: clientIds of any size were kept for the room's life, and 1,000
// joins locked a room for good.
func TestClientIDBoundedAndChurnCannotLockARoom(t *testing.T) {
	srv := testutil.Start(t, "UPGRADES_PER_SEC=0") // 1,100 sockets from one address
	h := testutil.Dial(t, srv.URL)
	code := h.Create("host", 8)
	long := testutil.Dial(t, srv.URL)
	long.Join(code, strings.Repeat("k", 60<<10))
	long.ExpectErr("clientId too long")
	uuid := testutil.Dial(t, srv.URL)
	uuid.Join(code, "0f8fad5b-d9cb-469f-a165-70867728950e")
	uuid.ExpectType("joined")
	// 1,100 strangers join and leave, each with a new clientId.
	for i := range 1100 {
		m := testutil.Dial(t, srv.URL)
		m.Join(code, fmt.Sprintf("churn-%d", i))
		m.ExpectType("joined")
		m.Leave()
	}
	late := testutil.Dial(t, srv.URL)
	late.Join(code, "late-player")
	late.ExpectType("joined")
}

// Hole 3: ?instance= went into Fly-Replay unchecked. Hole 7: an open
// redirect to //evil.example.
func TestPinInjectionAndOpenRedirect(t *testing.T) {
	srv := testutil.Start(t, flyEnv()...)
	fly := http.Header{"Fly-Region": {"fra"}}
	req, _ := http.NewRequest("GET", srv.URL+"/health?instance=x;app=other", nil)
	req.Header = fly.Clone()
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Fly-Replay") != "" {
		t.Fatalf("pin x;app=other: %d fly-replay %q; want it ignored", resp.StatusCode, resp.Header.Get("Fly-Replay"))
	}
	got := rawRequest(
		t,
		srv.Addr,
		"GET //evil.example/x?instance=0a1b2c3d4e5f99 HTTP/1.1\r\nHost: x\r\nFly-Region: fra\r\nFly-Replay-Src: instance=0a1b2c3d4e5f99\r\n\r\n",
	)
	c, _ := net.Dial("tcp", srv.Addr)
	defer c.Close()
	fmt.Fprintf(
		c,
		"GET //evil.example/x?instance=0a1b2c3d4e5f99 HTTP/1.1\r\nHost: x\r\nFly-Region: fra\r\nFly-Replay-Src: instance=0a1b2c3d4e5f99\r\n\r\n",
	)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if loc := r.Header.Get("Location"); r.StatusCode != 302 || loc != "/evil.example/x" {
		t.Fatalf("redirect %d Location %q, want 302 to a path on this host", r.StatusCode, loc)
	}
}

// Hole 4: unfinished requests held their headers before any limit. Now
// header bytes are bounded (431 above), and connections still in the
// handshake count per address: past the limit they are closed at once.
func TestUnfinishedHandshakesCountPerAddress(t *testing.T) {
	srv := testutil.Start(t, "MAX_CONNS_PER_IP=20", "HANDSHAKE_TIMEOUT=8s")
	var conns []net.Conn
	for range 30 {
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: %s", strings.Repeat("p", 2000))
		conns = append(conns, c)
	}
	closed := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF || isReset(err) {
			closed++
		}
	}
	if closed != 10 {
		t.Fatalf("%d of 30 unfinished handshakes were closed at once, want the 10 over the limit", closed)
	}
	healthyPairAfter(t, srv, conns)
}

// healthyPairAfter frees the held handshakes and checks the server serves.
func healthyPairAfter(t *testing.T, srv *testutil.Server, conns []net.Conn) {
	t.Helper()
	for _, c := range conns {
		c.Close()
	}
	testutil.Eventually(t, 5*time.Second, "a new connection to be admitted", func() bool {
		_, _, err := testutil.TryDial(t, srv.URL)
		return err == nil
	})
	healthyPair(t, srv.URL)
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "reset")
}

// Hole 5: a socket that never joined lived forever, and could park an
// unfinished fragmented message.
func TestNeverJoinAndPartialMessageDeadlines(t *testing.T) {
	srv := testutil.Start(t, "JOIN_TIMEOUT=1s", "MESSAGE_TIMEOUT=1s")
	idle := testutil.Dial(t, srv.URL)
	if code := idle.CloseCode(5 * time.Second); code != 1008 {
		t.Fatalf("a socket that never joined closed with %d, want 1008", code)
	}
	h := testutil.Dial(t, srv.URL)
	h.Create("host", 4)
	w, err := h.WS.Writer(context.Background(), websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(`{"type":"send","data":"` + strings.Repeat("x", 30000))) // never finished
	start := time.Now()
	if code := h.CloseCode(5 * time.Second); code != -1 && code != 1006 {
		t.Fatalf("a parked partial message: close %d", code)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("cut after %v, before the message timeout", d)
	}
	if n := srv.Metric(t, "party_sockets_connections_closed_total", `reason="message_timeout"`); n != 1 {
		t.Fatalf("closed_total{message_timeout} = %v", n)
	}
	if n := srv.Metric(t, "party_sockets_connections_closed_total", `reason="join_timeout"`); n != 1 {
		t.Fatalf("closed_total{join_timeout} = %v", n)
	}
}

// Hole 6: invalid UTF-8 was relayed in text frames, which makes a browser
// fail the connection.
func TestInvalidUTF8Refused(t *testing.T) {
	srv := testutil.Start(t)
	h, p, _ := pair(t, srv.URL, "utf8", 4)
	for _, typ := range []websocket.MessageType{websocket.MessageText, websocket.MessageBinary} {
		frame := append([]byte(`{"type":"send","data":"bad `), 0xff, 0xfe, '"', '}')
		if err := h.WS.Write(context.Background(), typ, frame); err != nil {
			t.Fatal(err)
		}
		h.ExpectErr("Invalid UTF-8")
	}
	state := append([]byte(`{"type":"set_state","data":{"k":"`), 0xc3, '"', '}', '}')
	h.WS.Write(context.Background(), websocket.MessageText, state)
	h.ExpectErr("Invalid UTF-8")
	h.Send(`{"type":"send","data":"ok ü"}`)
	if v := p.ExpectType("message"); v.Text() != "ok ü" {
		t.Fatalf("player got %v; the invalid frames must not have reached it", v)
	}
}

// Hole 11: maxClients had no upper bound (1e308 was accepted).
func TestMaxClientsClamped(t *testing.T) {
	srv := testutil.Start(t, "MAX_ROOM_MEMBERS=300")
	h := testutil.Dial(t, srv.URL)
	h.Send(`{"type":"create","clientId":"host","maxClients":1e308}`)
	code := h.ExpectType("created").Room
	status, info := getJSON(t, srv.URL+"/room/"+code, nil)
	if status != 200 || info["maxClients"] != 300.0 {
		t.Fatalf("GET /room: %d %v, want maxClients clamped to 300", status, info)
	}
}

// Hole 9: per-address limits keyed on the full IPv6 address, so rotating
// Fly-Client-IP within one /64 escaped them.
func TestIPv6KeyedBy64(t *testing.T) {
	srv := testutil.Start(t, flyEnv("MAX_CONNS_PER_IP=5")...)
	refused := 0
	for i := range 10 {
		hdr := http.Header{"Fly-Region": {"fra"}, "Fly-Client-IP": {fmt.Sprintf("2001:db8:1:2::%x", i+1)}}
		if _, resp, err := (testutil.Dialer{Header: hdr}).TryDial(t, srv.URL); err != nil {
			if resp == nil || resp.StatusCode != 429 {
				t.Fatalf("upgrade %d: %v", i, err)
			}
			refused++
		}
	}
	if refused != 5 {
		t.Fatalf("%d of 10 upgrades from one /64 refused, want 5", refused)
	}
	hdr := http.Header{"Fly-Region": {"fra"}, "Fly-Client-IP": {"2001:db8:1:3::1"}}
	if _, _, err := (testutil.Dialer{Header: hdr}).TryDial(t, srv.URL); err != nil {
		t.Fatalf("another /64 was refused: %v", err)
	}
}

// Hole 10: on Fly, a request without Fly-Region was exempt from every
// limit. Only a sibling's signed probe is; an unsigned GET /room/<code>
// from a private address gets a peer's budget (probe_test.go).
func TestExemptionIsEarned(t *testing.T) {
	srv := testutil.Start(t, flyEnv("MAX_CONNS_PER_IP=3", "JOIN_MISSES_PER_MIN=2")...)
	refused := 0
	for i := range 6 {
		if _, resp, err := testutil.TryDial(t, srv.URL); err != nil {
			if resp == nil || resp.StatusCode != 429 {
				t.Fatalf("upgrade %d: %v", i, err)
			}
			refused++
		}
	}
	if refused != 3 {
		t.Fatalf("%d of 6 direct upgrades refused, want 3: a missing Fly-Region is no exemption", refused)
	}
	for i := range 5 {
		if status, _ := getJSON(t, srv.URL+"/room/ZZZZZZ", nil); status != 404 {
			t.Fatalf("probe %d from a private address: %d, want 404 (within a peer's budget)", i, status)
		}
	}
}

// Hole 8: no global memory budget. Members that never read are shed,
// largest queue first, with 4002; healthy members keep everything.
func TestMemoryBudgetShedsNonReaders(t *testing.T) {
	// Send queues far larger than the budget: only the budget can shed them
	// (at 2 MiB a stalled queue overflowed first on a busy machine).
	srv := testutil.Start(t, "MEMORY_BUDGET=4194304", "BYTES_PER_SEC=0", "SEND_QUEUE_BYTES=67108864")
	h := testutil.Dial(t, srv.URL)
	code := h.Create("flood-host", 100)
	reader := testutil.Dial(t, srv.URL)
	reader.Join(code, "reader")
	reader.ExpectType("joined")
	for i := range 40 {
		m := testutil.Dial(t, srv.URL)
		m.Join(code, fmt.Sprintf("stalled-%d", i)) // and never reads again
	}
	// Loopback socket buffers take the stalled members' first frame or
	// two; the rest queues in the server, and the budget is over after a
	// few messages (a failed run's first shedding pass saw 10.4 MB used,
	// 245-307 KB queued for each stalled member). The healthy reader
	// reads each message before the next is sent, so whatever the
	// machine's speed it is never more than one frame behind, while the
	// stalled queues grow by a frame a message. (It used to read in a
	// goroutine of its own: on a busy machine it fell as far behind as
	// the stalled members, the budget could not tell them apart, and
	// shed it.)
	const n = 400
	payload := `{"type":"send","data":"` + strings.Repeat("z", 60<<10) + `"}`
	tick := time.NewTicker(11 * time.Millisecond) // under the default message rate
	defer tick.Stop()
	for i := range n {
		<-tick.C
		h.Send(payload)
		if err := nextMessage(reader); err != nil {
			for _, r := range []string{"memory_budget", "slow_consumer", "rate_limit", "client"} {
				t.Logf("closed %s: %v", r, srv.Metric(t, "party_sockets_connections_closed_total", `reason="`+r+`"`))
			}
			for line := range strings.Lines(srv.Log()) {
				if strings.Contains(line, "memory budget") {
					t.Log(line)
				}
			}
			t.Fatalf("the reading member got %d of %d messages: %v", i, n, err)
		}
	}
	testutil.Eventually(t, 5*time.Second, "stalled members shed by the memory budget", func() bool {
		return srv.Metric(t, "party_sockets_connections_closed_total", `reason="memory_budget"`) > 0
	})
	healthyPair(t, srv.URL)
	// Every byte counted is released: what is left is the four live
	// sockets' own cost (the flood's host and reader, the healthy pair)
	// and two rooms with their slots.
	testutil.Eventually(t, 5*time.Second, "the budget to be released", func() bool {
		return srv.Metric(t, "party_sockets_memory_budget_used_bytes") < 4*server.ConnBytes+16<<10
	})
}

// nextMessage reads c's frames until a message, past the room's comings
// and goings.
func nextMessage(c *testutil.Client) error {
	for {
		f, err := c.Next()
		switch {
		case err != nil:
			return err
		case f.Type == "message":
			return nil
		case f.Type != "peer_joined" && f.Type != "peer_left":
			return fmt.Errorf("got %.100s", f.Raw)
		}
	}
}
