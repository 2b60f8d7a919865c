package abuse

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// The memory attacks of the review that filed "one stranger cannot run a
// machine out of memory", each from one address against a server with
// GOMEMLIMIT=200MiB and otherwise default settings. A Fly shared-cpu-1x
// machine has 256 MB: the peak RSS must stay under it, and the server must
// serve a healthy room afterwards. The per-address rate of new WebSockets
// and the per-connection byte rate are off: with them the attacks stop
// after 60 sockets, or send a sixth of the flood, and the memory bounds
// must hold without them.
func TestMemoryUnderAttack(t *testing.T) {
	if testing.Short() {
		t.Skip("memory attacks take about a minute")
	}
	attacks := []struct {
		name string
		run  func(t *testing.T, srv *testutil.Server)
	}{
		{"300 upgrades with a 1 MB Origin", attackOrigin},
		{"3,000 joins with 60 KB clientIds", attackClientIDs},
		{"200 unfinished 1 MB requests", attackHeaders},
		{"190 sockets parking partial messages", attackPartial},
		{"190 non-readers and a 60 KB flood", attackFlood},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			srv := testutil.Start(t, "GOMEMLIMIT=200MiB", "UPGRADES_PER_SEC=0", "BYTES_PER_SEC=0")
			a.run(t, srv)
			peak := srv.Status(t, "VmHWM")
			t.Logf("%s: peak RSS %.1f MB, RSS after %.1f MB", a.name, float64(peak)/1e6, float64(srv.Status(t, "VmRSS"))/1e6)
			if peak >= 256e6 {
				t.Errorf("peak RSS %d bytes: over a 256 MB machine", peak)
			}
			// The attacker's own connections may still hold this
			// address's handshake slots (net/http lingers 500 ms on a
			// refused request); an honest player has another address.
			testutil.Eventually(t, 5*time.Second, "the address to be admitted again", func() bool {
				_, _, err := testutil.TryDial(t, srv.URL)
				return err == nil
			})
			healthyPair(t, srv.URL)
		})
	}
}

// parallel runs n calls of f on k workers.
func parallel(n, k int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

func attackOrigin(t *testing.T, srv *testutil.Server) {
	origin := "https://" + strings.Repeat("o", 1<<20)
	parallel(300, 10, func(int) {
		c, _, err := testutil.Dialer{Header: http.Header{"Origin": {origin}}, SelfClose: true}.TryDial(t, srv.URL)
		if err == nil {
			c.Drop()
		}
	})
}

func attackClientIDs(t *testing.T, srv *testutil.Server) {
	var held []*testutil.Client
	var codes []string
	for i := range 3 {
		h := testutil.Dial(t, srv.URL)
		h.Send(fmt.Sprintf(`{"type":"create","clientId":"host-%d","maxClients":1e9}`, i))
		codes = append(codes, h.ExpectType("created").Room)
		held = append(held, h)
	}
	id := strings.Repeat("k", 60<<10)
	parallel(3000, 10, func(i int) {
		m, _, err := testutil.TryDial(t, srv.URL)
		if err != nil {
			return
		}
		m.TrySend(`{"type":"join","room":"` + codes[i%3] + `","clientId":"` + id + fmt.Sprint(i) + `"}`)
		m.Read()
		m.Drop()
	})
	_ = held
}

func attackHeaders(t *testing.T, srv *testutil.Server) {
	var mu sync.Mutex
	var conns []net.Conn
	pad := strings.Repeat("h", 64<<10)
	parallel(200, 20, func(int) {
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			return
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		c.SetWriteDeadline(time.Now().Add(3 * time.Second))
		c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
		for range 16 { // 1 MiB of header, never finished
			if _, err := c.Write([]byte("X-Pad: " + pad + "\r\n")); err != nil {
				return
			}
		}
	})
	time.Sleep(2 * time.Second) // held, as the attacker would
	for _, c := range conns {
		c.Close()
	}
}

func attackPartial(t *testing.T, srv *testutil.Server) {
	var mu sync.Mutex
	var socks []*websocket.Conn
	part := []byte(`{"type":"send","data":"` + strings.Repeat("p", 60<<10))
	parallel(190, 10, func(int) {
		m, _, err := testutil.TryDial(t, srv.URL)
		if err != nil {
			return
		}
		w, err := m.WS.Writer(context.Background(), websocket.MessageText)
		if err == nil {
			w.Write(part)
		}
		mu.Lock()
		socks = append(socks, m.WS)
		mu.Unlock()
	})
	time.Sleep(2 * time.Second) // held, as the attacker would
	for _, ws := range socks {
		ws.CloseNow()
	}
}

func attackFlood(t *testing.T, srv *testutil.Server) {
	h := testutil.Dial(t, srv.URL)
	code := h.Create("flood", 1000)
	parallel(190, 10, func(i int) {
		m, _, err := testutil.TryDial(t, srv.URL)
		if err != nil {
			return
		}
		m.Join(code, fmt.Sprintf("stalled-%d", i)) // never reads
	})
	// Another room's healthy pair times a message every 20 ms meanwhile.
	ph, pp, _ := pair(t, srv.URL, "pair", 2)
	lat := make(chan []time.Duration, 1)
	stop := make(chan struct{})
	go func() {
		var ds []time.Duration
		defer func() { lat <- ds }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond): // the pair's pace
			}
			start := time.Now()
			ph.TrySend(`{"type":"send","data":1}`)
			if _, err := pp.Read(); err != nil {
				return
			}
			ds = append(ds, time.Since(start))
		}
	}()
	defer func() {
		close(stop)
		ds := <-lat
		slices.Sort(ds)
		if len(ds) == 0 {
			t.Fatal("the healthy pair exchanged nothing during the flood")
		}
		t.Logf("healthy pair during the flood: %d messages, p50 %v, p99 %v, max %v",
			len(ds), ds[len(ds)/2], ds[len(ds)*99/100], ds[len(ds)-1])
	}()
	payload := `{"type":"send","data":"` + strings.Repeat("f", 60<<10) + `"}`
	deadline := time.Now().Add(8 * time.Second)
	tick := time.NewTicker(11 * time.Millisecond) // under the default rate
	defer tick.Stop()
	for time.Now().Before(deadline) {
		<-tick.C
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := h.WS.Write(ctx, websocket.MessageText, []byte(payload))
		cancel()
		if err != nil {
			for _, r := range []string{"memory_budget", "slow_consumer", "rate_limit", "client", "message_timeout", "join_timeout", "dead_peer", "write_timeout"} {
				t.Logf("closed %s: %v", r, srv.Metric(t, "party_sockets_connections_closed_total", `reason="`+r+`"`))
			}
			t.Fatalf("the sender was cut: %v", err)
		}
	}
}
