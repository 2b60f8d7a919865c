package budget

import (
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
)

func TestBudgetCounts(t *testing.T) {
	t.Parallel()
	b := New(100)
	b.Add(60)
	if b.Over() {
		t.Fatal("60 of 100 is not over")
	}
	if got := b.Add(50); got != 110 || !b.Over() {
		t.Fatalf("Add = %d, Over = %v; want 110, true", got, b.Over())
	}
	b.Add(-110)
	if b.Used() != 0 || b.Over() {
		t.Fatalf("after release: used %d", b.Used())
	}
	var none *Budget
	none.Add(1 << 40)
	if none.Over() || none.Used() != 0 || none.Limit() != math.MaxInt64 {
		t.Fatal("a nil budget counts nothing")
	}
	if New(0).Limit() != math.MaxInt64 {
		t.Fatal("limit 0 means unlimited")
	}
}

func TestDefaultLimitFollowsGOMEMLIMIT(t *testing.T) {
	old := debug.SetMemoryLimit(200 << 20)
	defer debug.SetMemoryLimit(old)
	if got := DefaultLimit(); got != 50<<20 {
		t.Fatalf("DefaultLimit with GOMEMLIMIT=200MiB = %d, want 50 MiB", got)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	if got := DefaultLimit(); got <= 0 || got == math.MaxInt64 {
		t.Fatalf("DefaultLimit without GOMEMLIMIT = %d, want a quarter of the machine", got)
	}
}

// TryAdd refuses what would pass the ceiling (four fifths of the limit:
// the rest is for what only counts) and takes nothing then; many
// reservations at once never take more than the ceiling between them.
func TestTryAddRefusesPastTheCeiling(t *testing.T) {
	t.Parallel()
	b := New(100)
	if !b.TryAdd(60) || b.Used() != 60 {
		t.Fatalf("TryAdd(60) of 100: used %d", b.Used())
	}
	if b.TryAdd(21) || b.Used() != 60 {
		t.Fatalf("TryAdd(21) past the ceiling was taken: used %d", b.Used())
	}
	if !b.TryAdd(20) || b.Used() != 80 {
		t.Fatalf("TryAdd(20) up to the ceiling: used %d", b.Used())
	}
	if b.Add(20); b.Over() || b.TryAdd(1) {
		t.Fatal("counting past the ceiling is not over the limit, and TryAdd still refuses")
	}
	if !b.TryAdd(-100) || b.Used() != 0 {
		t.Fatalf("a release: used %d", b.Used())
	}
	if !New(0).TryAdd(1 << 60) {
		t.Fatal("an unlimited budget refused")
	}
	var none *Budget
	if !none.TryAdd(1 << 40) {
		t.Fatal("a nil budget refused")
	}

	const workers, each = 8, 1000
	b = New(5000)
	var wg sync.WaitGroup
	var taken atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if b.TryAdd(3) {
					taken.Add(3)
				}
			}
		}()
	}
	wg.Wait()
	if b.Used() != taken.Load() || b.Used() > 4000 || b.Used() < 4000-2 {
		t.Fatalf("concurrent TryAdd: used %d, taken %d, ceiling 4000", b.Used(), taken.Load())
	}
}

// A shared cost counts once however many hold it, and is given back when
// the last of them lets go, in any order, from any goroutine.
func TestSharedCountsOnce(t *testing.T) {
	b := New(1 << 20)
	s := b.Share(60_000)
	const holders = 64
	for range holders {
		s.Hold()
	}
	if b.Used() != 60_000 {
		t.Fatalf("a cost held %d times counts %d, want it once (60000)", holders+1, b.Used())
	}
	s.Release() // the maker's own hold
	var wg sync.WaitGroup
	for i := range holders {
		wg.Go(func() {
			if i == holders-1 {
				return
			}
			s.Release()
		})
	}
	wg.Wait()
	if b.Used() != 60_000 {
		t.Fatalf("with one holder left the budget counts %d, want 60000", b.Used())
	}
	s.Release()
	if b.Used() != 0 {
		t.Fatalf("after the last release the budget counts %d", b.Used())
	}
	var none *Budget
	n := none.Share(10)
	n.Release() // a nil budget counts nothing and still tracks holders
}
