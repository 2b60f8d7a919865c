package routing

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/party-sockets/party-sockets/internal/rate"
)

// Prober finds the peer that holds a room: a machine of the code's region,
// else one the code is known to have gone to (away.go). One request costs
// at most one round, and usually none:
//   - a code found is answered from memory for FoundTTL (30 s), one not
//     found for NegativeTTL (2 s);
//   - requests for a code whose round is under way share it;
//   - every round is paid for, found or not, by the caller that started it
//     (an Allowance: the server keeps one per client address), and rounds
//     are bounded per machine per second;
//   - connections to peers are kept and reused;
//   - when the machine has no round left, the listings answer (near.go).
//
// Wrap Resolver in a CachingResolver so DNS answers are reused for their
// TTL. Lock order: Prober.mu, then an Allowance's own lock; away.mu is
// never held with Prober.mu.
type Prober struct {
	App          string
	Self         string
	Port         int
	Resolver     Resolver
	Client       *http.Client  // nil means a client that keeps connections to peers
	Limit        time.Duration // per round; 0 means 3 s
	NegativeTTL  time.Duration // 0 means 2 s
	FoundTTL     time.Duration // 0 means DefaultFoundTTL
	RoundsPerSec float64       // machine-wide; 0 means DefaultRoundsPerSec (burst twice that)
	// Wide: rooms may be handed out of their region (hand-off is on). A
	// round that finds nothing in the code's region then asks the machines
	// the code is known to have gone to, never every machine: what each
	// machine outside a region holds of it is listed when first needed and
	// again rarely (away.go). Only a prober that can Sign lists.
	Wide bool
	// Relist: a listing may be asked again this long after one that
	// learned something new, twice as long each time one learns nothing,
	// up to 30 times this; 0 means 2 s (away.go).
	Relist time.Duration
	// Sign signs a request to a peer (a probe, a listing): the server signs
	// with the app's shared secret. nil sends probes unsigned and lists
	// nothing.
	Sign func(req *http.Request, to string)

	once      sync.Once
	mu        sync.Mutex // guards flights, negative, found, allowed, refreshed
	flights   map[string]*flight
	negative  Expiring[struct{}] // code → not found moments ago
	found     Expiring[string]   // code → the peer that held it moments ago
	allowed   rate.Bucket        // the machine's rounds
	refreshed time.Time          // the last DNS refresh RegionEmpty asked for
	rounds    atomic.Int64
	away      away // what other regions hold of each region's codes; its own lock
}

// flight is one round that later requests for the same code wait on.
type flight struct {
	done            chan struct{}
	holder, outcome string
}

// Outcome of a probe round, a fixed set for metrics.
const (
	OutcomeFound       = "found"
	OutcomeNotFound    = "not_found"
	OutcomeNoPeers     = "no_peers"
	OutcomeDNSError    = "dns_error"
	OutcomeCached      = "cached_miss"  // asked and not found moments ago: no round
	OutcomeCachedFound = "cached_found" // asked and found moments ago: no round
	OutcomeLimited     = "limited"      // over the machine's rounds per second: no round
	OutcomeRefused     = "refused"      // over the caller's allowance: no round
	OutcomeListed      = "listed"       // over the machine's rounds, found in a listing: no round (near.go)
)

// Outcomes lists every outcome, for metrics.
var Outcomes = []string{OutcomeFound, OutcomeNotFound, OutcomeNoPeers, OutcomeDNSError, OutcomeCached,
	OutcomeCachedFound, OutcomeLimited, OutcomeRefused, OutcomeListed}

// cacheCodes bounds the found and not-found caches; past it the oldest
// entry goes.
const cacheCodes = 10000

// Allowance is what one caller may spend on rounds. Its methods are
// called with the prober's lock held: they must not call the prober.
type Allowance interface {
	// Light reports whether the caller has spent little lately. Only a
	// light caller may take the machine's last tokens (its reserve, half
	// its burst), so a caller that has spent more than a household's
	// rejoin is held to what the others leave over.
	Light() bool
	// Spend takes one round; false when the caller has none left.
	Spend() bool
}

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
		p.negative = Expiring[struct{}]{TTL: or(p.NegativeTTL, 2*time.Second), Max: cacheCodes}
		p.found = Expiring[string]{TTL: or(p.FoundTTL, DefaultFoundTTL), Max: cacheCodes}
		p.allowed = rate.NewBucket(p.rate(), 2*p.rate())
		if p.Client == nil {
			// A peer's answer is the answer: a redirect is not followed.
			p.Client = &http.Client{Transport: peerTransport, CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			}}
		}
	})
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// DefaultFoundTTL is how long a holder found is remembered when FoundTTL
// is 0: far longer than a miss (2 s). Only codes that exist are found, so
// a flood of random codes never renews or pushes out what players asked
// for, and a player's room keeps being found while the machine's rounds
// are spent. A room that moves is followed by the machine it left (its
// moved table), and one whose holder is gone is forgotten (Forget).
const DefaultFoundTTL = 30 * time.Second

// Forget drops what is remembered of code's holder (the server does when
// the holder is gone): the next lookup asks again.
func (p *Prober) Forget(code string) {
	p.init()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.found.Delete(code)
}

// DefaultRoundsPerSec is a machine's probe rounds per second when
// RoundsPerSec is 0 (main's PROBES_PER_SEC uses it too).
const DefaultRoundsPerSec = 20

func (p *Prober) rate() float64 {
	if p.RoundsPerSec > 0 {
		return p.RoundsPerSec
	}
	return DefaultRoundsPerSec
}

// Rounds returns how many rounds have been sent since start.
func (p *Prober) Rounds() int64 { return p.rounds.Load() }

