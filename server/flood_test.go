package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// A steady flood at three times MSG_RATE (issue 25, item 10: a 300/s
// flood was told 41 times and never closed, because the bucket refilling
// between its messages reset the count of refusals). Now it is told once
// and closed with 1008 once more than a burst of its messages has been
// dropped. The flood is bounded: at most 600 messages, paced at 300/s.
func TestSteadyFloodIsToldOnceThenClosed(t *testing.T) {
	t.Parallel()
	const perSec, burst = 100, 20
	ts := newTestServer(t, Config{MsgRate: perSec, MsgBurst: burst})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 2)
	a := guest(t, ts, h, code, "a", 1, "0")
	a.Discard()

	type result struct {
		warnings int
		code     int
	}
	done := make(chan result, 1)
	go func() {
		var r result
		for {
			f, err := h.Next()
			if err != nil {
				r.code = int(websocket.CloseStatus(err))
				done <- r
				return
			}
			if f.Type == "error" && f.Message == "Too many messages, slow down" {
				r.warnings++
			}
		}
	}()
	tick := time.NewTicker(time.Second / 300)
	defer tick.Stop()
	sent := 0
	for ; sent < 600; sent++ {
		if h.TrySend(fmt.Sprintf(`{"type":"send","data":%d}`, sent)) != nil {
			break
		}
		select {
		case r := <-done:
			report(t, sent, r.warnings, r.code)
			return
		case <-tick.C:
		}
	}
	select {
	case r := <-done:
		report(t, sent, r.warnings, r.code)
	case <-time.After(5 * time.Second):
		t.Fatalf("a flood of %d messages at 300/s (limit %d/s, burst %d) was never closed", sent, perSec, burst)
	}
}

func report(t *testing.T, sent, warnings, code int) {
	t.Helper()
	t.Logf("closed after %d messages, %d warnings, code %d", sent, warnings, code)
	if warnings != 1 || code != 1008 {
		t.Fatalf("flood: %d warnings and close %d, want 1 warning and 1008", warnings, code)
	}
}

// The verdicts in time: a sender over the rate is told on its first
// dropped message only, closed past a burst of drops, and forgiven (told
// again, its count started over) only once its bucket is full again; a
// message let through between drops forgives nothing.
func TestMsgLimitVerdicts(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	l := newMsgLimit(10, 3) // a token every 100 ms, 3 at most
	steps := []struct {
		ms   int
		want msgVerdict
	}{
		{0, msgPass}, {0, msgPass}, {0, msgPass}, // the burst
		{0, msgWarn}, {50, msgDrop},
		{100, msgPass},                                    // one token came back: served, not forgiven
		{110, msgDrop},                                    // 3 dropped so far
		{120, msgClose},                                   // a 4th: more than a burst
		{2000, msgPass}, {2000, msgPass}, {2000, msgPass}, // full again: forgiven
		{2000, msgWarn}, // so told again
	}
	for i, s := range steps {
		if got := l.take(at(s.ms)); got != s.want {
			t.Fatalf("step %d at %d ms: verdict %d, want %d", i, s.ms, got, s.want)
		}
	}
	unlimited := newMsgLimit(0, 0)
	for range 1000 {
		if unlimited.take(t0) != msgPass {
			t.Fatal("MSG_RATE 0 refused a message")
		}
	}
}
