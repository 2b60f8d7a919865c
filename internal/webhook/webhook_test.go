package webhook

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// Flush returns once every queued event is delivered, or given up on; with
// a receiver that hangs it returns at its deadline and says how many wait.
func TestFlushWaitsForTheQueue(t *testing.T) {
	t.Parallel()
	var got atomic.Int32
	hang := make(chan struct{})
	var hanging atomic.Bool
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hanging.Load() {
			<-hang
			return
		}
		time.Sleep(30 * time.Millisecond) // a slow receiver: the scenario
		got.Add(1)
	}))
	t.Cleanup(rcv.Close)
	t.Cleanup(func() { close(hang) }) // runs first: the hanging handler returns, then the server closes
	s, err := New(rcv.URL, secret, Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go s.Run(ctx)
	for range 3 {
		s.Send("ABC123", "", "room.moved", map[string]string{"room": "ABC123", "to": "m2"})
	}
	fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer fcancel()
	if left := s.Flush(fctx); left != 0 || got.Load() != 3 {
		t.Fatalf("Flush left %d, receiver got %d of 3", left, got.Load())
	}
	hanging.Store(true)
	s.Send("ABC123", "", "room.closed", map[string]string{"room": "ABC123"})
	s.Send("DEF456", "", "room.closed", map[string]string{"room": "DEF456"})
	short, scancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer scancel()
	start := time.Now()
	if left := s.Flush(short); left != 2 {
		t.Fatalf("Flush with a hanging receiver left %d, want 2", left)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Flush took %v past its deadline", took)
	}
}
