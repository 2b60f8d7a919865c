package live

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The wire contract's region table and base58 alphabet, restated here so
// the tests stay black-box.
var regionTable = strings.Fields("ams arn bom cdg dfw ewr fra gru iad jnb lax lhr nrt ord sin sjc syd yyz")

const b58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// codeFor makes a valid code of region that nobody holds (random low bits).
func codeFor(region string) string {
	idx := -1
	for i, r := range regionTable {
		if r == region {
			idx = i
		}
	}
	v := uint64(idx)<<30 | uint64(rand.Uint32()&(1<<30-1))
	b := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		b[i] = b58[v%58]
		v /= 58
	}
	return string(b)
}

func noRedirect() *http.Client {
	return &http.Client{
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestPinReachesEveryMachine(t *testing.T) {
	entry := cluster.regions()[0]
	for _, m := range cluster.Machines {
		p := dial(t, entry, "/?instance="+m.ID, nil)
		if got := create(t, p, "pin-"+m.ID); got.Instance != m.ID || got.Region != m.Region {
			t.Errorf("pinned to %s (%s), created on %q (%q)", m.ID, m.Region, got.Instance, got.Region)
		}
	}
}

func TestStalePinFallsBack(t *testing.T) {
	entry := cluster.regions()[0]
	stale := "0000deadbeef00"
	// HTTP: a clean redirect to the same path without the pin, then 200.
	resp, _ := do(t, noRedirect(), cluster.edgeRequest(t, "GET", entry, "/health?instance="+stale+"&x=1"))
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/health?x=1" {
		t.Fatalf("stale pin: %s Location %q, want 302 /health?x=1", resp.Status, resp.Header.Get("Location"))
	}
	resp, body := do(t, noRedirect(), cluster.edgeRequest(t, "GET", entry, resp.Header.Get("Location")))
	if resp.StatusCode != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("after the redirect: %s %s", resp.Status, body)
	}
	// WebSocket: handled locally; the room is not there.
	p := dial(t, entry, "/?instance="+stale, nil)
	p.SendJSON(map[string]any{"type": "join", "room": codeFor(entry), "clientId": "stale"})
	if m := p.ExpectType("error"); m.Message != "Room not found" {
		t.Fatalf("join after a stale pin: %+v", m)
	}
}

// A room created in fra is joined by code through the iad edge: region
// replay to fra, the least-loaded fra machine (not the holder) probes its
// peer, then an instance replay lands on the holder.
func TestCrossRegionJoinByCode(t *testing.T) {
	home, away := "fra", "iad"
	fra := cluster.inRegion(home)
	holder, other := fra[0], fra[1]
	host := dial(t, home, "/?instance="+holder.ID, nil)
	created := create(t, host, "host")
	if created.Instance != holder.ID {
		t.Fatalf("room made on %s, want %s", created.Instance, holder.ID)
	}
	var probesBefore float64
	if !cluster.live {
		time.Sleep(metricsTTL) // /metrics is rendered at most once a second: this read is fresh
		probesBefore = machineMetric(t, other, "party_sockets_probes_total")
	}
	guest := dial(t, away, "/"+created.Room, nil)
	joined := join(t, guest, created.Room, "guest")
	if joined.Index != 1 || len(joined.Peers) != 1 || joined.Peers[0] != 0 {
		t.Fatalf("joined = %+v", joined)
	}
	if m := host.ExpectType("peer_joined"); m.Index != 1 {
		t.Fatalf("host saw %+v", m)
	}
	guest.SendJSON(map[string]any{"type": "send", "data": "hello from iad"})
	if m := host.ExpectType("message"); m.From != 1 || string(m.Data) != `"hello from iad"` {
		t.Fatalf("host got %+v", m)
	}
	host.SendJSON(map[string]any{"type": "send", "data": "hello from fra", "to": 1})
	if m := guest.ExpectType("message"); m.From != 0 || string(m.Data) != `"hello from fra"` {
		t.Fatalf("guest got %+v", m)
	}
	if !cluster.live {
		time.Sleep(metricsTTL) // /metrics is rendered at most once a second
		if got := machineMetric(t, other, "party_sockets_probes_total"); got != probesBefore+1 {
			t.Errorf(
				"the non-holder in %s ran %v probe rounds, want 1 (the path was not region → probe → instance)",
				home,
				got-probesBefore,
			)
		}
	}

	// GET /room/<code> answers from the holder through every edge.
	for _, region := range cluster.regions() {
		resp, body := do(t, noRedirect(), cluster.edgeRequest(t, "GET", region, "/room/"+created.Room))
		if resp.StatusCode != 200 || resp.Header.Get("X-Instance-Id") != holder.ID || !strings.Contains(body, `"clients":2`) {
			t.Errorf("GET /room via %s: %s X-Instance-Id %q %s", region, resp.Status, resp.Header.Get("X-Instance-Id"), body)
		}
	}

	// fly-force-instance-id on a machine of another region still ends at the holder.
	forced := cluster.inRegion(away)[0]
	third := dial(t, home, "/"+created.Room, http.Header{"Fly-Force-Instance-Id": {forced.ID}})
	join(t, third, created.Room, "third")
	if m := host.ExpectType("peer_joined"); m.Index != 2 {
		t.Fatalf("host saw %+v after the forced join", m)
	}
}

// A mistyped code of a region costs exactly one probe round in the whole
// cluster, and the answer is a plain 404.
func TestMistypedCodeOneProbeRound(t *testing.T) {
	local(t)
	total := func() float64 {
		sum := 0.0
		for _, m := range cluster.Machines {
			sum += machineMetric(t, m, "party_sockets_probes_total")
		}
		return sum
	}
	time.Sleep(metricsTTL) // /metrics is rendered at most once a second: this read is fresh
	before := total()
	for _, entry := range cluster.regions() {
		code := codeFor("fra")
		resp, body := do(t, noRedirect(), cluster.edgeRequest(t, "GET", entry, "/room/"+code))
		if resp.StatusCode != 404 || !strings.Contains(body, "Room not found") {
			t.Fatalf("GET /room/%s via %s: %s %s", code, entry, resp.Status, body)
		}
		time.Sleep(metricsTTL) // /metrics is rendered at most once a second
		after := total()
		if got := after - before; got != 1 {
			t.Fatalf("a mistyped fra code through %s made %v probe rounds, want 1", entry, got)
		}
		before = after // fresh, and nothing has happened since
	}
}

// A code of a region with no machines in the app is served locally.
func TestCodeOfEmptyRegionServedLocally(t *testing.T) {
	entry := cluster.regions()[0]
	resp, _ := do(t, noRedirect(), cluster.edgeRequest(t, "GET", entry, "/room/"+codeFor("syd")))
	if resp.StatusCode != 404 {
		t.Fatalf("code of a region without machines: %s", resp.Status)
	}
}

func ExampleCluster() {
	fmt.Println(codeFor("fra")[0] != 0)
	// Output: true
}
