package routing

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/party-sockets/party-sockets/internal/flydns"
	"github.com/party-sockets/party-sockets/internal/testutil"
)

// startFly serves Fly's internal DNS (internal/flydns) for app "app",
// listing started machines, each written "id region [ip]".
func startFly(t *testing.T, machines ...string) *flydns.Server {
	t.Helper()
	f := testutil.StartFlyDNS(t, "app")
	for _, m := range machines {
		id, rest, _ := strings.Cut(m, " ")
		region, ip, _ := strings.Cut(rest, " ")
		f.Add(id, region, ip)
	}
	return f
}

// startPeer serves GET /room/<code> on ip:port: 200 for held codes. hits
// counts the questions about codes other than "NOPE12" plus those about
// it in miss (so a round's requests can be told apart).
func startPeer(t *testing.T, ip string, port int, held string, hits *atomic.Int32, hang bool) {
	startPeerCounting(t, ip, port, held, hits, nil, hang)
}

func startPeerCounting(t *testing.T, ip string, port int, held string, hits, miss *atomic.Int32, hang bool) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if miss != nil && r.URL.Path == "/room/NOPE12" {
			miss.Add(1)
		}
		if hang {
			<-r.Context().Done()
			return
		}
		if r.URL.Path == "/room/"+held {
			w.WriteHeader(200)
			return
		}
		w.WriteHeader(404)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// self is the prober's own machine id in these tests.
const self = "aaaa0001"

func itoa(i int) string   { return strconv.Itoa(i) }
func fmtInt(i int) string { return strconv.Itoa(i) }

var freePort = testutil.FreePort

func TestProberFindsHolderOverRealDNS(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	// Many machines: the TXT value is over 255 bytes and split into strings.
	f := startFly(t)
	addrs := map[string]string{}
	for i := range 30 {
		id := "e82" + fmtInt(1000000000+i) + "ab"
		region := "iad"
		if i < 3 {
			region = "fra"
		}
		addrs[id] = "127.0.9." + fmtInt(10+i)
		f.Add(id, region, addrs[id])
	}
	dnsAddr := f.Addr
	ids := []string{"e821000000000ab", "e821000000001ab", "e821000000002ab"}
	var hits, misses [3]atomic.Int32
	startPeerCounting(t, addrs[ids[1]], port, "nothere", &hits[1], &misses[1], false)
	startPeerCounting(t, addrs[ids[2]], port, "CODE12", &hits[2], &misses[2], false)
	var iadHits atomic.Int32
	startPeer(t, addrs["e821000000003ab"], port, "CODE12", &iadHits, false)

	p := &Prober{App: "app", Self: ids[0], Port: port, Resolver: DNSResolver{Server: dnsAddr}}
	holder, outcome := p.Find(t.Context(), "CODE12", "fra")
	if holder != ids[2] || outcome != OutcomeFound {
		t.Fatalf("Find = %q, %s, want %q found", holder, outcome, ids[2])
	}
	if iadHits.Load() != 0 {
		t.Fatal("a peer of another region was asked")
	}
	holder, outcome = p.Find(t.Context(), "NOPE12", "fra")
	if holder != "" || outcome != OutcomeNotFound {
		t.Fatalf("Find(unknown) = %q, %s", holder, outcome)
	}
	// A miss is one round: each same-region peer asked exactly once.
	if misses[1].Load() != 1 || misses[2].Load() != 1 {
		t.Fatalf("a miss asked the peers %d and %d times, want once each", misses[1].Load(), misses[2].Load())
	}
}

func TestProberFirstAnswerWinsOverHangingPeer(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	dnsAddr := startFly(t, self+" fra", "aaaa0002 fra 127.0.8.2", "aaaa0003 fra 127.0.8.3").Addr
	var h1, h2 atomic.Int32
	startPeer(t, "127.0.8.2", port, "", &h1, true)
	startPeer(t, "127.0.8.3", port, "ROOM12", &h2, false)
	p := &Prober{App: "app", Self: self, Port: port, Resolver: DNSResolver{Server: dnsAddr}, Limit: 2 * time.Second}
	holder, outcome := p.Find(t.Context(), "ROOM12", "fra")
	if holder != "aaaa0003" || outcome != OutcomeFound {
		t.Fatalf("Find = %q, %s", holder, outcome)
	}
	// Nobody holds it and one peer hangs: not found once the limit passes.
	p.Limit = 200 * time.Millisecond
	if holder, outcome := p.Find(t.Context(), "OTHER1", "fra"); holder != "" || outcome != OutcomeNotFound {
		t.Fatalf("Find with a hanging peer = %q, %s", holder, outcome)
	}
}

