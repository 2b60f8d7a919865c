package abuse

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// Review finding 6 (reads): one address's 200 sockets, each under its own
// 1 MiB/s, sent 64 KB frames that the server read, decoded and answered:
// nothing bounded what the address sent in all, and other rooms' round
// trips went from 0.3 ms to 0.4 s (p99 2.2 s). Now an address's sockets
// share ADDR_BYTES_PER_SEC (here 1 MiB/s): 20 sockets of one address send
// as fast as they can, and what the server reads of them (each message
// answered with an error, counted) stays within the shared rate and its
// burst, while a room of another address goes on.
func TestOneAddressSocketsShareAByteRate(t *testing.T) {
	const rate, socks = 1 << 20, 20
	srv := testutil.Start(t, "GOMEMLIMIT=200MiB", "ADDR_BYTES_PER_SEC=1048576")
	msg := frame(true, 0x1, []byte(`{"type":"send","to":99,"data":"`+strings.Repeat("x", 64000)+`"}`))
	conns := make([]*rawWS, socks)
	for i := range conns {
		conns[i] = dialRaw(t, srv.Addr, nil)
		conns[i].write(frame(true, 0x1, []byte(`{"type":"create","clientId":"flood-`+string(rune('a'+i))+`","maxClients":2}`)))
		if _, p, err := conns[i].readFrame(5 * time.Second); err != nil || !strings.Contains(string(p), `"created"`) {
			t.Fatalf("socket %d create: %q %v", i, p, err)
		}
	}
	host := testutil.Dialer{LocalAddr: loopback(50)}.Dial(t, srv.URL)
	code := host.Create("bystander-host", 4)
	player := testutil.Dialer{LocalAddr: loopback(51)}.Dial(t, srv.URL)
	player.Join(code, "bystander-player")
	player.ExpectType("joined")
	host.ExpectType("peer_joined")

	var answered atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(3 * time.Second)
	for _, c := range conns {
		wg.Go(func() { // what the server answers: one error per message it read
			for {
				_, p, err := c.readFrame(time.Until(end.Add(time.Second)))
				if err != nil {
					return
				}
				if strings.Contains(string(p), "Target peer not found") {
					answered.Add(1)
				}
			}
		})
		wg.Go(func() {
			for range 200 { // 12.8 MB at most
				c.c.SetWriteDeadline(end)
				if _, err := c.c.Write(msg); err != nil {
					return
				}
			}
		})
	}
	// The bystanders' room works meanwhile: a message every 100 ms.
	tick := time.NewTicker(100 * time.Millisecond)
	for time.Now().Before(end) {
		<-tick.C
		host.Send(`{"type":"send","data":"tick"}`)
		if v := player.ExpectType("message"); string(v.Data) != `"tick"` {
			t.Fatalf("bystander got %v", v)
		}
	}
	tick.Stop()
	elapsed := time.Since(start)
	read := answered.Load() * int64(len(msg))
	for _, c := range conns {
		c.c.Close()
	}
	wg.Wait()
	// The shared rate over the window, its burst (2 s), and a message in
	// flight on every socket.
	allowed := int64(rate*(elapsed.Seconds()+2)) + socks*int64(len(msg))
	t.Logf("%d sockets of one address, %v: the server read %.1f MB of them (%d messages), allowed %.1f MB",
		socks, elapsed.Round(time.Millisecond), float64(read)/1e6, answered.Load(), float64(allowed)/1e6)
	if read > allowed {
		t.Errorf("the server read %d bytes of one address's sockets in %v, want at most %d", read, elapsed, allowed)
	}
}
