package routing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Resolver answers one DNS question. DNSResolver is the real one; tests run
// it against a miekg/dns server on loopback.
type Resolver interface {
	Lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error)
}

// DNSResolver asks one server directly (Fly's internal resolver), never the
// host's resolver configuration. It retries over TCP when a UDP answer is
// truncated.
type DNSResolver struct {
	Server string // host:port
}

// ErrNXDomain is returned for a name that does not exist.
var ErrNXDomain = errors.New("dns: no such name")

// Lookup implements Resolver.
func (r DNSResolver) Lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.SetEdns0(4096, false)
	c := &dns.Client{Net: "udp"}
	in, _, err := c.ExchangeContext(ctx, q, r.Server)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, q, r.Server)
	}
	if err != nil {
		return nil, err
	}
	switch in.Rcode {
	case dns.RcodeSuccess:
		return in.Answer, nil
	case dns.RcodeNameError:
		return nil, ErrNXDomain
	}
	return nil, fmt.Errorf("dns: %s for %s", dns.RcodeToString[in.Rcode], name)
}

// Peer is a started machine of the app.
type Peer struct{ ID, Region string }

// Peers reads TXT vms.<app>.internal: its strings joined read
// "id region,id region,...".
func Peers(ctx context.Context, res Resolver, app string) ([]Peer, error) {
	rrs, err := res.Lookup(ctx, "vms."+app+".internal", dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var peers []Peer
	for _, rr := range rrs {
		txt, ok := rr.(*dns.TXT)
		if !ok {
			continue
		}
		for _, entry := range strings.Split(strings.Join(txt.Txt, ""), ",") {
			id, region, ok := strings.Cut(strings.TrimSpace(entry), " ")
			if ok && id != "" {
				peers = append(peers, Peer{ID: id, Region: strings.TrimSpace(region)})
			}
		}
	}
	return peers, nil
}

// Address resolves <id>.vm.<app>.internal, AAAA first, then A.
func Address(ctx context.Context, res Resolver, app, id string) (net.IP, error) {
	name := id + ".vm." + app + ".internal"
	for _, qt := range []uint16{dns.TypeAAAA, dns.TypeA} {
		rrs, err := res.Lookup(ctx, name, qt)
		if err != nil && !errors.Is(err, ErrNXDomain) {
			return nil, err
		}
		for _, rr := range rrs {
			switch rr := rr.(type) {
			case *dns.AAAA:
				return rr.AAAA, nil
			case *dns.A:
				return rr.A, nil
			}
		}
	}
	return nil, fmt.Errorf("dns: no address for %s", name)
}

// Prober finds the same-region peer that holds a room. One request costs
// at most one round, and usually less: a code that was just asked about
// and not found is remembered for NegativeTTL, requests for a code whose
// round is under way share it, rounds are bounded per machine per second,
// and connections to peers are kept and reused. Wrap Resolver in a
// CachingResolver so DNS answers are reused for their TTL.
type Prober struct {
	App          string
	Self         string
	Port         int
	Resolver     Resolver
	Client       *http.Client  // nil means a client that keeps connections to peers
	Limit        time.Duration // per round; 0 means 3 s
	NegativeTTL  time.Duration // 0 means 2 s
	RoundsPerSec float64       // machine-wide; 0 means 20 (burst twice that)
	// Wide: a round that finds nothing in the region asks every other
	// machine too. A hand-off moves rooms out of their home region when it
	// has no other machine; this finds them. Its cost is bounded like a
	// round's: one per code, rate-limited, misses remembered.
	Wide bool

	once      sync.Once
	mu        sync.Mutex // guards flights, negative, tokens, last, refreshed
	flights   map[string]*flight
	negative  map[string]time.Time // code → until
	tokens    float64
	last      time.Time
	refreshed time.Time // the last DNS refresh RegionEmpty asked for
	rounds    atomic.Int64
}

// flight is one round that later requests for the same code wait on.
type flight struct {
	done            chan struct{}
	holder, outcome string
}

// Outcome of a probe round, a fixed set for metrics.
const (
	OutcomeFound    = "found"
	OutcomeNotFound = "not_found"
	OutcomeNoPeers  = "no_peers"
	OutcomeDNSError = "dns_error"
	OutcomeCached   = "cached_miss" // asked and not found moments ago: no round
	OutcomeLimited  = "limited"     // over the machine's rounds per second: no round
)

// Outcomes lists every outcome, for metrics.
var Outcomes = []string{OutcomeFound, OutcomeNotFound, OutcomeNoPeers, OutcomeDNSError, OutcomeCached, OutcomeLimited}

// negativeMax bounds the negative cache; past it, it is cleared.
const negativeMax = 10000

// peerTransport keeps a few idle connections to each peer: a probe's
// answer is read to the end, so its connection serves the next probe.
var peerTransport = &http.Transport{
	Proxy:               nil,
	DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
	MaxIdleConnsPerHost: 4,
	IdleConnTimeout:     30 * time.Second,
}

func (p *Prober) init() {
	p.once.Do(func() {
		p.flights = map[string]*flight{}
		p.negative = map[string]time.Time{}
		p.tokens = p.burst()
		if p.Client == nil {
			p.Client = &http.Client{Transport: peerTransport}
		}
	})
}

func (p *Prober) rate() float64 {
	if p.RoundsPerSec > 0 {
		return p.RoundsPerSec
	}
	return 20
}

func (p *Prober) burst() float64 { return 2 * p.rate() }

// Rounds returns how many rounds have been sent since start.
func (p *Prober) Rounds() int64 { return p.rounds.Load() }

// Find asks every started peer of region for GET /room/<code>, all at once;
// the first 200 wins and the rest are cancelled. Any failure means "not
// found": the returned outcome says which.
func (p *Prober) Find(ctx context.Context, code, region string) (holder, outcome string) {
	p.init()
	now := time.Now()
	p.mu.Lock()
	if until, ok := p.negative[code]; ok {
		if now.Before(until) {
			p.mu.Unlock()
			return "", OutcomeCached
		}
		delete(p.negative, code)
	}
	f, shared := p.flights[code]
	if !shared {
		p.tokens = min(p.burst(), p.tokens+now.Sub(p.last).Seconds()*p.rate())
		p.last = now
		if p.tokens < 1 {
			p.mu.Unlock()
			return "", OutcomeLimited
		}
		p.tokens--
		f = &flight{done: make(chan struct{})}
		p.flights[code] = f
	}
	p.mu.Unlock()
	if !shared {
		// The round belongs to no single request: one that gives up
		// does not cancel it for the others.
		go p.fly(f, code, region)
	}
	select {
	case <-f.done:
		return f.holder, f.outcome
	case <-ctx.Done():
		return "", OutcomeNotFound
	}
}

// fly runs one round for code and publishes its result to its flight.
func (p *Prober) fly(f *flight, code, region string) {
	p.rounds.Add(1)
	f.holder, f.outcome = p.round(code, region)
	p.mu.Lock()
	delete(p.flights, code)
	if f.outcome == OutcomeNotFound || f.outcome == OutcomeNoPeers {
		if len(p.negative) >= negativeMax {
			clear(p.negative)
		}
		ttl := p.NegativeTTL
		if ttl <= 0 {
			ttl = 2 * time.Second
		}
		p.negative[code] = time.Now().Add(ttl)
	}
	p.mu.Unlock()
	close(f.done)
}

func (p *Prober) round(code, region string) (holder, outcome string) {
	limit := p.Limit
	if limit <= 0 {
		limit = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	peers, err := Peers(ctx, p.Resolver, p.App)
	if err != nil {
		return "", OutcomeDNSError
	}
	var near, far []string
	for _, peer := range peers {
		switch {
		case peer.ID == p.Self:
		case peer.Region == region:
			near = append(near, peer.ID)
		case p.Wide:
			far = append(far, peer.ID)
		}
	}
	if len(near)+len(far) == 0 {
		return "", OutcomeNoPeers
	}
	for _, group := range [][]string{near, far} {
		if id := p.ask(ctx, group, code); id != "" {
			return id, OutcomeFound
		}
	}
	return "", OutcomeNotFound
}

// ask asks every peer in ids at once; the first that holds code wins.
func (p *Prober) ask(ctx context.Context, ids []string, code string) string {
	found := make(chan string, len(ids))
	for _, id := range ids {
		go func() {
			if p.holds(ctx, id, code) {
				found <- id
			} else {
				found <- ""
			}
		}()
	}
	for range ids {
		if id := <-found; id != "" {
			return id
		}
	}
	return ""
}

// RegionEmpty reports whether DNS lists no started machine in region. A
// DNS failure says no: the caller goes on as if the region had machines.
// A cached answer that says yes is asked again (at most once a second):
// machines that started moments ago must not stay invisible for the
// cache's lifetime.
func (p *Prober) RegionEmpty(ctx context.Context, region string) bool {
	p.init()
	for fresh := false; ; fresh = true {
		peers, err := Peers(ctx, p.Resolver, p.App)
		if err != nil {
			return false
		}
		for _, peer := range peers {
			if peer.Region == region {
				return false
			}
		}
		cr, ok := p.Resolver.(*CachingResolver)
		if fresh || !ok || !p.refreshAllowed() {
			return true
		}
		cr.Forget("vms."+p.App+".internal", dns.TypeTXT)
	}
}

// refreshAllowed spends the prober's one DNS refresh per second.
func (p *Prober) refreshAllowed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.refreshed) < time.Second {
		return false
	}
	p.refreshed = now
	return true
}

