package routing

import (
	"context"
	"errors"
	"fmt"
	"net"
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
	Server  string        // host:port
	Timeout time.Duration // each exchange (UDP, then TCP if truncated); 0: DefaultDNSTimeout
}

// DefaultDNSTimeout bounds one exchange with the resolver: Fly's is on the
// host and answers in milliseconds, and a stopping machine has
// HANDOFF_TIMEOUT (4 s) for its whole hand-off, its DNS questions included.
const DefaultDNSTimeout = time.Second

// ErrNXDomain is returned for a name that does not exist.
var ErrNXDomain = errors.New("dns: no such name")

// Lookup implements Resolver.
func (r DNSResolver) Lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.SetEdns0(4096, false)
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultDNSTimeout
	}
	c := &dns.Client{Net: "udp", Timeout: timeout}
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
// "id region,id region,...". An id not shaped like a machine id
// (MachineID) is left out: ids go into fly-replay headers, DNS names and
// URLs, and an answer must not be able to add a field or a path to them.
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
			if ok && MachineID(id) {
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

// FreshPeers is the started machines as DNS lists them now, not as a
// cache kept them: for the rare decisions that must not act on a list
// from before a sibling started (where a stopping machine's rooms go,
// whether a sibling holds a code). When DNS fails it falls back to the
// last good answer, if any (CachingResolver), after one question of at
// most freshWait: a stopping machine has HANDOFF_TIMEOUT (4 s) in all.
func (p *Prober) FreshPeers(ctx context.Context) ([]Peer, error) {
	if cr, ok := p.Resolver.(*CachingResolver); ok {
		cr.Forget("vms."+p.App+".internal", dns.TypeTXT)
	}
	ctx, cancel := context.WithTimeout(ctx, freshWait)
	defer cancel()
	return Peers(ctx, p.Resolver, p.App)
}

// ErrStandIn: the DNS failed, and the answer is the last good one
// (CachingResolver): it may miss machines started since.
var ErrStandIn = errors.New("routing: the DNS failed; the last good answer stands in")

// standInKey marks a context whose lookups report a stand-in answer.
type standInKey struct{}

// markStandIn records, on a context LivePeers made, that a lookup was
// answered by a stand-in.
func markStandIn(ctx context.Context) {
	if f, ok := ctx.Value(standInKey{}).(*atomic.Bool); ok {
		f.Store(true)
	}
}

// LivePeers is FreshPeers, and ErrStandIn with the list when the DNS
// failed and the last good answer stood in. A restore must not rebuild a
// room on such a list: machines started since (a deploy's) are missing
// from it, and one of them may hold the room (an unknown answer is not an
// absent one); it may still ask the machines the list names.
func (p *Prober) LivePeers(ctx context.Context) ([]Peer, error) {
	var standIn atomic.Bool
	peers, err := p.FreshPeers(context.WithValue(ctx, standInKey{}, &standIn))
	if err == nil && standIn.Load() {
		err = ErrStandIn
	}
	return peers, err
}

// freshWait bounds FreshPeers' question; Fly's resolver is on the host
// and answers in milliseconds.
const freshWait = time.Second

// Stale says the cached list of machines may be wrong (a replay to one
// found none): it is asked again next time, at most once a second.
func (p *Prober) Stale() {
	p.init()
	if cr, ok := p.Resolver.(*CachingResolver); ok && p.refreshAllowed() {
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

// CachingResolver answers from memory what it asked Inner less than the
// answer's TTL ago (at most MaxTTL, 5 s by default: Fly does not document
// its TTLs). Failures are not cached. When Inner fails, the last good
// answer to the question stands in for it if it is younger than MaxStale
// (10 minutes by default): a deploy during a DNS outage still finds the
// siblings it knew, and every call to one is signed for its machine id,
// so a machine that took over a stale address refuses it. For FailPause
// (2 s) after a failure a question that has such an answer gets it
// without asking, so a stopping machine's hand-off waits for a dead
// resolver once, not once per sibling; a question without one is asked
// (a name never resolved fails within DNSResolver's Timeout).
type CachingResolver struct {
	Inner     Resolver
	MaxTTL    time.Duration
	MaxStale  time.Duration // 0: DefaultMaxStale
	FailPause time.Duration // 0: DefaultFailPause

	mu       sync.Mutex // guards entries and failedAt
	entries  map[cacheKey]cacheEntry
	failedAt time.Time // Inner's last failure

	now func() time.Time // nil: time.Now (tests move it)
}

func (c *CachingResolver) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// DefaultMaxStale bounds the age of an answer that stands in for a
// failing resolver; DefaultFailPause is how long after a failure such an
// answer is given without asking.
const (
	DefaultMaxStale  = 10 * time.Minute
	DefaultFailPause = 2 * time.Second
)

type cacheKey struct {
	name  string
	qtype uint16
}

type cacheEntry struct {
	rrs     []dns.RR
	err     error     // ErrNXDomain or nil
	until   time.Time // fresh until then
	fetched time.Time // when Inner gave it: a stand-in for a failure until MaxStale after
}

// cacheMax bounds the cache: peer names, one per machine, and vms.
const cacheMax = 1024

// Forget makes the cached answer to one question stale: the next Lookup
// asks, and falls back to it only if the resolver fails.
func (c *CachingResolver) Forget(name string, qtype uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[cacheKey{name, qtype}]; ok {
		e.until = time.Time{}
		c.entries[cacheKey{name, qtype}] = e
	}
}

// standInLocked is the last good answer to key if it may stand in for a
// failing resolver.
func (c *CachingResolver) standInLocked(key cacheKey, now time.Time) (cacheEntry, bool) {
	e, ok := c.entries[key]
	maxStale := c.MaxStale
	if maxStale <= 0 {
		maxStale = DefaultMaxStale
	}
	return e, ok && now.Sub(e.fetched) < maxStale
}

// failingLocked reports whether Inner failed within FailPause.
func (c *CachingResolver) failingLocked(now time.Time) bool {
	pause := c.FailPause
	if pause <= 0 {
		pause = DefaultFailPause
	}
	return !c.failedAt.IsZero() && now.Sub(c.failedAt) < pause
}

// Lookup implements Resolver.
func (c *CachingResolver) Lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	key := cacheKey{name, qtype}
	now := c.clock()
	c.mu.Lock()
	if e, ok := c.entries[key]; ok && now.Before(e.until) {
		c.mu.Unlock()
		return e.rrs, e.err
	}
	if e, ok := c.standInLocked(key, now); ok && c.failingLocked(now) {
		c.mu.Unlock()
		markStandIn(ctx)
		return e.rrs, e.err
	}
	c.mu.Unlock()
	rrs, err := c.Inner.Lookup(ctx, name, qtype)
	if err != nil && !errors.Is(err, ErrNXDomain) {
		rrs, err := c.failed(key, err)
		if err == nil {
			markStandIn(ctx)
		}
		return rrs, err
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
	// Kept even with a TTL of 0: it is never fresh, but it may stand in.
	c.mu.Lock()
	if _, ok := c.entries[key]; !ok && (c.entries == nil || len(c.entries) >= cacheMax) {
		c.entries = map[cacheKey]cacheEntry{}
	}
	c.entries[key] = cacheEntry{rrs: rrs, err: err, until: now.Add(max(ttl, 0)), fetched: now}
	c.mu.Unlock()
	return rrs, err
}

// failed notes that Inner failed, and answers key with its last good
// answer if that may stand in, else with err.
func (c *CachingResolver) failed(key cacheKey, err error) ([]dns.RR, error) {
	now := c.clock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failedAt = now
	if e, ok := c.standInLocked(key, now); ok {
		return e.rrs, e.err
	}
	return nil, err
}
