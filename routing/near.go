package routing

import (
	"context"
	"slices"
	"time"
)

// Listings when rounds run out. The machine's rounds (RoundsPerSec) are
// its bound on the work lookups can cause, and anyone may spend them: a
// flood of lookups of random codes, each from a fresh address (a botnet,
// or a process on the private network forging Fly-Client-IP), leaves none
// for players. A code the flood asks for exists nowhere; a player's
// exists on some machine. So when a round would start and the machine has
// none left, the prober answers from what the machines list (the listing
// of away.go, signed: only with Sign): its own region's machines' listing
// of the region's codes (a near listing, taken then if it is due: one pass
// at most every Relist, and rarely while it learns nothing), and what is
// known of the codes abroad. A code listed on a started machine is found
// there with no round (OutcomeListed), and remembered as found; any other
// answer is the limited one it would have been. A listing only ever
// answers when the alternative is "not found", so one that is out of date
// costs nothing it would not have.

// fromListings is the started machine the listings name as holding code
// of region; "" when none does, or nothing lists (no Sign).
func (p *Prober) fromListings(ctx context.Context, code, region string) string {
	if p.Sign == nil {
		return ""
	}
	peers, err := Peers(ctx, p.Resolver, p.App)
	if err != nil {
		return ""
	}
	started := func(id string) bool {
		return id != "" && id != p.Self && slices.ContainsFunc(peers, func(peer Peer) bool { return peer.ID == id })
	}
	if l := p.listingFor(ctx, listKey{region: region, near: true}, peers); l != nil && started(l.holders[code]) {
		return l.holders[code]
	}
	if l := p.finishedListing(listKey{region: region}); l != nil && started(l.holders[code]) {
		return l.holders[code]
	}
	return ""
}

// finishedListing is key's latest finished listing, without taking one.
func (p *Prober) finishedListing(key listKey) *listing {
	a := &p.away
	a.mu.Lock()
	defer a.mu.Unlock()
	if l := a.lists[key]; l != nil && finished(l) {
		return l
	}
	return nil
}

// listed answers a round the machine has no token for from the listings,
// and remembers a holder found there as found.
func (p *Prober) listed(ctx context.Context, code, region string) (holder, outcome string) {
	holder = p.fromListings(ctx, code, region)
	if holder == "" {
		return "", OutcomeLimited
	}
	p.mu.Lock()
	p.found.Set(code, holder, time.Now())
	p.mu.Unlock()
	return holder, OutcomeListed
}
