package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/party-sockets/party-sockets/routing"
)

// fakeMachine is an HTTP server standing in for a machine process.
type fakeMachine struct {
	*machine
	hits atomic.Int32
	mu   sync.Mutex
	last http.Header
}

func (f *fakeMachine) seen() http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// newFakeCluster starts one fake machine per spec "id:region" on its own
// loopback address; handler decides each answer.
func newFakeCluster(
	t *testing.T,
	handler func(f *fakeMachine, w http.ResponseWriter, r *http.Request),
	specs ...string,
) (*cluster, map[string]*fakeMachine) {
	t.Helper()
	c := &cluster{app: "app", killSignal: syscall.SIGINT, killTimeout: time.Second, fallbackSrc: true}
	fakes := map[string]*fakeMachine{}
	port := 0
	for i, spec := range specs {
		id, region, _ := strings.Cut(spec, ":")
		ip := fmt.Sprintf("127.0.77.%d", 10+i)
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
		if err != nil {
			t.Fatal(err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		f := &fakeMachine{
			machine: &machine{ID: id, Region: region, IP: ip, Port: port, c: c, state: stateStarted, checks: checksPassing},
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.hits.Add(1)
			f.mu.Lock()
			f.last = r.Header.Clone()
			f.mu.Unlock()
			handler(f, w, r)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		c.machines = append(c.machines, f.machine)
		fakes[id] = f
	}
	return c, fakes
}

func edgeServer(t *testing.T, c *cluster, region string) string {
	t.Helper()
	e := &edge{c: c, region: region, port: 1}
	c.edges = append(c.edges, e)
	ts := httptest.NewServer(e)
	t.Cleanup(ts.Close)
	return ts.URL
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestProxyHeadersAndRegionBalance(t *testing.T) {
	c, fakes := newFakeCluster(t, func(f *fakeMachine, w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, f.ID)
	}, "a:fra", "b:iad")
	url := edgeServer(t, c, "iad")
	if _, body := get(t, url+"/x", nil); body != "b" {
		t.Fatalf("iad edge served by %q, want the iad machine", body)
	}
	h := fakes["b"].seen()
	for _, k := range []string{"Fly-Client-Ip", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Port", "Fly-Forwarded-Port", "Fly-Region", "Fly-Request-Id", "Via"} {
		if h.Get(k) == "" {
			t.Errorf("proxy header %s missing", k)
		}
	}
	if h.Get("Fly-Region") != "iad" {
		t.Errorf("Fly-Region = %q", h.Get("Fly-Region"))
	}
	if _, body := get(t, url+"/x", map[string]string{"Fly-Prefer-Region": "fra"}); body != "a" {
		t.Fatalf("fly-prefer-region fra served by %q", body)
	}
	if _, body := get(t, url+"/x", map[string]string{"Fly-Force-Instance-Id": "a"}); body != "a" {
		t.Fatalf("fly-force-instance-id served by %q", body)
	}
	// The region leaves only when none of its machines is routable.
	fakes["b"].state = stateStopped
	if _, body := get(t, url+"/x", nil); body != "a" {
		t.Fatalf("with iad down, served by %q", body)
	}
}

func TestReplayEngine(t *testing.T) {
	c, fakes := newFakeCluster(t, func(f *fakeMachine, w http.ResponseWriter, r *http.Request) {
		switch {
		case f.ID == "loop":
			w.Header().Set("Fly-Replay", "instance=loop")
			w.WriteHeader(409)
		case r.Header.Get("Fly-Replay-Failed") != "" && r.URL.Query().Get("again") != "":
			w.Header().Set("Fly-Replay", "instance=b")
			w.WriteHeader(409)
		case r.Header.Get("Fly-Replay-Failed") != "":
			fmt.Fprintf(w, "fallback at %s", f.ID)
		case r.URL.Path == "/to-region" && f.Region == "fra":
			w.Header().Set("Fly-Replay", `region="syd,iad";timeout=2s;fallback=force_self`)
			w.WriteHeader(409)
		case r.URL.Path == "/to-stopped" && f.ID == "a":
			w.Header().Set("Fly-Replay", "instance=down;timeout=1s;fallback=force_self")
			w.WriteHeader(409)
		case r.URL.Path == "/elsewhere" && f.ID == "a":
			w.Header().Set("Fly-Replay", "elsewhere=true")
			w.WriteHeader(409)
		default:
			fmt.Fprintf(w, "%s src=%s", f.ID, r.Header.Get("Fly-Replay-Src"))
		}
	}, "a:fra", "b:iad", "loop:ams", "down:iad")
	fakes["down"].state = stateStopped
	url := edgeServer(t, c, "fra")

	resp, body := get(t, url+"/to-region", nil)
	if !strings.HasPrefix(body, "b src=instance=a;region=fra;t=") {
		t.Fatalf("region list replay: %s %q", resp.Status, body)
	}
	if _, body := get(t, url+"/to-stopped", nil); body != "fallback at a" {
		t.Fatalf("force_self fallback: %q", body)
	}
	if h := fakes["a"].seen(); !strings.Contains(h.Get("Fly-Replay-Failed"), "instance=down") || h.Get("Fly-Replay-Src") == "" {
		t.Fatalf("fallback headers: failed %q src %q", h.Get("Fly-Replay-Failed"), h.Get("Fly-Replay-Src"))
	}
	c.fallbackSrc = false
	get(t, url+"/to-stopped", nil)
	if h := fakes["a"].seen(); h.Get("Fly-Replay-Failed") == "" || h.Get("Fly-Replay-Src") != "" {
		t.Fatalf("with -fallback-src=false: failed %q src %q", h.Get("Fly-Replay-Failed"), h.Get("Fly-Replay-Src"))
	}
	// A fallback delivery that answers fly-replay: refused by default (502),
	// followed with -fallback-replay.
	if resp, _ := get(t, url+"/to-stopped?again=1", nil); resp.StatusCode != 502 {
		t.Fatalf("replay from a fallback delivery, not honoured: %s", resp.Status)
	}
	c.fallbackReplay = true
	if _, body := get(t, url+"/to-stopped?again=1", nil); !strings.HasPrefix(body, "b ") {
		t.Fatalf("replay from a fallback delivery, honoured: %q", body)
	}
	c.fallbackReplay = false
	// elsewhere: not the issuer; fra has no other machine, so the next
	// region in order with a routable machine (iad: b).
	if _, body := get(t, url+"/elsewhere", nil); !strings.HasPrefix(body, "b src=instance=a;") {
		t.Fatalf("elsewhere: %q", body)
	}

	// A machine that always replays: at most 10 replays, then 502; never a
	// fly-replay response to the client.
	fakes["loop"].hits.Store(0)
	resp, _ = get(t, url+"/", map[string]string{"Fly-Force-Instance-Id": "loop"})
	if resp.StatusCode != 502 || resp.Header.Get("Fly-Replay") != "" {
		t.Fatalf("replay loop: %s replay %q", resp.Status, resp.Header.Get("Fly-Replay"))
	}
	if n := fakes["loop"].hits.Load(); n != 11 {
		t.Fatalf("replay loop delivered %d times, want 1 + 10 replays", n)
	}
}

func TestDNSNames(t *testing.T) {
	c := &cluster{app: "app"}
	for i := range 40 {
		region := "fra"
		if i%2 == 1 {
			region = "iad"
		}
		c.machines = append(
			c.machines,
			&machine{
				ID:     fmt.Sprintf("%014x", i+1),
				Region: region,
				IP:     fmt.Sprintf("127.0.66.%d", i+2),
				c:      c,
				state:  stateStarted,
				checks: checksPassing,
			},
		)
	}
	c.machines[0].state = stateStopped
	stop, err := c.serveDNS()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	res := routing.DNSResolver{Server: c.dns.Addr}
	ctx := context.Background()
	peers, err := routing.Peers(ctx, res, "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 39 {
		t.Fatalf("vms: %d started machines, want 39", len(peers))
	}
	// Answers follow the live table: a machine that is stopping is no
	// longer listed.
	c.machines[1].mu.Lock()
	c.machines[1].state = stateStopping
	c.machines[1].mu.Unlock()
	if peers, err = routing.Peers(ctx, res, "app"); err != nil || len(peers) != 38 {
		t.Fatalf("vms after a machine began stopping: %d machines, %v; want 38", len(peers), err)
	}
	rrs, err := res.Lookup(ctx, "all.vms.app.internal", dns.TypeTXT)
	if err != nil || len(rrs) != 1 {
		t.Fatalf("all.vms: %v %v", rrs, err)
	}
	txt := rrs[0].(*dns.TXT)
	if len(txt.Txt) < 3 || len(txt.Txt[0]) != 255 || strings.Count(strings.Join(txt.Txt, ""), ",") != 39 {
		t.Fatalf("all.vms TXT not split at 255 bytes: %d strings", len(txt.Txt))
	}
	if rrs[0].Header().Ttl != 5 {
		t.Fatalf("TTL %d, want 5", rrs[0].Header().Ttl)
	}
	ip, err := routing.Address(ctx, res, "app", c.machines[3].ID)
	if err != nil || ip.String() != c.machines[3].IP {
		t.Fatalf("<id>.vm: %v %v", ip, err)
	}
	if _, err := res.Lookup(ctx, "nope.app.internal", dns.TypeA); err != routing.ErrNXDomain {
		t.Fatalf("unknown name: %v", err)
	}
	rrs, _ = res.Lookup(ctx, "iad.app.internal", dns.TypeA)
	if len(rrs) != 19 {
		t.Fatalf("iad.app.internal: %d A records, want 19 (20 less the stopping one)", len(rrs))
	}
	rrs, _ = res.Lookup(ctx, "fra.app.internal", dns.TypeA)
	if len(rrs) != 19 {
		t.Fatalf("fra.app.internal: %d A records, want 19 (20 less the stopped one)", len(rrs))
	}
	rrs, _ = res.Lookup(ctx, "top3.nearest.of.app.internal", dns.TypeA)
	if len(rrs) != 3 {
		t.Fatalf("top3: %d records", len(rrs))
	}
	// A plain 512-byte UDP question is truncated.
	q := new(dns.Msg)
	q.SetQuestion("vms.app.internal.", dns.TypeTXT)
	in, err := dns.Exchange(q, c.dns.Addr)
	if err != nil || !in.Truncated {
		t.Fatalf("UDP answer over 512 bytes not truncated: %v %v", in, err)
	}
}

// Fly's proxy is never the client: the edges connect to machines from the
// cluster's own address, and the client's is only in Fly-Client-IP.
func TestEdgesConnectFromTheProxyAddress(t *testing.T) {
	type seen struct{ remote, client string }
	got := make(chan seen, 1)
	c, _ := newFakeCluster(t, func(f *fakeMachine, w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		got <- seen{host, r.Header.Get("Fly-Client-IP")}
	}, "a:fra")
	c.proxyIP = net.ParseIP("127.0.77.250")
	get(t, edgeServer(t, c, "fra")+"/x", nil)
	if s := <-got; s != (seen{"127.0.77.250", "127.0.0.1"}) {
		t.Fatalf("the machine saw the socket %s and Fly-Client-IP %s; want 127.0.77.250 and 127.0.0.1", s.remote, s.client)
	}
}