func (p *Prober) holds(ctx context.Context, id, code string) bool {
	ip, err := Address(ctx, p.Resolver, p.App, id)
	if err != nil {
		return false
	}
	u := "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(p.Port)) + "/room/" + url.PathEscape(code)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return false
	}
	// Read the (small) answer to its end so the connection is reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// CachingResolver answers from memory what it asked Inner less than the
// answer's TTL ago (at most MaxTTL, 5 s by default: Fly does not document
// its TTLs). Failures are not cached.
type CachingResolver struct {
	Inner  Resolver
	MaxTTL time.Duration

	mu      sync.Mutex // guards entries
	entries map[cacheKey]cacheEntry
}

type cacheKey struct {
	name  string
	qtype uint16
}

type cacheEntry struct {
	rrs   []dns.RR
	err   error // ErrNXDomain or nil
	until time.Time
}

// cacheMax bounds the cache: peer names, one per machine, and vms.
const cacheMax = 1024

// Forget drops the cached answer to one question: the next Lookup asks.
func (c *CachingResolver) Forget(name string, qtype uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, cacheKey{name, qtype})
}

// Lookup implements Resolver.
func (c *CachingResolver) Lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	key := cacheKey{name, qtype}
	now := time.Now()
	c.mu.Lock()
	if e, ok := c.entries[key]; ok && now.Before(e.until) {
		c.mu.Unlock()
		return e.rrs, e.err
	}
	c.mu.Unlock()
	rrs, err := c.Inner.Lookup(ctx, name, qtype)
	if err != nil && !errors.Is(err, ErrNXDomain) {
		return nil, err
	}
	ttl := c.MaxTTL
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	for _, rr := range rrs {
		ttl = min(ttl, time.Duration(rr.Header().Ttl)*time.Second)
	}
	if errors.Is(err, ErrNXDomain) {
		ttl = min(ttl, time.Second)
	}
	if ttl > 0 {
		c.mu.Lock()
		if c.entries == nil || len(c.entries) >= cacheMax {
			c.entries = map[cacheKey]cacheEntry{}
		}
		c.entries[key] = cacheEntry{rrs: rrs, err: err, until: now.Add(ttl)}
		c.mu.Unlock()
	}
	return rrs, err
}
