package rate

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Unix(1000, 0)

func at(d time.Duration) time.Time { return t0.Add(d) }

// takes runs Take at each time and returns what it answered.
func takes(b *Bucket, times ...time.Time) []bool {
	got := make([]bool, len(times))
	for i, now := range times {
		got[i] = b.Take(now)
	}
	return got
}

func TestTake(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		perSec, burst float64
		times         []time.Time
		want          []bool
	}{
		{"starts full: a burst at once, then none", 1, 3,
			[]time.Time{t0, t0, t0, t0}, []bool{true, true, true, false}},
		{"refills at its rate", 2, 1,
			[]time.Time{t0, at(100 * time.Millisecond), at(550 * time.Millisecond), at(650 * time.Millisecond)},
			[]bool{true, false, true, false}},
		{"a long rest refills no more than the burst", 10, 2,
			[]time.Time{t0, t0, at(time.Hour), at(time.Hour), at(time.Hour)}, []bool{true, true, true, true, false}},
		{"a clock stepping back refills nothing and drains nothing", 1, 2,
			[]time.Time{t0, at(-time.Hour), at(-time.Hour)}, []bool{true, true, false}},
		{"unlimited (rate 0) never refuses", 0, 0,
			[]time.Time{t0, t0, t0}, []bool{true, true, true}},
		{"unlimited (rate below 0) never refuses", -1, 1,
			[]time.Time{t0, t0}, []bool{true, true}},
		{"a NaN rate is unlimited, not a bucket that never refills", math.NaN(), 1,
			[]time.Time{t0, t0}, []bool{true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBucket(tt.perSec, tt.burst)
			got := takes(&b, tt.times...)
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("NewBucket(%v, %v): takes = %v, want %v", tt.perSec, tt.burst, got, tt.want)
				}
			}
		})
	}
}

// The message rate tells a sender once per run of refusals, and closes one
// that goes on past a whole burst of them: Rejected counts the refusals
// since the last success.
func TestRejectedSinceLastSuccess(t *testing.T) {
	t.Parallel()
	b := NewBucket(1, 1)
	var counts []int
	for _, now := range []time.Time{t0, t0, t0, t0, at(time.Second), at(time.Second)} {
		b.Take(now)
		counts = append(counts, b.Rejected())
	}
	want := []int{0, 1, 2, 3, 0, 1}
	for i := range want {
		if counts[i] != want[i] {
			t.Fatalf("Rejected after each take = %v, want %v", counts, want)
		}
	}
}

// Level reads without spending: the probe allowance asks it whether an
// address is light before it spends.
func TestLevel(t *testing.T) {
	t.Parallel()
	b := NewBucket(4, 8)
	if got := b.Level(t0); got != 8 {
		t.Fatalf("a new bucket's level = %v, want its burst 8", got)
	}
	for range 6 {
		b.Take(t0)
	}
	if got := b.Level(t0); got != 2 {
		t.Fatalf("after 6 takes: level = %v, want 2", got)
	}
	if got := b.Level(at(500 * time.Millisecond)); got != 4 {
		t.Fatalf("half a second later at 4/s: level = %v, want 4", got)
	}
	if got := b.Level(at(500 * time.Millisecond)); got != 4 {
		t.Fatalf("level read twice = %v, want 4 both times (a read spends nothing)", got)
	}
	if got := b.Level(at(time.Hour)); got != 8 {
		t.Fatalf("an hour later: level = %v, want the burst 8", got)
	}
	var unlimited Bucket
	if got := unlimited.Level(t0); !math.IsInf(got, 1) {
		t.Fatalf("the zero Bucket's level = %v, want +Inf", got)
	}
}

// Charge is the meter's: it spends what a read cost even past empty, and
// the debt is the sleep that pays it back.
func TestChargeRunsUpDebt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		charge []float64 // all at t0, then the last one at t0+later
		later  time.Duration
		want   time.Duration // the last charge's wait
	}{
		{"within the burst: no wait", []float64{20}, 0, 0},
		{"30 over a burst of 20 at 10/s: 3 s", []float64{50}, 0, 3 * time.Second},
		{"debts add up", []float64{20, 10, 10}, 0, 2 * time.Second},
		{"a paid debt is gone", []float64{30, 0}, time.Second, 0},
		{"a part-paid debt is what is left", []float64{40, 0}, time.Second, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBucket(10, 20)
			var wait time.Duration
			for i, n := range tt.charge {
				now := t0
				if i == len(tt.charge)-1 {
					now = at(tt.later)
				}
				wait = b.Charge(now, n)
			}
			if wait != tt.want {
				t.Fatalf("Charge %v (last after %v) waits %v, want %v", tt.charge, tt.later, wait, tt.want)
			}
		})
	}
}

func TestTakeRefusesWhileInDebt(t *testing.T) {
	t.Parallel()
	b := NewBucket(10, 20)
	b.Charge(t0, 25) // 0.5 s of debt
	if got := takes(&b, t0, at(650*time.Millisecond), at(650*time.Millisecond)); got[0] || !got[1] || got[2] {
		t.Fatalf("in debt, then paid to 1.5 tokens: takes = %v, want [false true false]", got)
	}
	if got := b.Level(at(650 * time.Millisecond)); math.Abs(got-0.5) > 1e-9 {
		t.Fatalf("after one success and a refusal: level %v, want 0.5 (a refusal spends nothing)", got)
	}
}

func TestUnlimitedChargeNeverWaits(t *testing.T) {
	t.Parallel()
	for _, b := range []Bucket{{}, NewBucket(0, 100)} {
		if wait := b.Charge(t0, 1e12); wait != 0 {
			t.Fatalf("unlimited %+v: Charge waits %v, want 0", b, wait)
		}
	}
}
