package abuse

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// Issue 20, finding 1: recovery windows of vacant slots grew past the
// memory budget. Strangers opt in to recovery and leave; every frame then
// sent to their room was copied into each of their windows, the budget
// counted it and refused nothing, and the one thing it could do, shed send
// queues, closed a bystander room's healthy guest (the attacker holds no
// queue). Default limits, under GOMEMLIMIT=200MiB (a 52 MB budget): the
// sockets come from loopback addresses 127.0.0.2 and up, 50 each, so the
// per-address limits do not stop them. The budget is read from /metrics,
// which the server renders once a second: the peak is of those readings.
//
// On the code before the fix, the first attack (the review's, whose
// figures were 397%, 208 MB) left the budget at 321% (168 MB of 52 MB),
// the live heap at 220 MB and peak RSS at 225 MB; the second at 152%
// (80 MB); each closed a healthy player with 4002. After it: 2% (the
// room's 1 MiB) and at most 80%, the budget's ceiling for what it can
// refuse, with nobody closed.
func TestRecoveryWindowsObeyTheBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("hundreds of sockets")
	}
	attacks := []struct {
		name                    string
		rooms, away, maxClients int
	}{
		// The review's: one room remembers 808 slots; 800 are away.
		{"800 vacant slots in one room", 1, 800, 201},
		// Each room under its own bound, together past the machine's.
		{"64 rooms of 5 vacant slots", 64, 5, 8},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			srv := testutil.Start(t, "GOMEMLIMIT=200MiB")
			seen := watch(t, srv)
			hosts := awayRooms(t, srv, a.rooms, a.away, a.maxClients)
			by := newBystander(t, srv)
			big := `{"type":"send","data":"` + strings.Repeat("w", 50_000) + `"}`
			sends := 5 * len(hosts)
			for i := range sends {
				hosts[i%len(hosts)].m.Send(big)
				if (i+1)%(sends/5) == 0 {
					by.send(4)
				}
			}
			by.wait(t, srv)
			seen.fresh(t, srv) // one more reading, rendered after the attack
			used, limit, heap := seen.read()
			t.Logf("budget peak %.0f%% (%.1f MB of %.1f MB); live heap peak %.1f MB; peak RSS %.1f MB; closed for the budget %v",
				100*used/limit, used/1e6, limit/1e6, heap/1e6, float64(srv.Status(t, "VmHWM"))/1e6,
				srv.Metric(t, "party_sockets_connections_closed_total", `reason="memory_budget"`))
			if used > 1.1*limit {
				t.Errorf("budget peaked at %.0f%% of its limit, want at most 110%%", 100*used/limit)
			}
			// A stranger comes back: whatever it is told, no gap is silent.
			back, _, err := testutil.Dialer{LocalAddr: loopback(2)}.TryDial(t, srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			back.Send(`{"type":"join","clientId":"away-0-0","room":"` + hosts[0].code + `","recover":true,"since":0}`)
			checkNoSilentGap(t, back)
			healthyPair(t, srv.URL)
		})
	}
}

// awayHost is the host of a room that strangers left.
type awayHost struct {
	m    *testutil.Client
	code string
}

