package routing

import (
	"slices"
	"sync/atomic"
	"testing"
)

// fakeAllowance is a caller's allowance of rounds.
type fakeAllowance struct {
	left  int
	light bool
}

func (a *fakeAllowance) Light() bool { return a.light }

func (a *fakeAllowance) Spend() bool {
	if a.left == 0 {
		return false
	}
	a.left--
	return true
}

// Issue 20, finding 4: a round that found its room cost its caller
// nothing, so one's own rooms, looked up again and again, spent the
// machine's rounds for free. A found holder is now remembered for a
// moment, and every round its caller starts is paid for, found or not;
// a shared round or an answer from memory costs nothing.
func TestEveryRoundIsPaidFor(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	var hits atomic.Int32
	startPeer(t, "127.0.8.41", port, "HELD12", &hits, false)
	f := startFly(t, self+" fra", "aaaa0041 fra 127.0.8.41")
	p := &Prober{App: "app", Self: self, Port: port, Resolver: DNSResolver{Server: f.Addr}}
	a := &fakeAllowance{left: 2, light: true}
	if holder, outcome := p.FindFor(t.Context(), "HELD12", "fra", a); holder != "aaaa0041" || outcome != OutcomeFound ||
		a.left != 1 {
		t.Fatalf("FindFor = %q %s, %d rounds left; want found, 1 left", holder, outcome, a.left)
	}
	for range 20 {
		if holder, outcome := p.FindFor(t.Context(), "HELD12", "fra", a); holder != "aaaa0041" || outcome != OutcomeCachedFound {
			t.Fatalf("a found room asked again = %q %s, want %s", holder, outcome, OutcomeCachedFound)
		}
	}
	if hits.Load() != 1 || a.left != 1 {
		t.Fatalf("21 lookups of a found room: %d asks, %d rounds left; want 1 ask, 1 left", hits.Load(), a.left)
	}
	if _, outcome := p.FindFor(t.Context(), "ABSENT", "fra", a); outcome != OutcomeNotFound || a.left != 0 {
		t.Fatalf("a miss: %s, %d left", outcome, a.left)
	}
	if _, outcome := p.FindFor(t.Context(), "OTHER1", "fra", a); outcome != OutcomeRefused || p.Rounds() != 2 {
		t.Fatalf("over the allowance: %s after %d rounds, want %s and no round", outcome, p.Rounds(), OutcomeRefused)
	}
}

// A caller that has spent more than a household's rejoin (not light) may
// not take the machine's reserve, the last half of its bucket: players
// who asked little still get rounds while it is held to what is left.
func TestHeavyCallersLeaveTheReserve(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	var hits atomic.Int32
	startPeer(t, "127.0.8.51", port, "", &hits, false)
	// 1 round a second, burst 2: the reserve is the last token. A test
	// that takes less than half a second sees no refill that counts.
	f := startFly(t, self+" fra", "aaaa0051 fra 127.0.8.51")
	p := &Prober{App: "app", Self: self, Port: port, Resolver: DNSResolver{Server: f.Addr}, RoundsPerSec: 1}
	heavy, light := &fakeAllowance{left: 100}, &fakeAllowance{left: 100, light: true}
	outcomes := func(a Allowance, n int, base uint32) (got []string) {
		for i := range n {
			_, o := p.FindFor(t.Context(), "CODE"+itoa(int(base)+i), "fra", a)
			got = append(got, o)
		}
		return got
	}
	if got := outcomes(heavy, 2, 10); !slices.Equal(got, []string{OutcomeNotFound, OutcomeLimited}) {
		t.Fatalf("a heavy caller: %v, want a round and then limited (the reserve is not its)", got)
	}
	if got := outcomes(light, 2, 20); !slices.Equal(got, []string{OutcomeNotFound, OutcomeLimited}) {
		t.Fatalf("a light caller: %v, want the reserve's round, then limited", got)
	}
	if heavy.left != 99 || light.left != 99 {
		t.Fatalf("rounds spent: heavy %d, light %d, want 1 each (a refusal costs nothing)", 100-heavy.left, 100-light.left)
	}
}