func TestProberDNSFailureIsNotFound(t *testing.T) {
	t.Parallel()
	// A resolver that does not answer at all.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	p := &Prober{
		App:      "app",
		Self:     self,
		Port:     1,
		Resolver: DNSResolver{Server: pc.LocalAddr().String()},
		Limit:    300 * time.Millisecond,
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if holder, outcome := p.Find(ctx, "ROOM12", "fra"); holder != "" || outcome != OutcomeDNSError {
		t.Fatalf("Find with a dead resolver = %q, %s", holder, outcome)
	}
	// A failed round is a miss like any other: remembered for a moment.
	if _, outcome := p.Find(ctx, "ROOM12", "fra"); outcome != OutcomeCached {
		t.Fatalf("Find after a DNS failure = %s, want %s", outcome, OutcomeCached)
	}
	// NXDOMAIN for the TXT name is a DNS error too, never a client error.
	dnsAddr := testutil.StartFlyDNS(t, "other").Addr
	p.Resolver = DNSResolver{Server: dnsAddr}
	if holder, outcome := p.Find(ctx, "ROOM13", "fra"); holder != "" || outcome != OutcomeDNSError {
		t.Fatalf("Find with NXDOMAIN = %q, %s", holder, outcome)
	}
}

// countingResolver counts the questions that reach the real resolver.
type countingResolver struct {
	inner Resolver
	n     atomic.Int32
}

func (c *countingResolver) Lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	c.n.Add(1)
	return c.inner.Lookup(ctx, name, qtype)
}

// One request costs at most one round: concurrent requests for a code share
// its round, a miss is remembered for NegativeTTL, rounds are bounded per
// second, DNS answers are reused for their TTL, and probes reuse
// connections.
func TestProberSharesCachesAndBoundsRounds(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	dnsAddr := startFly(t, self+" fra", "aaaa0021 fra 127.0.8.21", "aaaa0022 fra 127.0.8.22").Addr
	var h1, h2 atomic.Int32
	startPeer(t, "127.0.8.21", port, "", &h1, false)
	startPeer(t, "127.0.8.22", port, "", &h2, false)
	res := &countingResolver{inner: DNSResolver{Server: dnsAddr}}
	p := &Prober{App: "app", Self: self, Port: port, Resolver: &CachingResolver{Inner: res},
		NegativeTTL: 200 * time.Millisecond, RoundsPerSec: 1}

	// 50 requests for one code at once: one round.
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if holder, _ := p.Find(t.Context(), "ABSENT", "fra"); holder != "" {
				t.Errorf("found %q", holder)
			}
		}()
	}
	wg.Wait()
	if p.Rounds() != 1 || h1.Load() != 1 || h2.Load() != 1 {
		t.Fatalf("50 concurrent requests: %d rounds, peers asked %d and %d times; want 1, 1, 1", p.Rounds(), h1.Load(), h2.Load())
	}
	if _, outcome := p.Find(t.Context(), "ABSENT", "fra"); outcome != OutcomeCached {
		t.Fatalf("a repeat within the negative TTL: %s, want %s", outcome, OutcomeCached)
	}
	// Rate: 1 round a second, burst 2. One token is left; the next
	// distinct code takes it, the one after is refused.
	if _, outcome := p.Find(t.Context(), "OTHER1", "fra"); outcome != OutcomeNotFound {
		t.Fatalf("second code: %s", outcome)
	}
	if _, outcome := p.Find(t.Context(), "OTHER2", "fra"); outcome != OutcomeLimited {
		t.Fatalf("third code at once: %s, want %s", outcome, OutcomeLimited)
	}
	// DNS: each peer's A (and the AAAA tried first) asked once; the TXT
	// twice: the first miss asks for a fresh list once (at most once a
	// second), the second round's is cached.
	if n := res.n.Load(); n != 6 {
		t.Fatalf("%d DNS questions for two rounds, want 6 (TXT twice, and AAAA+A per peer)", n)
	}
}

