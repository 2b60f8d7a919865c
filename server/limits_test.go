package server

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

func TestMessageRateLimit(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{MsgRate: 0.001, MsgBurst: 5})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 4) // 1 token spent
	a := guest(t, ts, h, code, "a", 1, "0")
	for i := range 4 {
		h.Send(fmt.Sprintf(`{"type":"send","data":%d}`, i))
		a.Expect(fmt.Sprintf(`{"type":"message","from":0,"data":%d}`, i))
	}
	// Over the limit: told once, not relayed; the connection stays.
	h.Send(`{"type":"send","data":"over"}`)
	h.ExpectErr("Too many messages, slow down")
	for range 5 {
		h.Send(`{"type":"send","data":"over"}`)
	}
	// Past a whole burst of rejections: closed with 1008.
	h.Send(`{"type":"send","data":"over"}`)
	h.ExpectClose(1008, "rate limit exceeded")
	// Nothing over the limit reached the room.
	a.Expect(`{"type":"peer_left","index":0}`)
}

func TestRateLimitAllowsBursts(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{MsgRate: 1000, MsgBurst: 50})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 4)
	a := testutil.Dial(t, ts.URL)
	a.Join(code, "a")
	a.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0]}`)
	for i := range 40 {
		h.Send(fmt.Sprintf(`{"type":"send","data":%d}`, i))
	}
	for i := range 40 {
		a.Expect(fmt.Sprintf(`{"type":"message","from":0,"data":%d}`, i))
	}
}

func TestConnectionsPerIP(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{MaxConnsPerIP: 3})
	var conns []*testutil.Client
	for range 3 {
		conns = append(conns, testutil.Dial(t, ts.URL))
	}
	// A Fly-Client-IP header from outside Fly's proxy is not trusted.
	_, resp, err := testutil.Dialer{Header: http.Header{"Fly-Client-Ip": {"203.0.113.9"}}}.TryDial(t, ts.URL)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("fourth connection: err %v resp %v, want 429", err, resp)
	}
	conns[0].Leave()
	testutil.Eventually(t, 5*time.Second, "a freed connection slot", func() bool {
		c, _, err := testutil.TryDial(t, ts.URL)
		if err == nil {
			c.Drop()
		}
		return err == nil
	})
}

func TestFailedJoinsPerIP(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{JoinMissesPerMin: 3})
	now := time.Now()
	var mu sync.Mutex
	ts.perAddr.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 4)
	walker := testutil.Dial(t, ts.URL)
	for i := range 2 {
		walker.Send(fmt.Sprintf(`{"type":"join","clientId":"w","room":"guess%d"}`, i))
		walker.ExpectErr("Room not found")
	}
	if status, _, _ := getJSON(t, ts.URL+"/room/guess9"); status != 404 {
		t.Fatalf("third miss over HTTP: %d", status)
	}
	// Out of misses: even a good code is refused, on the socket and over HTTP.
	walker.Send(`{"type":"join","clientId":"w","room":"` + code + `"}`)
	walker.ExpectErr("Too many failed joins, try again later")
	if status, _, body := getJSON(t, ts.URL+"/room/"+code); status != 429 || !strings.Contains(body, "Too many requests") {
		t.Fatalf("HTTP after the limit: %d %s", status, body)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	walker.Send(`{"type":"join","clientId":"w","room":"` + code + `"}`)
	walker.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0]}`)
}

