package testutil

import (
	"sync"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	t.Parallel()
	calls := 0
	if !Poll(time.Second, func() bool { calls++; return calls == 3 }) || calls != 3 {
		t.Fatalf("Poll of a condition true on the third call: %d calls", calls)
	}
	start := time.Now()
	if Poll(50*time.Millisecond, func() bool { return false }) {
		t.Fatal("Poll reported a condition that never held")
	}
	if took := time.Since(start); took < 50*time.Millisecond || took > time.Second {
		t.Fatalf("Poll of 50 ms gave up after %v", took)
	}
}

// lockInHere takes mu: the frame Blocked looks for.
func lockInHere(mu *sync.Mutex) {
	mu.Lock()
	mu.Unlock()
}

func TestBlocked(t *testing.T) {
	t.Parallel()
	const fn = "testutil.lockInHere"
	if Blocked(fn) {
		t.Fatal("Blocked before any goroutine waits")
	}
	var mu sync.Mutex
	mu.Lock()
	done := make(chan struct{})
	go func() { defer close(done); lockInHere(&mu) }()
	Eventually(t, 5*time.Second, "the goroutine to wait for the lock", func() bool { return Blocked(fn) })
	mu.Unlock()
	<-done
	if Blocked(fn) {
		t.Fatal("Blocked after the goroutine took the lock and returned")
	}
}
