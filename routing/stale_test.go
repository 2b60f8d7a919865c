package routing

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// A deploy during a DNS outage (issue 23, item 6): when the resolver
// stops answering, the last good answers stand in for it, the machine
// list and each machine's address, for at most MaxStale; for FailPause
// after a failure they are given without asking, so a stopping machine's
// hand-off waits for the dead resolver once, not per sibling; once it
// answers again its answers replace them.
func TestDeadResolverFallsBackToTheLastGoodAnswer(t *testing.T) {
	f := startFly(t, self+" fra 127.0.0.10", "0a1b2c3d4e5f02 fra 127.0.0.11", "0a1b2c3d4e5f03 iad 127.0.0.12")
	res := &countingResolver{inner: DNSResolver{Server: f.Addr}}
	var mu sync.Mutex // guards now
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	cr := &CachingResolver{Inner: res, now: clock}
	p := &Prober{App: "app", Self: self, Resolver: cr}
	ctx := func() context.Context {
		c, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}
	want, err := p.FreshPeers(ctx())
	if err != nil || len(want) != 3 {
		t.Fatalf("peers %v %v, want 3", want, err)
	}
	if ip, err := Address(ctx(), cr, "app", "0a1b2c3d4e5f02"); err != nil || !ip.Equal(net.ParseIP("127.0.0.11")) {
		t.Fatalf("address %v %v", ip, err)
	}

	f.SetDown(true)
	advance(9 * time.Minute) // every answer is long past its TTL
	asked := res.n.Load()
	got, err := p.FreshPeers(ctx())
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("resolver down: peers %v %v, want the last good %v", got, err, want)
	}
	if n := res.n.Load() - asked; n != 1 {
		t.Fatalf("%d questions for the machine list, want 1", n)
	}
	for range 5 { // the hand-off's address lookups, right after: not asked
		if ip, err := Address(ctx(), cr, "app", "0a1b2c3d4e5f02"); err != nil || !ip.Equal(net.ParseIP("127.0.0.11")) {
			t.Fatalf("resolver down: address %v %v, want the last good 127.0.0.11", ip, err)
		}
	}
	if n := res.n.Load() - asked; n != 1 {
		t.Fatalf("%d questions with the resolver failing moments ago, want 1", n)
	}
	// A name never resolved has nothing to stand in: it is asked, and fails.
	if _, err := Address(ctx(), cr, "app", "0a1b2c3d4e5f09"); err == nil {
		t.Fatal("an address never resolved came from nowhere")
	}

	// Past the bound, a failure is a failure.
	advance(DefaultMaxStale - 9*time.Minute)
	if got, err := p.FreshPeers(ctx()); err == nil {
		t.Fatalf("resolver down, last answer 10 minutes old: peers %v, want an error", got)
	}

	// Up again: its answer, not the old one.
	f.SetDown(false)
	f.Remove("0a1b2c3d4e5f03")
	advance(DefaultFailPause)
	got, err = p.FreshPeers(ctx())
	if err != nil || len(got) != 2 {
		t.Fatalf("resolver back: peers %v %v, want its 2", got, err)
	}
	// A failure that follows stands in the new answer, not the old.
	f.SetDown(true)
	advance(time.Minute)
	if got, err := p.FreshPeers(ctx()); err != nil || len(got) != 2 {
		t.Fatalf("down again: peers %v %v, want the 2 of the last good answer", got, err)
	}
}
