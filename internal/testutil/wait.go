package testutil

import (
	"runtime"
	"strings"
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

// Blocked reports whether a goroutine of this process is parked on a
// sync.Mutex inside a call to fn (a qualified name as a stack trace
// prints it, "rooms.(*Room).Relay"): how a test learns that a call it
// started waits for a lock the test holds, where a sleep could only hope
// so.
func Blocked(fn string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		header, stack, _ := strings.Cut(g, "\n")
		if strings.Contains(header, "[sync.Mutex.Lock") && strings.Contains(stack, fn+"(") {
			return true
		}
	}
	return false
}
