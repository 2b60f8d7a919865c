package testutil

import (
	"sort"
	"sync"
	"time"
)

// FakeClock is a manual clock for tests (it satisfies rooms.Clock): timers
// fire only in Advance, on the caller's goroutine, in deadline order.
type FakeClock struct {
	mu     sync.Mutex // guards now, timers
	now    time.Duration
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *FakeClock
	at      time.Duration
	f       func()
	stopped bool // guarded by c.mu
}

// AfterFunc schedules f at now+d.
func (c *FakeClock) AfterFunc(d time.Duration, f func()) interface{ Stop() bool } {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now + d, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// Now is a fixed epoch plus the time advanced.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Unix(1_000_000_000, 0).Add(c.now)
}

// Pending returns how many timers are armed.
func (c *FakeClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// Advance moves the clock forward by d and runs every timer now due.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now += d
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at < c.timers[j].at })
	var due []*fakeTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case t.at <= c.now:
			t.stopped = true
			due = append(due, t)
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}