// Find is FindFor with no caller's allowance to spend.
func (p *Prober) Find(ctx context.Context, code, region string) (holder, outcome string) {
	return p.FindFor(ctx, code, region, nil)
}

// FindFor asks every started peer of region for GET /room/<code>, all at
// once, then (Wide) the machines the code is known to have gone to; the
// first 200 wins and the rest are cancelled. A round it starts is paid
// for by a (nil: nobody). Any failure means "not found": the returned
// outcome says which.
func (p *Prober) FindFor(ctx context.Context, code, region string, a Allowance) (holder, outcome string) {
	p.init()
	now := time.Now()
	p.mu.Lock()
	if h, ok := p.found.Get(code, now); ok {
		p.mu.Unlock()
		return h, OutcomeCachedFound
	}
	if _, ok := p.negative.Get(code, now); ok {
		p.mu.Unlock()
		return "", OutcomeCached
	}
	f, shared := p.flights[code]
	if !shared {
		if refused := p.admitLocked(now, a); refused != "" {
			p.mu.Unlock()
			if refused == OutcomeLimited {
				return p.listed(ctx, code, region) // no round left: what the machines list (near.go)
			}
			return "", refused
		}
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

// admitLocked decides whether a new round may start and, when it may,
// spends one of the machine's tokens and one of a's rounds. A caller that
// is not light may take only the tokens above the machine's reserve. It
// returns the refusal's outcome, or "".
func (p *Prober) admitLocked(now time.Time, a Allowance) string {
	floor := 0.0
	if a != nil && !a.Light() {
		floor = p.allowed.Burst() / 2
	}
	if p.allowed.Level(now) < floor+1 {
		return OutcomeLimited
	}
	if a != nil && !a.Spend() {
		return OutcomeRefused
	}
	p.allowed.Take(now) // it holds floor+1 or more: this succeeds
	return ""
}

// fly runs one round for code and publishes its result to its flight.
func (p *Prober) fly(f *flight, code, region string) {
	p.rounds.Add(1)
	f.holder, f.outcome = p.round(code, region)
	now := time.Now()
	p.mu.Lock()
	delete(p.flights, code)
	if f.outcome == OutcomeFound {
		p.found.Set(code, f.holder, now)
	} else {
		p.negative.Set(code, struct{}{}, now) // not found, no peers, DNS trouble: a miss
	}
	p.mu.Unlock()
	close(f.done)
}

func (p *Prober) round(code, region string) (holder, outcome string) {
	ctx, cancel := context.WithTimeout(context.Background(), or(p.Limit, 3*time.Second))
	defer cancel()
	peers, err := Peers(ctx, p.Resolver, p.App)
	if err != nil {
		return "", OutcomeDNSError
	}
	near := p.near(peers, region, nil)
	if id := p.ask(ctx, near, code); id != "" {
		return id, OutcomeFound
	}
	// A cached list may lack a sibling that started moments ago (a
	// machine's first lookups warm the cache before its siblings are up):
	// ask DNS again, at most once a second, and ask only what is new.
	if cr, ok := p.Resolver.(*CachingResolver); ok && p.refreshAllowed() {
		cr.Forget("vms."+p.App+".internal", dns.TypeTXT)
		if fresh, err := Peers(ctx, p.Resolver, p.App); err == nil {
			peers = fresh
			added := p.near(peers, region, near)
			if id := p.ask(ctx, added, code); id != "" {
				return id, OutcomeFound
			}
			near = append(near, added...)
		}
	}
	var far []string
	if p.Wide && p.Sign != nil {
		for _, id := range p.abroad(ctx, region, code, peers) {
			if id != p.Self && !slices.Contains(near, id) && !slices.Contains(far, id) {
				far = append(far, id)
			}
		}
	}
	if len(near)+len(far) == 0 {
		return "", OutcomeNoPeers
	}
	if id := p.ask(ctx, far, code); id != "" {
		return id, OutcomeFound
	}
	return "", OutcomeNotFound
}

// near is the ids of region's machines in peers, but this one and those
// in known.
func (p *Prober) near(peers []Peer, region string, known []string) []string {
	var out []string
	for _, peer := range peers {
		if peer.ID != p.Self && peer.Region == region && !slices.Contains(known, peer.ID) {
			out = append(out, peer.ID)
		}
	}
	return out
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

func (p *Prober) holds(ctx context.Context, id, code string) bool {
	u, err := p.peerURL(ctx, id, "/room/"+url.PathEscape(code))
	if err != nil {
		return false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false
	}
	if p.Sign != nil {
		p.Sign(req, id)
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

// peerURL is http://<machine id's private address>:<port><path>.
func (p *Prober) peerURL(ctx context.Context, id, path string) (string, error) {
	ip, err := Address(ctx, p.Resolver, p.App, id)
	if err != nil {
		return "", err
	}
	return "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(p.Port)) + path, nil
}

// Listed reports whether DNS lists machine id as started. A cached answer
// that lists it is asked again (at most once a second, as RegionEmpty
// does): a machine that stopped moments ago must not stay listed for the
// cache's lifetime. A DNS failure says yes: nothing is concluded from it.
func (p *Prober) Listed(ctx context.Context, id string) bool {
	p.init()
	for fresh := false; ; fresh = true {
		peers, err := Peers(ctx, p.Resolver, p.App)
		if err != nil {
			return true
		}
		if !slices.ContainsFunc(peers, func(peer Peer) bool { return peer.ID == id }) {
			return false
		}
		cr, ok := p.Resolver.(*CachingResolver)
		if fresh || !ok || !p.refreshAllowed() {
			return true
		}
		cr.Forget("vms."+p.App+".internal", dns.TypeTXT)
	}
}
