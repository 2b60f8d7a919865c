package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestMessageRateLimit(t *testing.T) {
	ts := newTestServer(t, Config{MsgRate: 0.001, MsgBurst: 5})
	h := dial(t, ts.URL, "/", nil)
	code := h.create("h", 4) // 1 token spent
	a := guest(t, ts, h, code, "a", 1, "0")
	for i := range 4 {
		h.send(fmt.Sprintf(`{"type":"send","data":%d}`, i))
		a.expect(fmt.Sprintf(`{"type":"message","from":0,"data":%d}`, i))
	}
	// Over the limit: told once, not relayed; the connection stays.
	h.send(`{"type":"send","data":"over"}`)
	h.expectErr("Too many messages, slow down")
	for range 5 {
		h.send(`{"type":"send","data":"over"}`)
	}
	// Past a whole burst of rejections: closed with 1008.
	h.send(`{"type":"send","data":"over"}`)
	h.expectClose(1008, "rate limit exceeded")
	// Nothing over the limit reached the room.
	a.expect(`{"type":"peer_left","index":0}`)
}

func TestRateLimitAllowsBursts(t *testing.T) {
	ts := newTestServer(t, Config{MsgRate: 1000, MsgBurst: 50})
	h := dial(t, ts.URL, "/", nil)
	code := h.create("h", 4)
	a := dial(t, ts.URL, "/", nil)
	a.join(code, "a")
	a.expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0]}`)
	for i := range 40 {
		h.send(fmt.Sprintf(`{"type":"send","data":%d}`, i))
	}
	for i := range 40 {
		a.expect(fmt.Sprintf(`{"type":"message","from":0,"data":%d}`, i))
	}
}

func TestConnectionsPerIP(t *testing.T) {
	ts := newTestServer(t, Config{MaxConnsPerIP: 3})
	var conns []*client
	for range 3 {
		conns = append(conns, dial(t, ts.URL, "/", nil))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	// A Fly-Client-IP header from outside Fly's proxy is not trusted.
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http"), &websocket.DialOptions{
		HTTPHeader: http.Header{"Fly-Client-Ip": {"203.0.113.9"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("fourth connection: err %v resp %v, want 429", err, resp)
	}
	conns[0].ws.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "a freed connection slot", func() bool {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http"), nil)
		if err == nil {
			c.CloseNow()
		}
		return err == nil
	})
}

func TestFailedJoinsPerIP(t *testing.T) {
	ts := newTestServer(t, Config{JoinMissesPerMin: 3})
	now := time.Now()
	var mu sync.Mutex
	ts.perAddr.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := dial(t, ts.URL, "/", nil)
	code := h.create("h", 4)
	walker := dial(t, ts.URL, "/", nil)
	for i := range 2 {
		walker.send(fmt.Sprintf(`{"type":"join","clientId":"w","room":"guess%d"}`, i))
		walker.expectErr("Room not found")
	}
	if status, _, _ := getJSON(t, ts.URL+"/room/guess9"); status != 404 {
		t.Fatalf("third miss over HTTP: %d", status)
	}
	// Out of misses: even a good code is refused, on the socket and over HTTP.
	walker.send(`{"type":"join","clientId":"w","room":"` + code + `"}`)
	walker.expectErr("Too many failed joins, try again later")
	if status, _, body := getJSON(t, ts.URL+"/room/"+code); status != 429 || !strings.Contains(body, "Too many requests") {
		t.Fatalf("HTTP after the limit: %d %s", status, body)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	walker.send(`{"type":"join","clientId":"w","room":"` + code + `"}`)
	walker.expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0]}`)
}

