package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/party-sockets/party-sockets/regions"
)

// Codes abroad (docs/deploys.md → "Finding it again"). A hand-off takes a
// room out of its home region only when the region has no other machine
// to take it. A prober looking for a code of region r that r's machines do
// not hold asks the machines outside r, once, which codes of r they hold:
//
//	GET /.internal/codes?region=<r>   signed (Prober.Sign)
//	→ {"codes": ["<code>", ...]}       at most MaxListedCodes
//
// and then asks only the machine the code is listed on. A machine that
// starts takes this listing of its own region at once (Learn): what a
// hand-off took away from its region is known again after a restart. A
// machine elsewhere takes it of a region with no machine running when it
// first looks for one of that region's codes.
//
// The listing is asked again only when a code of r was missed and the
// listing has aged past its interval: Relist (2 s) after a listing that
// learned something new (rooms may still be arriving from a hand-off),
// twice as long each time nothing changed, up to 30 times that. So a
// region's listing
// costs one call per machine every 2 s at most while its rooms move, and
// one a minute after, however many codes are mistyped; a mistyped code
// itself costs its region's probe and nothing more.
//
// A machine that answers 404 or 401 (an older release: no such endpoint,
// or one that wants the bearer secret) cannot list: it is asked about
// every code of r that r's machines miss, as before this release.

// CodesPath is the listing's endpoint.
const CodesPath = "/.internal/codes"

const (
	// MaxListedCodes bounds one machine's listing (about 9 bytes a code
	// on the wire).
	MaxListedCodes = 10000
	// maxListingBytes bounds a listing's answer as read.
	maxListingBytes = 256 << 10
	// maxAwayCodes bounds the codes a prober remembers from listings
	// from abroad, over all regions, and as many again from near ones.
	maxAwayCodes = 20000
)

// away is what the machines outside each region hold of its codes, and
// (near listings) what a region's own machines hold of them: a prober
// that has no round to spare answers a code from them (near.go).
type away struct {
	mu     sync.Mutex           // guards lists, totals
	lists  map[listKey]*listing // a region's latest listing, from abroad or near
	totals [2]int               // codes in the finished listings, from abroad [0] and near [1]
}

// listKey names a listing: region's codes, as the machines outside it
// hold them, or (near) as its own machines do.
type listKey struct {
	region string
	near   bool
}

// side is a listing's index in away.totals.
func (k listKey) side() int {
	if k.near {
		return 1
	}
	return 0
}

// listing is one region's. Its fields other than done and at are set
// before done is closed and never change after.
type listing struct {
	done     chan struct{}
	at       time.Time     // when its pass started
	every    time.Duration // how long after at it may be asked again
	holders  map[string]string
	unlisted []string // machines that cannot list
}

func finished(l *listing) bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// Learn takes the listing of region now (a machine that starts learns
// where its region's codes went). It returns when the listing is done or
// ctx ends.
func (p *Prober) Learn(ctx context.Context, region string) {
	if !p.Wide || p.Sign == nil || !regions.Known(region) {
		return
	}
	p.init()
	// Uncached: a machine that starts with its siblings (a fleet's first
	// start, a scale-up) would otherwise keep, for the cache's lifetime, a
	// list taken before they were up, and route by it.
	res := p.Resolver
	if cr, ok := res.(*CachingResolver); ok {
		res = cr.Inner
	}
	if peers, err := Peers(ctx, res, p.App); err == nil {
		p.listingFor(ctx, listKey{region: region}, peers)
	}
}

// abroad is the started machines outside region that may hold code: the
// one code is listed on, and those that cannot list.
func (p *Prober) abroad(ctx context.Context, region, code string, peers []Peer) []string {
	l := p.listingFor(ctx, listKey{region: region}, peers)
	if l == nil {
		return nil
	}
	started := func(id string) bool {
		return slices.ContainsFunc(peers, func(peer Peer) bool { return peer.ID == id })
	}
	ids := slices.DeleteFunc(slices.Clone(l.unlisted), func(id string) bool { return !started(id) })
	if id, ok := l.holders[code]; ok && started(id) {
		ids = append(ids, id)
	}
	return ids
}

