package live

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/client"
	"github.com/party-sockets/party-sockets/internal/testutil"
)

// goMember is one Go client of the kill test and what its events said.
type goMember struct {
	c      *client.Client
	region string
	slot   int

	mu       sync.Mutex // guards the fields below
	states   int        // State events seen
	state    json.RawMessage
	back     time.Duration // kill to the first Joined after it; 0: not yet
	rejoined client.Joined
	restored *client.Restored
	closed   *client.Closed
	from     map[int]bool // host: slots it got a message from since it was back
}

// read drains m's events until the client ends; killed is when the kill
// was sent (zero before).
func (m *goMember) read(killed func() time.Time) {
	for ev := range m.c.Events() {
		m.mu.Lock()
		switch ev := ev.(type) {
		case client.State:
			m.states++
			m.state = ev.Data
		case client.Joined:
			if k := killed(); !k.IsZero() && m.back == 0 {
				m.back, m.rejoined = time.Since(k), ev
			}
		case client.Restored:
			m.restored = &ev
		case client.Message:
			if m.back > 0 {
				m.from[ev.From] = true
			}
		case client.Closed:
			m.closed = &ev
		}
		m.mu.Unlock()
	}
}

func (m *goMember) seen(f func(m *goMember) bool) bool { m.mu.Lock(); defer m.mu.Unlock(); return f(m) }

// goRoom makes a room through region's edge with the Go client: the host
// and three players, every one reading its events.
func goRoom(t *testing.T, region string, killed func() time.Time) []*goMember {
	t.Helper()
	opts := client.Options{URL: cluster.Edges[region], Header: cluster.edgeHeader(region)}
	start := func(c *client.Client, err error, slot int) *goMember {
		if err != nil {
			t.Fatalf("%s: %v", region, err)
		}
		t.Cleanup(func() { c.Close() })
		m := &goMember{c: c, region: region, slot: slot, from: map[int]bool{}}
		go m.read(killed)
		return m
	}
	c, err := client.Create(t.Context(), opts, 8, "")
	host := start(c, err, 0)
	members := []*goMember{host}
	for range 3 {
		c, err := client.Join(t.Context(), opts, host.c.Room())
		m := start(c, err, 0)
		m.slot = c.Index()
		members = append(members, m)
	}
	return members
}

// play runs a room's game until stop: the host sets its state every
// 500 ms, each player sends as often. Sends while reconnecting fail
// (ErrNotConnected) and are not retried: the game goes on.
func play(ctx context.Context, room []*goMember, stop <-chan struct{}, wg *sync.WaitGroup) {
	for i, m := range room {
		wg.Go(func() {
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if i == 0 {
					m.c.SetState(ctx, map[string]any{"tick": n})
				} else {
					m.c.Send(ctx, map[string]any{"slot": m.slot, "n": n})
				}
			}
		})
	}
}

// TestKillMidGameGoClient (issue 23, item 9): 20 rooms of a host and three
// players on the Go client, spread over the cluster's four machines,
// mid-game. One machine is killed with -9: every room it held is back
// with its code, every member in its own slot, the host's latest state
// reaches every player, and no client ends.
func TestKillMidGameGoClient(t *testing.T) {
	local(t)
	var (
		killMu sync.Mutex
		killAt time.Time
	)
	killed := func() time.Time { killMu.Lock(); defer killMu.Unlock(); return killAt }
	var rooms [][]*goMember
	for i := range 20 {
		rooms = append(rooms, goRoom(t, cluster.regions()[i%2], killed))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range rooms {
		play(t.Context(), r, stop, &wg)
	}
	defer func() { close(stop); wg.Wait() }()

	// The victim is the machine that holds the most rooms; wait until
	// each of its players has seen three states (a ticket follows every
	// change within 500 ms, and one came after each join).
	held := map[string][][]*goMember{}
	for _, r := range rooms {
		held[r[0].c.Instance()] = append(held[r[0].c.Instance()], r)
	}
	var victim string
	for id, rs := range held {
		if victim == "" || len(rs) > len(held[victim]) {
			victim = id
		}
	}
	lost := held[victim]
	t.Logf("rooms per machine: %v; killing %s (%d rooms)", counts(held), victim, len(lost))
	t.Cleanup(func() { cluster.restore(t, "machines/"+victim+"/start") })
	everyMember(t, lost, 15*time.Second, "every player to see three states", func(m *goMember) bool {
		return m.slot == 0 || m.states >= 3
	})

	killMu.Lock()
	killAt = time.Now()
	killMu.Unlock()
	cluster.control(t, "machines/"+victim+"/kill")

	everyMember(t, lost, 30*time.Second, "every member back in its room", func(m *goMember) bool {
		return m.back > 0 || m.closed != nil
	})
	var took []time.Duration
	for _, r := range lost {
		rebuilt := 0
		for _, m := range r {
			m.mu.Lock()
			switch {
			case m.closed != nil:
				t.Errorf("room %s slot %d ended: %+v", r[0].c.Room(), m.slot, *m.closed)
			case m.rejoined.Room != r[0].c.Room() || m.rejoined.Index != m.slot:
				t.Errorf("room %s slot %d came back as %+v", r[0].c.Room(), m.slot, m.rejoined)
			}
			if m.restored != nil && !m.restored.ByOther {
				rebuilt++
			}
			took = append(took, m.back)
			m.mu.Unlock()
		}
		if rebuilt != 1 {
			t.Errorf("room %s: %d members rebuilt it, want 1", r[0].c.Room(), rebuilt)
		}
	}
	slices.Sort(took)
	t.Logf("kill -9 to rejoined, %d members: p50 %v, p99 %v, max %v", len(took),
		took[len(took)/2], took[(len(took)*99-1)/100], took[len(took)-1])

	// The game went on: each host hears every player again, and its
	// latest state reaches every player.
	everyMember(t, lost, 10*time.Second, "every host to hear its three players", func(m *goMember) bool {
		return m.slot != 0 || len(m.from) == 3
	})
	close(stop)
	wg.Wait()
	stop = make(chan struct{})
	for i, r := range lost {
		want := fmt.Sprintf(`{"final":%d}`, i)
		if err := r[0].c.SetState(t.Context(), json.RawMessage(want)); err != nil {
			t.Fatalf("room %s: the host's last state: %v", r[0].c.Room(), err)
		}
		everyMember(t, [][]*goMember{r}, 10*time.Second, "the host's latest state "+want, func(m *goMember) bool {
			return m.slot == 0 || string(m.state) == want
		})
	}
	for _, r := range rooms {
		for _, m := range r {
			if m.seen(func(m *goMember) bool { return m.closed != nil }) {
				t.Errorf("room %s slot %d ended: %+v", r[0].c.Room(), m.slot, *m.closed)
			}
		}
	}
}

// everyMember waits until cond holds for every member of rooms.
func everyMember(t *testing.T, rooms [][]*goMember, d time.Duration, what string, cond func(m *goMember) bool) {
	t.Helper()
	testutil.Eventually(t, d, what, func() bool {
		for _, r := range rooms {
			for _, m := range r {
				if !m.seen(cond) {
					return false
				}
			}
		}
		return true
	})
}

func counts(held map[string][][]*goMember) map[string]int {
	out := map[string]int{}
	for id, rs := range held {
		out[id] = len(rs)
	}
	return out
}