// A probe's connection is reused by the next: the answer is read to its end.
func TestProberReusesConnections(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	dnsAddr := startFly(t, self+" fra", "aaaa0031 fra 127.0.8.31").Addr
	var conns atomic.Int32
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.8.31", itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(404)
			w.Write([]byte(`{"error":"Room not found"}`))
		}),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p := &Prober{App: "app", Self: self, Port: port, Resolver: DNSResolver{Server: dnsAddr}, RoundsPerSec: 1000}
	for i := range 20 {
		p.Find(t.Context(), "CODE"+itoa(i), "fra")
	}
	if conns.Load() != 1 {
		t.Fatalf("20 probes opened %d connections, want 1", conns.Load())
	}
}

// A region that the cached DNS answer shows empty is asked about again (at
// most once a second): a machine that just started is seen.
func TestRegionEmptyRefreshesACachedAnswer(t *testing.T) {
	t.Parallel()
	f := testutil.StartFlyDNS(t, "app")
	f.Add(self, "fra", "127.0.0.1")
	p := &Prober{App: "app", Self: self, Resolver: &CachingResolver{Inner: DNSResolver{Server: f.Addr}}, Wide: true}
	if !p.RegionEmpty(t.Context(), "ams") {
		t.Fatal("ams has no machine")
	}
	f.Add("aaaa00a5", "ams", "127.0.0.2")
	if !p.RegionEmpty(t.Context(), "ams") {
		t.Fatal("a second refresh within a second")
	}
	time.Sleep(1100 * time.Millisecond) // the second the rule counts (routing/dns.go keeps no clock to inject)
	if p.RegionEmpty(t.Context(), "ams") {
		t.Fatal("the machine that started in ams is not seen after a refresh")
	}
}

// A machine's first lookups warm its DNS cache before its siblings are
// up: a round that finds nobody in a cached list asks DNS afresh (once a
// second at most) and asks the sibling that has started since.
func TestProberRefreshesAStaleList(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	var h atomic.Int32
	startPeer(t, "127.0.8.42", port, "LATE01", &h, false)
	f := startFly(t, self+" fra")
	f.Put(flydns.Machine{ID: "aaaa0042", Region: "fra", IP: "127.0.8.42", Stopped: true})
	p := &Prober{App: "app", Self: self, Port: port, Resolver: &CachingResolver{Inner: DNSResolver{Server: f.Addr}}}
	if peers, err := Peers(t.Context(), p.Resolver, "app"); err != nil || len(peers) != 1 {
		t.Fatalf("warming the cache: %v %v", peers, err)
	}
	f.Add("aaaa0042", "fra", "127.0.8.42") // the sibling starts
	if holder, outcome := p.Find(t.Context(), "LATE01", "fra"); holder != "aaaa0042" {
		t.Fatalf("Find with a stale cached list = %q, %s; want the sibling that started", holder, outcome)
	}
}

// Where a stopping machine's rooms go is decided on the list DNS gives
// now, not one cached from before a sibling (re)started; when DNS fails
// the cached list stands in.
func TestFreshPeers(t *testing.T) {
	t.Parallel()
	f := startFly(t, self+" fra")
	inner := &switchable{inner: DNSResolver{Server: f.Addr}}
	p := &Prober{App: "app", Self: self, Resolver: &CachingResolver{Inner: inner}}
	if peers, err := Peers(t.Context(), p.Resolver, "app"); err != nil || len(peers) != 1 {
		t.Fatalf("warming the cache: %v %v", peers, err)
	}
	f.Add("aaaa0051", "fra", "")
	if peers, err := p.FreshPeers(t.Context()); err != nil || len(peers) != 2 {
		t.Fatalf("FreshPeers after a sibling started = %v, %v; want both", peers, err)
	}
	inner.down.Store(true)
	if peers, err := p.FreshPeers(t.Context()); err != nil || len(peers) == 0 {
		t.Fatalf("FreshPeers with DNS down = %v, %v; want the cached list", peers, err)
	}
}

// switchable is a resolver that can be made to fail.
type switchable struct {
	inner Resolver
	down  atomic.Bool
}

func (s *switchable) Lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	if s.down.Load() {
		return nil, errors.New("dns: down")
	}
	return s.inner.Lookup(ctx, name, qtype)
}
