package routing

import (
	"net/http"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// Review finding 3 (probe rounds): a flood of random codes from fresh
// addresses spent the machine's rounds, and players' joins of rooms held
// on a sibling failed. With no round left, a code its region's machines
// list is found there (a near listing, taken then, at most once per
// interval), and a random code is still limited: the flood takes no
// listing's place and costs one listing pass, not a round per code.
func TestNoRoundLeftTheListingsAnswer(t *testing.T) {
	port := freePort(t)
	f := testutil.StartFlyDNS(t, "app")
	f.Add(self, "fra", "127.0.12.1")
	near := &sibling{}
	startSibling(t, "127.0.12.2", port, near)
	f.Add("bbbb0002", "fra", "127.0.12.2")
	room := code(fra, 7)
	near.hold(room)
	p := &Prober{App: "app", Self: self, Port: port, Resolver: &CachingResolver{Inner: DNSResolver{Server: f.Addr}},
		RoundsPerSec: 1, Relist: time.Hour, Sign: func(r *http.Request, to string) { r.Header.Set("X-Test-Sig", "ok") }}
	for i := range 2 { // the burst: two rounds
		if _, outcome := p.Find(t.Context(), code(fra, uint32(100+i)), "fra"); outcome != OutcomeNotFound {
			t.Fatalf("round %d: %s, want %s", i, outcome, OutcomeNotFound)
		}
	}
	rooms := near.rooms.Load()
	for i := range 20 { // no round left: random codes stay limited
		if holder, outcome := p.Find(t.Context(), code(fra, uint32(200+i)), "fra"); holder != "" || outcome != OutcomeLimited {
			t.Fatalf("random code %d with no round left: %q %s, want %s", i, holder, outcome, OutcomeLimited)
		}
	}
	if holder, outcome := p.Find(t.Context(), room, "fra"); holder != "bbbb0002" || outcome != OutcomeListed {
		t.Fatalf("a listed room with no round left: %q %s, want bbbb0002 %s", holder, outcome, OutcomeListed)
	}
	if holder, outcome := p.Find(t.Context(), room, "fra"); holder != "bbbb0002" || outcome != OutcomeCachedFound {
		t.Fatalf("the same room again: %q %s, want it remembered", holder, outcome)
	}
	if near.rooms.Load() != rooms || near.lists.Load() != 1 || near.signed.Load() != 1 {
		t.Errorf("with no round left: %d probes, %d listings (%d signed); want no probe and one signed listing",
			near.rooms.Load()-rooms, near.lists.Load(), near.signed.Load())
	}
}

// Without a way to sign there is no listing: no round left means
// limited, as before.
func TestNoRoundLeftNoListingWithoutSign(t *testing.T) {
	port := freePort(t)
	f := testutil.StartFlyDNS(t, "app")
	near := &sibling{}
	startSibling(t, "127.0.12.3", port, near)
	f.Add("bbbb0003", "fra", "127.0.12.3")
	room := code(fra, 8)
	near.hold(room)
	p := &Prober{App: "app", Self: self, Port: port, Resolver: DNSResolver{Server: f.Addr}, RoundsPerSec: 1}
	for i := range 2 {
		p.Find(t.Context(), code(fra, uint32(300+i)), "fra")
	}
	if holder, outcome := p.Find(t.Context(), room, "fra"); holder != "" || outcome != OutcomeLimited || near.lists.Load() != 0 {
		t.Fatalf("no Sign, no round left: %q %s, %d listings; want limited and none", holder, outcome, near.lists.Load())
	}
}

// A holder is remembered far longer than a miss (DefaultFoundTTL), and
// Forget drops it.
func TestFoundRememberedUntilForgotten(t *testing.T) {
	port := freePort(t)
	f := testutil.StartFlyDNS(t, "app")
	near := &sibling{}
	startSibling(t, "127.0.12.4", port, near)
	f.Add("bbbb0004", "fra", "127.0.12.4")
	room := code(fra, 9)
	near.hold(room)
	p := &Prober{App: "app", Self: self, Port: port, Resolver: DNSResolver{Server: f.Addr}}
	p.init()
	if p.found.TTL != DefaultFoundTTL || DefaultFoundTTL <= p.negative.TTL {
		t.Fatalf("found for %v, missed for %v; want found the longer, %v", p.found.TTL, p.negative.TTL, DefaultFoundTTL)
	}
	if _, outcome := p.Find(t.Context(), room, "fra"); outcome != OutcomeFound {
		t.Fatalf("first: %s", outcome)
	}
	if _, outcome := p.Find(t.Context(), room, "fra"); outcome != OutcomeCachedFound {
		t.Fatalf("again: %s, want remembered", outcome)
	}
	p.Forget(room)
	if _, outcome := p.Find(t.Context(), room, "fra"); outcome != OutcomeFound || near.rooms.Load() != 2 {
		t.Fatalf("after Forget: %s, %d probes; want a new round", outcome, near.rooms.Load())
	}
}
