// Package rate is the one token bucket behind every rate the server
// keeps: a connection's messages, frames and bytes (package server's
// session and meter), an address's upgrades, creates, probe rounds and
// peers' lookups (server's limits.go), and the machine's probe rounds
// (routing.Prober).
package rate

import (
	"math"
	"time"
)

// Bucket holds up to a burst of tokens and gains perSec of them a second.
// It starts full. The zero Bucket, and one made with perSec <= 0, is
// unlimited: Take always succeeds and Charge never waits.
//
// A Bucket is not safe for concurrent use: one goroutine owns it, or its
// owner's lock guards it. Time is passed in, so tests need no clock.
type Bucket struct {
	perSec, burst float64
	have          float64   // below 0: a debt Charge ran up
	last          time.Time // when have was brought up to date
	rejected      int       // Take's refusals since its last success
}

// NewBucket is a full bucket of burst tokens that gains perSec a second;
// unlimited when perSec <= 0.
func NewBucket(perSec, burst float64) Bucket {
	if perSec <= 0 || math.IsNaN(perSec) {
		return Bucket{}
	}
	return Bucket{perSec: perSec, burst: burst, have: burst}
}

// Unlimited reports whether the bucket never refuses.
func (b *Bucket) Unlimited() bool { return b.perSec <= 0 }

// Burst is the most tokens the bucket holds.
func (b *Bucket) Burst() float64 { return b.burst }

// Rejected is how many Takes have failed since the last one succeeded.
func (b *Bucket) Rejected() int { return b.rejected }

// Level is the tokens the bucket holds at now, without spending any
// (below 0 while Charge's debt is unpaid; +Inf when unlimited).
func (b *Bucket) Level(now time.Time) float64 {
	if b.Unlimited() {
		return math.Inf(1)
	}
	// A new bucket is full: its zero last refills it to no more than
	// that. A clock that steps back refills nothing (time.Now's monotonic
	// reading never does).
	elapsed := max(0, now.Sub(b.last).Seconds())
	return min(b.burst, b.have+elapsed*b.perSec)
}

// Take spends one token; false, spending nothing, when the bucket holds
// less than one.
func (b *Bucket) Take(now time.Time) bool {
	if b.Unlimited() {
		return true
	}
	b.have, b.last = b.Level(now), now
	if b.have >= 1 {
		b.have--
		b.rejected = 0
		return true
	}
	b.rejected++
	return false
}

// Give puts one token back (a Take that turned out to cost nothing), up
// to the bucket's burst.
func (b *Bucket) Give(now time.Time) {
	if b.Unlimited() {
		return
	}
	b.have, b.last = min(b.burst, b.Level(now)+1), now
}

// Charge spends n tokens even when the bucket holds fewer: it goes into
// debt, and wait is how long the debt takes to pay back at the bucket's
// rate (the meter pays it by sleeping). While in debt, Take refuses.
func (b *Bucket) Charge(now time.Time, n float64) (wait time.Duration) {
	if b.Unlimited() {
		return 0
	}
	b.have, b.last = b.Level(now)-n, now
	if b.have >= 0 {
		return 0
	}
	return time.Duration(-b.have / b.perSec * float64(time.Second))
}