// awayRooms creates n rooms from loopback addresses of their own, and
// into each sends away strangers who join with recover and leave at
// once. It returns when every host has read its room's chatter: hosts
// hold no queue, and what the budget counts is the windows.
func awayRooms(t *testing.T, srv *testutil.Server, n, away, maxClients int) []awayHost {
	const perAddr = 50
	hosts := make([]awayHost, n)
	chatter := make([]atomic.Int32, n)
	addr := 2
	for i := range hosts {
		if i > 0 && i%16 == 0 {
			addr++ // under the create burst of one address
		}
		m, _, err := testutil.Dialer{LocalAddr: loopback(addr)}.TryDial(t, srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		m.Send(fmt.Sprintf(`{"type":"create","clientId":"host-%d","maxClients":%d}`, i, maxClients))
		hosts[i] = awayHost{m, m.ExpectType("created").Room}
		go drain(m, &chatter[i])
	}
	first := addr + 1
	var joined atomic.Int32
	parallel(n*away, 10, func(k int) {
		room, i := k%n, k/n
		m, _, err := testutil.Dialer{LocalAddr: loopback(first + k/perAddr)}.TryDial(t, srv.URL)
		if err != nil {
			t.Errorf("stranger %d: %v", k, err)
			return
		}
		m.Send(fmt.Sprintf(`{"type":"join","clientId":"away-%d-%d","room":"%s","recover":true}`, room, i, hosts[room].code))
		if v, err := m.Next(); err == nil && v.Type == "joined" {
			joined.Add(1)
		}
		m.Drop() // away at once, and never back
	})
	t.Logf("%d of %d strangers in %d rooms joined with recover and left", joined.Load(), n*away, n)
	testutil.Eventually(t, 20*time.Second, "the hosts to read their rooms' chatter", func() bool {
		sum := int32(0)
		for i := range chatter {
			sum += chatter[i].Load()
		}
		return sum >= 2*joined.Load()
	})
	return hosts
}

// bystander is another room's host and guest; the guest reads everything.
type bystander struct {
	host, guest *testutil.Client
	sent        int
	got         chan string // "" once 20 messages came, else what happened
}

func newBystander(t *testing.T, srv *testutil.Server) *bystander {
	b := &bystander{got: make(chan string, 1)}
	b.host, b.guest, _ = pair(t, srv.URL, "bystander", 2)
	go func() {
		n := 0
		for n < 20 {
			v, err := b.guest.Next()
			if err != nil {
				b.got <- fmt.Sprintf("closed after %d messages: %v", n, err)
				return
			}
			if v.Type == "message" {
				n++
			}
		}
		b.got <- ""
	}()
	return b
}

func (b *bystander) send(n int) {
	for range n {
		b.host.Send(fmt.Sprintf(`{"type":"send","data":%d}`, b.sent))
		b.sent++
	}
}

// wait checks that the guest got all 20 messages and is still there.
func (b *bystander) wait(t *testing.T, srv *testutil.Server) {
	t.Helper()
	var what string
	select {
	case what = <-b.got:
	case <-time.After(10 * time.Second):
		what = "still waiting after 10 s"
	}
	if what != "" {
		t.Errorf("the bystander's guest: %s (closed for the budget: %v)", what,
			srv.Metric(t, "party_sockets_connections_closed_total", `reason="memory_budget"`))
		return
	}
	b.host.Send(`{"type":"send","data":"still here"}`)
	if v := b.guest.ExpectType("message"); v.Text() != "still here" {
		t.Errorf("the bystander's guest got %v", v)
	}
}

// checkNoSilentGap reads a rejoin's answer from since 0: recovered true
// must bring every frame from 1 to joined's seq, in order.
func checkNoSilentGap(t *testing.T, m *testutil.Client) {
	t.Helper()
	j := m.ExpectType("joined")
	seq := j.Seq
	if !j.Recovered {
		t.Logf("rejoin of a slot whose window was dropped: recovered %v at seq %v", j.Recovered, seq)
		return
	}
	for want := int64(1); want <= seq; want++ {
		v, err := m.Next()
		if err != nil {
			t.Fatalf("recovered:true at seq %v, then %v before seq %v", seq, err, want)
		}
		if v.Seq != want {
			t.Fatalf("recovered:true, but frame %v came where %v was due: a silent gap", v.Seq, want)
		}
	}
	t.Logf("rejoin recovered all %v frames", seq)
}

// drain reads m until its socket ends, counting frames.
func drain(m *testutil.Client, n *atomic.Int32) {
	for {
		if _, _, err := m.WS.Read(context.Background()); err != nil {
			return
		}
		n.Add(1)
	}
}

// peaks is what a watch saw of the server's /metrics at most.
type peaks struct {
	mu                sync.Mutex // guards the three
	used, limit, heap float64
}

func (p *peaks) take(srv *testutil.Server) (uptime float64) {
	u, l, h, up := scrape(srv)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used, p.limit, p.heap = max(p.used, u), max(p.limit, l), max(p.heap, h)
	return up
}

// fresh waits for a reading that the server rendered after this call
// (it renders /metrics at most once a second, so the watch sees a
// reading a second).
func (p *peaks) fresh(t *testing.T, srv *testutil.Server) {
	t.Helper()
	first := p.take(srv)
	testutil.Eventually(t, 5*time.Second, "a fresh /metrics", func() bool { return p.take(srv) > first })
}

func (p *peaks) read() (used, limit, heap float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used, p.limit, p.heap
}

// watch samples the server's budget and live heap every 20 ms until the
// test ends.
func watch(t *testing.T, srv *testutil.Server) *peaks {
	p := &peaks{}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			p.take(srv)
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return p
}

// scrape reads the budget and the live heap from /metrics without failing
// the test (it runs on a goroutine of its own); 0 when it cannot.
func scrape(srv *testutil.Server) (used, limit, heap, uptime float64) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(srv.URL + "/metrics")
	if err != nil {
		return 0, 0, 0, 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	for _, line := range strings.Split(string(body), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		switch name, _, _ := strings.Cut(f[0], "{"); name {
		case "party_sockets_memory_budget_used_bytes":
			used = v
		case "party_sockets_memory_budget_limit_bytes":
			limit = v
		case "process_heap_used_bytes":
			heap = v
		case "process_uptime_seconds":
			uptime = v
		}
	}
	return used, limit, heap, uptime
}
