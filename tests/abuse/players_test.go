package abuse

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// The honest side of the memory attacks (review of issue 20, findings 1,
// 4, 5, 7): rooms of bystanders that play throughout, and players who
// come during the attack to create or join.

// playing is rooms of bystanders: each host sends a small message every
// 50 ms to its guests, who read everything. Every socket that ends is
// counted, by close code.
type playing struct {
	mu     sync.Mutex // guards ended
	ended  map[int]int
	frames atomic.Int64 // messages the guests received
	sent   atomic.Int64 // messages the hosts sent, each to every guest
	stop   chan struct{}
	wg     sync.WaitGroup
	code   string // one of the rooms, for honest joins
}

// play starts rooms of a host and guests each, from addresses of block.
func play(t *testing.T, srv *testutil.Server, rooms, guests, block int) *playing {
	t.Helper()
	return playSized(t, srv, rooms, guests, block, `{"type":"send","data":{"q":"what is the capital of France?"}}`)
}

// playSized is play with the hosts sending msg: a drawing's strokes are
// kilobytes.
func playSized(t *testing.T, srv *testutil.Server, rooms, guests, block int, msg string) *playing {
	t.Helper()
	pl := &playing{ended: map[int]int{}, stop: make(chan struct{})}
	n := 0
	for i := range rooms {
		h, code, err := peerCreate(srv.Addr, addr16(block, n), fmt.Sprintf("bystander-host-%d", i), 8)
		if err != nil {
			t.Fatalf("a bystander's room: %v", err)
		}
		n++
		pl.code = code
		for j := range guests {
			g, err := peerJoin(srv.Addr, addr16(block, n), code, fmt.Sprintf("bystander-%d-%d", i, j), 0)
			if err != nil {
				t.Fatalf("a bystander's join: %v", err)
			}
			n++
			g.readAll(&pl.frames, pl.end)
			t.Cleanup(g.close)
		}
		h.readAll(nil, pl.end)
		t.Cleanup(h.close)
		pl.wg.Add(1)
		go func() {
			defer pl.wg.Done()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-pl.stop:
					return
				case <-tick.C:
				}
				if h.send(msg) != nil {
					return
				}
				pl.sent.Add(int64(guests))
			}
		}()
	}
	return pl
}

// await waits until the guests have received n more messages, a
// bystander socket has ended (the attack won), or d has passed.
func (pl *playing) await(n int64, d time.Duration) {
	from := pl.frames.Load()
	deadline := time.Now().Add(d)
	for pl.frames.Load()-from < n && time.Now().Before(deadline) && pl.endedSoFar() == 0 {
		time.Sleep(20 * time.Millisecond)
	}
}

func (pl *playing) endedSoFar() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	total := 0
	for _, n := range pl.ended {
		total += n
	}
	return total
}

func (pl *playing) end(code int) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.ended[code]++
}

// finish stops the hosts and returns how many bystander sockets ended
// meanwhile, and how, for a log line.
func (pl *playing) finish() (int, string) {
	close(pl.stop)
	pl.wg.Wait()
	pl.mu.Lock()
	defer pl.mu.Unlock()
	total := 0
	var how []string
	for code, n := range pl.ended {
		total += n
		how = append(how, fmt.Sprintf("%d×%d", n, code))
	}
	sort.Strings(how)
	return total, strings.Join(how, " ")
}

// honest is n players, each from an address of its own in block, who
// create a room, and n who join room code as a new slot, each on a fresh
// socket. It returns how many of each succeeded, and the first failures.
func honest(srv *testutil.Server, n, block int, code string) (created, joined int, why string) {
	var fails []string
	for i := range n {
		if h, _, err := peerCreate(srv.Addr, addr16(block, 2*i), fmt.Sprintf("honest-host-%d-%d", block, i), 8); err == nil {
			created++
			h.close()
		} else if len(fails) < 2 {
			fails = append(fails, "create: "+err.Error())
		}
		if g, err := peerJoin(srv.Addr, addr16(block, 2*i+1), code, fmt.Sprintf("honest-%d-%d", block, i), 0); err == nil {
			joined++
			g.close()
		} else if len(fails) < 2 {
			fails = append(fails, "join: "+err.Error())
		}
	}
	return created, joined, strings.Join(fails, "; ")
}

// memoryBounds checks what every memory attack must leave true, and logs
// the figures: the budget's peak within 110% of its limit, the peak RSS
// under a 256 MB machine.
func memoryBounds(t *testing.T, srv *testutil.Server, seen *peaks) {
	t.Helper()
	seen.fresh(t, srv)
	used, limit, heap := seen.read()
	peak := srv.Status(t, "VmHWM")
	t.Logf("budget peak %.0f%% (%.1f MB of %.1f MB); live heap peak %.1f MB; peak RSS %.1f MB",
		100*used/limit, used/1e6, limit/1e6, heap/1e6, float64(peak)/1e6)
	if used > 1.1*limit {
		t.Errorf("budget peaked at %.0f%% of its limit, want at most 110%%", 100*used/limit)
	}
	if peak >= 256e6 {
		t.Errorf("peak RSS %d bytes: over a 256 MB machine", peak)
	}
}

// closedBy is the server's count of sockets it closed for reason.
func closedBy(t *testing.T, srv *testutil.Server, reason string) float64 {
	return srv.Metric(t, "party_sockets_connections_closed_total", `reason="`+reason+`"`)
}
