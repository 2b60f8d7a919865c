package budget

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestBudgetCounts(t *testing.T) {
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
