package routing

import (
	"strconv"
	"testing"
	"time"
)

// Issue 20: the negative cache (and the server's table of gone machines)
// cleared itself whole at its cap, so a flood of new keys made it forget
// what it had just learned. Past its cap only the oldest entry goes.
func TestExpiringDropsTheOldestNeverAll(t *testing.T) {
	t.Parallel()
	e := Expiring[int]{TTL: time.Minute, Max: 100}
	now := time.Unix(1000, 0)
	for i := range 100 {
		e.Set("k"+strconv.Itoa(i), i, now.Add(time.Duration(i)*time.Millisecond))
	}
	later := now.Add(time.Second)
	e.Set("new", -1, later)
	if _, ok := e.Get("k0", later); ok {
		t.Fatal("the oldest entry is kept past the cap")
	}
	for _, k := range []string{"k1", "k50", "k99", "new"} {
		if _, ok := e.Get(k, later); !ok {
			t.Fatalf("%s was dropped: the table was cleared, not trimmed", k)
		}
	}
	// A flood of 10,000 new keys: the table stays at its cap and keeps the
	// newest 100.
	for i := range 10000 {
		e.Set("flood"+strconv.Itoa(i), i, later)
	}
	if e.Len() != 100 {
		t.Fatalf("%d entries after a flood, want the cap (100)", e.Len())
	}
	if v, ok := e.Get("flood9999", later); !ok || v != 9999 {
		t.Fatal("the newest entry of the flood is not kept")
	}
	if len(e.order) > 2*e.Max {
		t.Fatalf("the order queue grew to %d entries for a cap of %d", len(e.order), e.Max)
	}
}

func TestExpiringExpiresAndResets(t *testing.T) {
	t.Parallel()
	e := Expiring[string]{TTL: 10 * time.Second, Max: 4}
	t0 := time.Unix(2000, 0)
	e.Set("a", "1", t0)
	e.Set("b", "2", t0.Add(5*time.Second))
	if v, ok := e.Get("a", t0.Add(9*time.Second)); !ok || v != "1" {
		t.Fatal("a is gone before its TTL")
	}
	if _, ok := e.Get("a", t0.Add(10*time.Second)); ok {
		t.Fatal("a outlives its TTL")
	}
	// Set again, a key lasts from then, and its old setting does not
	// drop it early.
	e.Set("b", "3", t0.Add(12*time.Second))
	e.Set("c", "4", t0.Add(16*time.Second)) // expires the old settings of a and b
	if v, ok := e.Get("b", t0.Add(20*time.Second)); !ok || v != "3" {
		t.Fatalf("b set again = %q %v, want 3 kept", v, ok)
	}
	if e.Len() != 2 {
		t.Fatalf("%d entries, want 2 (b and c)", e.Len())
	}
	e.Delete("b")
	if _, ok := e.Get("b", t0.Add(20*time.Second)); ok {
		t.Fatal("b is kept after Delete")
	}
}