func TestRoomAndMemberBoundsOverSockets(t *testing.T) {
	ts := newTestServerWith(t, Config{}, 1, 2)
	h := dial(t, ts.URL, "/", nil)
	code := h.create("h", 8) // clamped to 2
	c := dial(t, ts.URL, "/", nil)
	c.send(`{"type":"create","clientId":"x","maxClients":2}`)
	c.expectErr("Too many rooms on this server")
	a := dial(t, ts.URL, "/", nil)
	a.join(code, "a")
	a.expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0]}`)
	c.join(code, "c")
	c.expectErr("Room is full")
}

func TestQueueBytesCap(t *testing.T) {
	ts := newTestServer(t, Config{QueueBytes: 64 << 10})
	h := dial(t, ts.URL, "/", nil)
	code := h.create("h", 4)
	slow := dial(t, ts.URL, "/", nil)
	slow.join(code, "slow")
	h.expect(`{"type":"peer_joined","index":1}`)
	big := strings.Repeat("b", 30000)
	for i := 0; i < 2000; i++ {
		h.send(`{"type":"send","data":"` + big + `"}`)
		if ts.rooms.Snapshot()[0].Clients == 1 {
			break
		}
	}
	h.expect(`{"type":"peer_left","index":1}`)
}

// Every message of every healthy sender reaches every other member, in
// each sender's order, with all of them sending at once.
func TestNothingLostUnderConcurrentSenders(t *testing.T) {
	ts := newTestServer(t, Config{})
	const members, per = 5, 400
	cs := make([]*client, members)
	cs[0] = dial(t, ts.URL, "/", nil)
	code := cs[0].create("m0", members)
	// One join at a time (two sent at once may be served in either
	// order), then drain the chatter: one peer_joined for each member who
	// came later.
	for i := 1; i < members; i++ {
		cs[i] = dial(t, ts.URL, "/", nil)
		cs[i].join(code, fmt.Sprint("m", i))
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
				if err := c.ws.Write(t.Context(), websocket.MessageText, []byte(fmt.Sprintf(`{"type":"send","data":[%d,%d]}`, i, n))); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			next := make([]int, members)
			for got := 0; got < per*(members-1); got++ {
				s, err := c.read()
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

func mustRead(t *testing.T, c *client, marker string, who int) string {
	t.Helper()
	for {
		s, err := c.read()
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
	var logs bytes.Buffer
	var mu sync.Mutex
	ts := newTestServer(t, Config{Logger: slog.New(slog.NewTextHandler(lockedWriter{&logs, &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	const secret = "SeCrEt-7f3a9c"
	var frames []string
	record := func(c *client, n int) {
		for range n {
			s, err := c.read()
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, s)
		}
	}
	h := dial(t, ts.URL, "/", nil)
	h.send(`{"type":"create","clientId":"` + secret + `h","maxClients":2}`)
	record(h, 1)
	code := ts.rooms.Snapshot()[0].Code
	a := dial(t, ts.URL, "/", nil)
	a.send(`{"type":"join","clientId":"` + secret + `a","room":"` + code + `"}`)
	record(a, 1)
	a2 := dial(t, ts.URL, "/", nil)
	a2.send(`{"type":"join","clientId":"` + secret + `a","room":"` + code + `"}`) // replace
	record(a2, 1)
	x := dial(t, ts.URL, "/", nil)
	x.send(`{"type":"join","clientId":"` + secret + `x","room":"` + code + `"}`) // full
	record(x, 1)
	x.send(`{"type":"create","clientId":"` + secret + `x","maxClients":"no"}`)
	record(x, 1)
	a2.ws.Close(websocket.StatusNormalClosure, "")
	h.ws.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "room gone", func() bool { return ts.rooms.Len() == 0 })
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
	dialOwn := func() *client {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http"), nil)
		if err != nil {
			t.Error(err)
			panic(err)
		}
		return &client{t: t, ws: ws}
	}
	cycle := func() {
		h := dialOwn()
		code := h.create("h", 4)
		var gs []*client
		for i := range 3 {
			g := dialOwn()
			g.join(code, fmt.Sprint("g", i))
			mustRead(t, g, `"joined"`, i)
			gs = append(gs, g)
		}
		h.send(`{"type":"send","data":"x"}`)
		for i, g := range gs {
			mustRead(t, g, `"message"`, i)
		}
		for _, g := range gs {
			g.ws.Close(websocket.StatusNormalClosure, "")
			g.ws.CloseNow()
		}
		h.ws.Close(websocket.StatusNormalClosure, "")
		h.ws.CloseNow()
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
	waitFor(t, "warm-up rooms gone", func() bool { return ts.rooms.Len() == 0 })
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
	waitFor(t, "every room gone", func() bool { return ts.rooms.Len() == 0 })
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, h := settle()
		if g <= g0+4 && h <= h0+4<<20 {
			t.Logf("after 1000 cycles: goroutines %d (baseline %d), heap %d KB (baseline %d KB)", g, g0, h>>10, h0>>10)
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines %d (baseline %d), heap %d KB (baseline %d KB)\n%s", g, g0, h>>10, h0>>10, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A receiver whose socket write blocks past WriteTimeout is closed
// (reason write_timeout) before its queue would have overflowed.
func TestWriteTimeout(t *testing.T) {
	ts := newTestServer(t, Config{WriteTimeout: 200 * time.Millisecond})
	h := dial(t, ts.URL, "/", nil)
	code := h.create("h", 4)
	stuck := dial(t, ts.URL, "/", nil) // never reads again
	stuck.join(code, "s")
	h.expect(`{"type":"peer_joined","index":1}`)
	big := strings.Repeat("w", 60000)
	for i := 0; i < 1000 && ts.rooms.Snapshot()[0].Clients == 2; i++ {
		h.send(`{"type":"send","data":"` + big + `"}`)
		time.Sleep(5 * time.Millisecond) // slower than the queue cap: only the write can time out
	}
	h.expect(`{"type":"peer_left","index":1}`)
	_, _, metrics := getJSON(t, ts.URL+"/metrics")
	if !strings.Contains(metrics, `reason="write_timeout",region="LOCAL",version="dev"} 1`) {
		t.Fatalf("write timeout not the reason:\n%s", metrics)
	}
}