func TestRoomAndMemberBoundsOverSockets(t *testing.T) {
	t.Parallel()
	ts := newTestServerWith(t, Config{}, 1, 2)
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 8) // clamped to 2
	c := testutil.Dial(t, ts.URL)
	c.Send(`{"type":"create","clientId":"x","maxClients":2}`)
	c.ExpectErr("Too many rooms on this server")
	a := testutil.Dial(t, ts.URL)
	a.Join(code, "a")
	a.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0]}`)
	c.Join(code, "c")
	c.ExpectErr("Room is full")
}

func TestQueueBytesCap(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{QueueBytes: 64 << 10})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 4)
	slow := testutil.Dial(t, ts.URL)
	slow.Join(code, "slow")
	h.Expect(`{"type":"peer_joined","index":1}`)
	big := strings.Repeat("b", 30000)
	for i := 0; i < 2000; i++ {
		h.Send(`{"type":"send","data":"` + big + `"}`)
		if ts.rooms.Snapshot()[0].Clients == 1 {
			break
		}
	}
	h.Expect(`{"type":"peer_left","index":1}`)
}

// Every message of every healthy sender reaches every other member, in
// each sender's order, with all of them sending at once.
func TestNothingLostUnderConcurrentSenders(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{})
	const members, per = 5, 400
	cs := make([]*testutil.Client, members)
	cs[0] = testutil.Dial(t, ts.URL)
	code := cs[0].Create("m0", members)
	// One join at a time (two sent at once may be served in either
	// order), then drain the chatter: one peer_joined for each member who
	// came later.
	for i := 1; i < members; i++ {
		cs[i] = testutil.Dial(t, ts.URL)
		cs[i].Join(code, fmt.Sprint("m", i))
		mustRead(t, cs[i], `"joined"`, i)
	}
	for i := range cs {
		for range members - 1 - i {
			mustRead(t, cs[i], `"peer_joined"`, i)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, members*2)
	for i, c := range cs {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for n := range per {
				if err := c.TrySend(fmt.Sprintf(`{"type":"send","data":[%d,%d]}`, i, n)); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			next := make([]int, members)
			for got := 0; got < per*(members-1); got++ {
				s, err := c.Read()
				if err != nil {
					errs <- fmt.Errorf("member %d after %d: %v", i, got, err)
					return
				}
				var from, n int
				if _, err := fmt.Sscanf(s, `{"type":"message","from":%d,"data":[%d,%d]}`, new(int), &from, &n); err != nil {
					errs <- fmt.Errorf("member %d got %s", i, s)
					return
				}
				if n != next[from] {
					errs <- fmt.Errorf("member %d: message %d from %d arrived when %d was due", i, n, from, next[from])
					return
				}
				next[from]++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func mustRead(t *testing.T, c *testutil.Client, marker string, who int) string {
	t.Helper()
	for {
		s, err := c.Read()
		if err != nil {
			t.Fatalf("member %d waiting for %s: %v", who, marker, err)
		}
		if strings.Contains(s, marker) {
			return s
		}
	}
}

// The clientId is a bearer secret: it never appears in a frame, a
// response, a log line or a metric.
func TestClientIDNeverLeaves(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	var mu sync.Mutex
	ts := newTestServer(
		t,
		Config{Logger: slog.New(slog.NewTextHandler(lockedWriter{&logs, &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))},
	)
	const secret = "SeCrEt-7f3a9c"
	var frames []string
	record := func(c *testutil.Client, n int) {
		for range n {
			s, err := c.Read()
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, s)
		}
	}
	h := testutil.Dial(t, ts.URL)
	h.Send(`{"type":"create","clientId":"` + secret + `h","maxClients":2}`)
	record(h, 1)
	code := ts.rooms.Snapshot()[0].Code
	a := testutil.Dial(t, ts.URL)
	a.Send(`{"type":"join","clientId":"` + secret + `a","room":"` + code + `"}`)
	record(a, 1)
	a2 := testutil.Dial(t, ts.URL)
	a2.Send(`{"type":"join","clientId":"` + secret + `a","room":"` + code + `"}`) // replace
	record(a2, 1)
	x := testutil.Dial(t, ts.URL)
	x.Send(`{"type":"join","clientId":"` + secret + `x","room":"` + code + `"}`) // full
	record(x, 1)
	x.Send(`{"type":"create","clientId":"` + secret + `x","maxClients":"no"}`)
	record(x, 1)
	a2.Leave()
	h.Leave()
	testutil.Eventually(t, 5*time.Second, "room gone", func() bool { return ts.rooms.Len() == 0 })
	_, _, metrics := getJSON(t, ts.URL+"/metrics")
	_, _, room := getJSON(t, ts.URL+"/room/"+code)
	mu.Lock()
	logged := logs.String()
	mu.Unlock()
	all := strings.Join(frames, "\n") + metrics + room + logged
	if strings.Contains(all, secret) {
		t.Fatalf("the clientId leaked:\n%s", all)
	}
	if !strings.Contains(logged, "room created") {
		t.Fatal("no log lines were captured: the check proves nothing")
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// After a thousand room cycles, goroutines and heap return to their
// baseline: nothing per connection or per room outlives it.
func TestNoLeaksAfterRoomCycles(t *testing.T) {
	ts := newTestServer(t, Config{})
	// These clients close themselves: a t.Cleanup per client would keep
	// 4,000 closed connections alive and count them as the server's heap.
	dialOwn := func() *testutil.Client {
		c, _, err := testutil.Dialer{SelfClose: true}.TryDial(t, ts.URL)
		if err != nil {
			t.Error(err)
			panic(err)
		}
		return c
	}
	cycle := func() {
		h := dialOwn()
		code := h.Create("h", 4)
		var gs []*testutil.Client
		for i := range 3 {
			g := dialOwn()
			g.Join(code, fmt.Sprint("g", i))
			mustRead(t, g, `"joined"`, i)
			gs = append(gs, g)
		}
		h.Send(`{"type":"send","data":"x"}`)
		for i, g := range gs {
			mustRead(t, g, `"message"`, i)
		}
		for _, g := range gs {
			g.Leave()
			g.Drop()
		}
		h.Leave()
		h.Drop()
	}
	for range 20 { // warm up pools and the HTTP server
		cycle()
	}
	settle := func() (int, uint64) {
		var ms runtime.MemStats
		for range 3 {
			runtime.GC()
		}
		runtime.ReadMemStats(&ms)
		return runtime.NumGoroutine(), ms.HeapAlloc
	}
	testutil.Eventually(t, 5*time.Second, "warm-up rooms gone", func() bool { return ts.rooms.Len() == 0 })
	g0, h0 := settle()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 125 {
				cycle()
			}
			_ = w
		}()
	}
	wg.Wait()
	testutil.Eventually(t, 5*time.Second, "every room gone", func() bool { return ts.rooms.Len() == 0 })
	var g int
	var h uint64
	settled := testutil.Poll(10*time.Second, func() bool {
		g, h = settle()
		return g <= g0+4 && h <= h0+4<<20
	})
	if !settled {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines %d (baseline %d), heap %d KB (baseline %d KB)\n%s", g, g0, h>>10, h0>>10, buf[:runtime.Stack(buf, true)])
	}
	t.Logf("after 1000 cycles: goroutines %d (baseline %d), heap %d KB (baseline %d KB)", g, g0, h>>10, h0>>10)
}

// A receiver whose socket write blocks past WriteTimeout is closed
// (reason write_timeout) before its queue would have overflowed.
func TestWriteTimeout(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{WriteTimeout: 200 * time.Millisecond})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 4)
	stuck := testutil.Dial(t, ts.URL) // never reads again
	stuck.Join(code, "s")
	h.Expect(`{"type":"peer_joined","index":1}`)
	big := strings.Repeat("w", 60000)
	for i := 0; i < 1000 && ts.rooms.Snapshot()[0].Clients == 2; i++ {
		h.Send(`{"type":"send","data":"` + big + `"}`)
		time.Sleep(5 * time.Millisecond) // slower than the queue cap: only the write can time out
	}
	h.Expect(`{"type":"peer_left","index":1}`)
	_, _, metrics := getJSON(t, ts.URL+"/metrics")
	if !strings.Contains(metrics, `reason="write_timeout",region="LOCAL",version="dev"} 1`) {
		t.Fatalf("write timeout not the reason:\n%s", metrics)
	}
}
