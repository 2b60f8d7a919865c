package abuse

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/flydns"
	"github.com/party-sockets/party-sockets/internal/procstat"
	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/regions"
)

// The work no limit saw: each test counts what one address can make the
// machine do, and does not time it.

// fakePeer answers GET /room/<code> with 404 on ip:port and counts asks.
func fakePeer(t *testing.T, ip, port string, hits *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		// Like a real machine: a body, which a probe must read for its
		// connection to be reused.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(404)
		w.Write([]byte(`{"error":"Room not found"}` + "\n"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// fakePeers starts n peers of fra on 127.0.9.first, ... at port, lists them
// in fly's DNS, and returns their shared count of asks.
func fakePeers(t *testing.T, fly *flydns.Server, port string, first, n int) *atomic.Int64 {
	t.Helper()
	var hits atomic.Int64
	for i := range n {
		ip := fmt.Sprintf("127.0.9.%d", first+i)
		fakePeer(t, ip, port, &hits)
		fly.Add(fmt.Sprintf("0a1b2c3d4e%04d", first+i), "fra", ip)
	}
	return &hits
}

// Hole 11.1: a path naming an absent code of this region made the machine
// ask every same-region peer, for any method, before any limit: 600
// requests were 600 rounds, and every probe a new TCP connection.
func TestProbeAmplificationBounded(t *testing.T) {
	fly := testutil.StartFlyDNS(t, "app")
	srv := testutil.Start(t, "FLY_APP_NAME=app", "INSTANCE_ID="+selfID, "REGION=fra", "INTERNAL_DNS="+fly.Addr,
		"DASHBOARD_URL=http://127.0.0.1:9/", "UPGRADES_PER_SEC=0", "PROBES_PER_SEC=0") // only the miss budget bounds this test
	_, port, _ := net.SplitHostPort(srv.Addr)
	fly.Add(selfID, "fra", "127.0.0.1")
	hits := fakePeers(t, fly, port, 11, 4)
	hdr := http.Header{"Fly-Region": {"fra"}, "Fly-Client-IP": {"203.0.113.50"}}
	refused := 0
	for i := range 600 {
		code := regions.Encode(regions.Pack(6, uint32(1000+i))) // fra, held nowhere
		switch i % 3 {
		case 0:
			if status, _ := getJSON(t, srv.URL+"/room/"+code, hdr); status == 429 {
				refused++
			}
		case 1:
			m, resp, err := testutil.Dialer{Header: hdr}.TryDial(t, srv.URL+"/"+code)
			if err == nil {
				m.Drop()
			} else if resp != nil && resp.StatusCode == 429 {
				refused++
			}
		case 2:
			req, _ := http.NewRequest("HEAD", srv.URL+"/"+code, nil)
			req.Header = hdr.Clone()
			if resp, err := noRedirect.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}
	rounds := hits.Load() / 4
	t.Logf("600 requests for absent codes: %d probe rounds (%d asks), %d refused with 429", rounds, hits.Load(), refused)
	if rounds > 60 {
		t.Fatalf("%d probe rounds, want at most the miss budget (60)", rounds)
	}
	if tw := procstat.TimeWait("127.0.9.", port); tw > 4 {
		t.Fatalf("%d probe sockets in TIME-WAIT, want at most a pool's worth (4)", tw)
	}
}

// Hole 11.2: pings, empty fragments and decode work cost CPU outside the
// message rate.
func TestPingFloodHeldToTheFrameBudget(t *testing.T) {
	srv := testutil.Start(t, "FRAMES_PER_SEC=10")
	w := dialRaw(t, srv.Addr, nil)
	var flood []byte
	for range 1000 {
		flood = append(flood, frame(true, 0x9, nil)...)
	}
	w.write(flood)
	pongs := 0
	for {
		op, _, err := w.readFrame(3 * time.Second)
		if err != nil {
			break
		}
		if op == 0xA {
			pongs++
		}
	}
	// The burst, then 10 a second until the debt passes 5 s and the
	// flooder is closed: well under a hundred, against 1,000 before.
	if pongs > 100 {
		t.Fatalf("%d pongs for 1000 pings at 10 frames/s (burst 20)", pongs)
	}
	testutil.Eventually(t, 10*time.Second, "the flooder closed for its rate", func() bool {
		return srv.Metric(t, "party_sockets_connections_closed_total", `reason="rate_limit"`) == 1
	})
}

func TestEndlessFragmentsClosed(t *testing.T) {
	srv := testutil.Start(t)
	w := dialRaw(t, srv.Addr, nil)
	w.write(frame(false, 0x1, []byte(`{"type":`)))
	for range 200 {
		if err := w.write(frame(false, 0x0, nil)); err != nil {
			break
		}
	}
	testutil.Eventually(t, 5*time.Second, "the fragment flood closed", func() bool {
		return srv.Metric(t, "party_sockets_connections_closed_total", `reason="too_many_fragments"`) == 1
	})
	// A message in a few fragments is fine.
	ok := dialRaw(t, srv.Addr, nil)
	ok.write(frame(false, 0x1, []byte(`{"type":"create",`)))
	ok.write(frame(false, 0x0, []byte(`"clientId":"h",`)))
	ok.write(frame(true, 0x0, []byte(`"maxClients":2}`)))
	if _, p, err := ok.readFrame(5 * time.Second); err != nil || !strings.Contains(string(p), `"created"`) {
		t.Fatalf("fragmented create: %q %v", p, err)
	}
}

func TestDecodeWorkBounded(t *testing.T) {
	srv := testutil.Start(t)
	h := testutil.Dial(t, srv.URL)
	h.Create("host", 4)
	var keys []string
	for i := range 2000 {
		keys = append(keys, fmt.Sprintf(`"\u0061%d":1`, i))
	}
	h.Send(`{"type":"send",` + strings.Join(keys, ",") + `}`)
	h.ExpectErr("Message too complex")
	h.Send(`{"type":"send","data":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`)
	h.ExpectErr("Message too complex")
	h.Send(`{"type":"send","data":` + strings.Repeat("[", 60) + strings.Repeat("]", 60) + `}`)
	h.Send(`{"type":"send","data":1,"to":7}`) // answered in order: nothing before it was an error
	h.ExpectErr("Target peer not found")
}

// A socket closed for its rate went on being read for the 5 s of the
// close handshake. Now it is cut at once: what the flooder writes after
// the close frame is refused within a socket buffer's worth.
func TestClosedForRateNoLongerRead(t *testing.T) {
	srv := testutil.Start(t, "MSG_RATE=10", "MSG_BURST=20", "BYTES_PER_SEC=0")
	h := testutil.Dial(t, srv.URL)
	code := h.Create("host", 4)
	w := dialRaw(t, srv.Addr, nil)
	w.write(frame(true, 0x1, []byte(`{"type":"join","clientId":"flooder","room":"`+code+`"}`)))
	h.ExpectType("peer_joined")
	msg := frame(true, 0x1, []byte(`{"type":"send","data":1}`))
	var burst []byte
	for range 60 {
		burst = append(burst, msg...)
	}
	w.write(burst)
	for {
		op, p, err := w.readFrame(5 * time.Second)
		if err != nil {
			t.Fatalf("waiting for the close frame: %v", err)
		}
		if op == 0x8 {
			if len(p) < 2 || int(p[0])<<8|int(p[1]) != 1008 {
				t.Fatalf("close frame %v, want 1008", p)
			}
			break
		}
	}
	// Keep flooding: count what the server still takes, for up to 3 s.
	junk := frame(true, 0x1, []byte(`{"type":"send","data":"`+strings.Repeat("j", 60000)+`"}`))
	written := 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		w.c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := w.c.Write(junk)
		written += n
		if err != nil && !isTimeout(err) {
			break
		}
	}
	t.Logf("after the close frame the server took %d KB", written>>10)
	if written > 16<<20 {
		t.Fatalf("the server went on reading %d MB after closing the socket for abuse", written>>20)
	}
	got := 0
	for {
		v, err := h.Next()
		if err != nil {
			t.Fatal(err)
		}
		if v.Type == "peer_left" {
			break
		}
		if v.Type == "message" {
			got++
		}
	}
	if got != 19 { // the join took one token of the burst of 20
		t.Fatalf("the host got %d messages from the flooder, want 19: the burst and nothing after", got)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// Hole 11.3: one address completed 4,600 upgrade+create+close cycles a
// second. New sockets and creates now have a token bucket per address.
func TestUpgradeAndCreateRatePerAddress(t *testing.T) {
	srv := testutil.Start(t, "CREATE_BURST=5", "CREATES_PER_MIN=1")
	ok, refused := 0, 0
	var held []*testutil.Client
	for range 100 {
		m, resp, err := testutil.TryDial(t, srv.URL)
		switch {
		case err == nil:
			ok++
			held = append(held, m)
		case resp != nil && resp.StatusCode == 429:
			refused++
		default:
			t.Fatal(err)
		}
	}
	if ok < 60 || ok > 65 || refused != 100-ok {
		t.Fatalf("%d of 100 upgrades at once accepted, %d refused: want the burst of 60 (and the 10/s refill)", ok, refused)
	}
	for i, m := range held[:7] {
		m.Send(fmt.Sprintf(`{"type":"create","clientId":"h%d","maxClients":2}`, i))
		v, err := m.Next()
		if err != nil {
			t.Fatal(err)
		}
		if i < 5 && v.Type != "created" || i >= 5 && v.Message != "Too many rooms created, slow down" {
			t.Fatalf("create %d: %v", i, v)
		}
	}
}

// Hole 11.5: misses were counted per full address, so a /64 could walk
// the code space; and nothing bounded the machine's misses.
func TestMissesPer64AndPerMachine(t *testing.T) {
	srv := testutil.Start(t, flyEnv("MACHINE_MISSES_PER_MIN=100")...)
	blocked := 0
	for i := range 80 {
		hdr := http.Header{"Fly-Region": {"fra"}, "Fly-Client-IP": {"2001:db8:5:6::" + strconv.FormatInt(int64(i+1), 16)}}
		// A code each: asking again for a code just missed is no miss.
		if status, _ := getJSON(t, srv.URL+"/room/nothing"+strconv.Itoa(i), hdr); status == 429 {
			blocked++
		}
	}
	if blocked != 20 {
		t.Fatalf("%d of 80 misses from one /64 blocked, want 20 (60 a minute)", blocked)
	}
	// The machine's budget: 100 misses a minute from everyone together.
	for i := range 40 {
		hdr := http.Header{"Fly-Region": {"fra"}, "Fly-Client-IP": {fmt.Sprintf("198.51.100.%d", i+1)}}
		getJSON(t, srv.URL+"/room/nothing", hdr)
	}
	// Spent: an address that missed is blocked; one that never did gets
	// its lookup, and is blocked after its first miss.
	missed := http.Header{"Fly-Region": {"fra"}, "Fly-Client-IP": {"198.51.100.1"}}
	fresh := http.Header{"Fly-Region": {"fra"}, "Fly-Client-IP": {"192.0.2.77"}}
	if status, _ := getJSON(t, srv.URL+"/room/nothing", missed); status != 429 {
		t.Fatalf("an address that missed, with the machine's budget spent: %d, want 429", status)
	}
	if status, _ := getJSON(t, srv.URL+"/room/nothing", fresh); status != 404 {
		t.Fatalf("a fresh address: %d, want 404", status)
	}
	if status, _ := getJSON(t, srv.URL+"/room/nothing", fresh); status != 429 {
		t.Fatalf("the fresh address after its miss: %d, want 429", status)
	}
}

// A server API call without the key, or with a wrong one, is refused
// before any routing: it costs no probe round.
func TestServerAPIRefusedCostsNoProbe(t *testing.T) {
	const key = "server-api-key-of-at-least-32-bytes"
	fly := testutil.StartFlyDNS(t, "app")
	srv := testutil.Start(t, "FLY_APP_NAME=app", "INSTANCE_ID="+selfID, "REGION=fra", "INTERNAL_DNS="+fly.Addr,
		"DASHBOARD_URL=http://127.0.0.1:9/", "SERVER_API_KEY="+key, "JOIN_MISSES_PER_MIN=1000")
	_, port, _ := net.SplitHostPort(srv.Addr)
	fly.Add(selfID, "fra", "127.0.0.1")
	hits := fakePeers(t, fly, port, 21, 2)
	call := func(code, bearer string) int {
		req, _ := http.NewRequest("POST", srv.URL+"/room/"+code+"/send", strings.NewReader(`{"data":1}`))
		req.Header = http.Header{"Fly-Region": {"fra"}, "Fly-Client-IP": {"203.0.113.70"}}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 50 {
		code := regions.Encode(regions.Pack(6, uint32(7000+i)))
		bearer := ""
		if i%2 == 1 {
			bearer = key + "wrong"
		}
		if status := call(code, bearer); status != 401 {
			t.Fatalf("call %d: %d, want 401", i, status)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("refused API calls made %d probe asks", hits.Load())
	}
	// With the key, an absent code of this region is looked for: one round.
	if status := call(regions.Encode(regions.Pack(6, 9999)), key); status != 404 {
		t.Fatalf("authorised call for an absent room: %d, want 404", status)
	}
	if hits.Load() != 2 {
		t.Fatalf("an authorised call asked the peers %d times, want 2 (one round)", hits.Load())
	}
}
