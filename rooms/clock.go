package rooms

import "time"

// Clock schedules the host-grace timers and dates recovery windows. Tests
// pass internal/testutil's FakeClock so the two-minute grace is exercised
// in microseconds.
type Clock interface {
	AfterFunc(d time.Duration, f func()) Timer
	Now() time.Time
}

// Timer is a scheduled call that can be cancelled. An alias, so a clock
// written elsewhere (internal/testutil's FakeClock) can return it without
// importing this package.
type Timer = interface {
	Stop() bool
}

// RealClock uses the time package.
type RealClock struct{}

// AfterFunc implements Clock with time.AfterFunc.
func (RealClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Now implements Clock.
func (RealClock) Now() time.Time { return time.Now() }
