package testutil

import (
	"testing"
	"time"
)

// Eventually waits until cond holds and ends the test if it does not
// within d; what names the condition in the failure.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(d, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// Poll calls cond until it holds or d passes, and reports whether it held:
// for a caller that prints its own figures before it fails, or goes on
// either way. The first checks come a millisecond apart, later ones every
// 20 ms at most, so a condition met at once costs no wait and a slow one
// few calls.
func Poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	wait := time.Millisecond
	for !cond() {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(wait, left))
		wait = min(2*wait, 20*time.Millisecond)
	}
	return true
}