// listingFor returns key's listing, taking it first when there is none
// or it is due; nil when ctx ends first. One pass per listing at a time:
// others wait for it.
func (p *Prober) listingFor(ctx context.Context, key listKey, peers []Peer) *listing {
	a := &p.away
	now := time.Now()
	a.mu.Lock()
	if a.lists == nil {
		a.lists = map[listKey]*listing{}
	}
	prev := a.lists[key]
	if prev != nil && (!finished(prev) || now.Sub(prev.at) < prev.every) {
		a.mu.Unlock()
		select {
		case <-prev.done:
			return prev
		case <-ctx.Done():
			return nil
		}
	}
	next := &listing{done: make(chan struct{}), at: now}
	a.lists[key] = next
	a.mu.Unlock()
	holders, unlisted := p.list(ctx, key, peers, prev)
	a.finish(key, prev, next, holders, unlisted, or(p.Relist, 2*time.Second))
	return next
}

// list asks every started machine outside key's region (near: in it but
// this one), at once, for its listing of the region. A machine that does
// not answer keeps what it said in prev.
func (p *Prober) list(ctx context.Context, key listKey, peers []Peer, prev *listing) (map[string]string, []string) {
	region := key.region
	type answer struct {
		id       string
		codes    []string
		unlisted bool
		err      error
	}
	var targets []string
	for _, peer := range peers {
		if peer.ID != p.Self && (peer.Region == region) == key.near {
			targets = append(targets, peer.ID)
		}
	}
	answers := make(chan answer, len(targets))
	for _, id := range targets {
		go func() {
			codes, unlisted, err := p.listOne(ctx, id, region)
			answers <- answer{id, codes, unlisted, err}
		}()
	}
	holders := map[string]string{}
	var unlisted []string
	for range targets {
		ans := <-answers
		switch {
		case ans.unlisted:
			unlisted = append(unlisted, ans.id)
		case ans.err != nil && prev != nil:
			for code, id := range prev.holders {
				if id == ans.id {
					holders[code] = id
				}
			}
			if slices.Contains(prev.unlisted, ans.id) {
				unlisted = append(unlisted, ans.id)
			}
		default:
			for _, code := range ans.codes {
				holders[code] = ans.id
			}
		}
	}
	return holders, unlisted
}

// finish publishes next, held to the bound on remembered codes (for
// listings from abroad and near listings each), and sets when it is due
// again.
func (a *away) finish(key listKey, prev, next *listing, holders map[string]string, unlisted []string, relist time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	total := &a.totals[key.side()]
	room, before := maxAwayCodes-*total, map[string]string(nil)
	if prev != nil {
		before = prev.holders
		room += len(before)
	}
	for code := range holders {
		if len(holders) <= room {
			break
		}
		delete(holders, code)
	}
	*total += len(holders) - len(before)
	next.holders, next.unlisted, next.every = holders, unlisted, relist
	if prev != nil && !learnedNew(before, holders) {
		next.every = min(2*prev.every, 30*relist)
	}
	close(next.done)
}

// learnedNew reports whether now lists a code where before did not.
func learnedNew(before, now map[string]string) bool {
	for code, id := range now {
		if before[code] != id {
			return true
		}
	}
	return false
}

// listOne asks machine id for its listing of region. unlisted: it cannot
// list (404 or 401).
func (p *Prober) listOne(ctx context.Context, id, region string) (codes []string, unlisted bool, err error) {
	u, err := p.peerURL(ctx, id, CodesPath+"?region="+url.QueryEscape(region))
	if err != nil {
		return nil, false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, false, err
	}
	p.Sign(req, id)
	resp, err := p.Client.Do(req)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxListingBytes+1))
	if err != nil {
		return nil, false, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		codes, err := DecodeListing(body, region)
		return codes, false, err
	case http.StatusNotFound, http.StatusUnauthorized:
		return nil, true, nil
	}
	return nil, false, fmt.Errorf("listing of %s from %s: %s", region, id, resp.Status)
}

var errListingTooLarge = errors.New("listing: answer too large")

// DecodeListing reads a listing's answer: the codes of region in it, at
// most MaxListedCodes. Anything else in it is left out: the answer comes
// from a sibling, and is bounded all the same.
func DecodeListing(body []byte, region string) ([]string, error) {
	if len(body) > maxListingBytes {
		return nil, errListingTooLarge
	}
	var v struct {
		Codes []string `json:"codes"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, err
	}
	out := v.Codes[:0]
	for _, code := range v.Codes {
		if len(out) == MaxListedCodes {
			break
		}
		if home, ok := regions.HomeOf(code); ok && home == region {
			out = append(out, code)
		}
	}
	return out, nil
}
