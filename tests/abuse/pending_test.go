package abuse

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// Review finding 2: connections that send "GET / HTTP/1.1\r\n" and
// nothing more held MAX_PENDING_CONNS, and every later connection was
// closed before a byte was read: off Fly 5 addresses × 200 left honest
// upgrades 1/80 and /health 1/80; as on Fly (no per-address bound), one
// address × 1000 left upgrades 0/80. Now a full table closes its oldest
// handshake for the newest: honest ones finish in milliseconds.
func TestHalfOpenHandshakesCannotStarveHonestOnes(t *testing.T) {
	for _, tt := range []struct {
		name       string
		addrs, per int
		env        []string
	}{
		{"off Fly, 5 addresses × 200", 5, 200, nil},
		{"on Fly, one address × 1000", 1, 1000, flyEnv()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := testutil.Start(t, append([]string{"GOMEMLIMIT=200MiB", "HANDSHAKE_TIMEOUT=30s"}, tt.env...)...)
			held, dials := slowloris(t, srv.Addr, tt.addrs, tt.per)
			testutil.Eventually(t, 20*time.Second, "the half-open connections to fill the table", func() bool {
				return held.Load() >= 1000
			})
			const tries = 40
			upgrades, health := 0, 0
			client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			for i := range tries {
				if m, _, err := (testutil.Dialer{LocalAddr: loopback(100 + i), SelfClose: true}).TryDial(t, srv.URL); err == nil {
					upgrades++
					m.Drop()
				}
				if resp, err := client.Get(srv.URL + "/health"); err == nil {
					if resp.StatusCode == 200 {
						health++
					}
					resp.Body.Close()
				}
			}
			t.Logf("%d addresses × %d half-open requests (%d held at the end, %d opened): honest upgrades %d/%d, /health %d/%d",
				tt.addrs, tt.per, held.Load(), dials.Load(), upgrades, tries, health, tries)
			if upgrades < tries*95/100 || health < tries*95/100 {
				t.Fatalf("honest upgrades %d/%d, /health %d/%d: want at least 95%% of each", upgrades, tries, health, tries)
			}
		})
	}
}

// slowloris holds per connections from each of addrs loopback addresses,
// each sending the start of a request and never the rest, and opening
// another when the server closes it (at most 100 times each), until the
// test ends. It returns how many it holds, and how many it opened.
func slowloris(t *testing.T, addr string, addrs, per int) (held, dials *atomic.Int64) {
	t.Helper()
	held, dials = new(atomic.Int64), new(atomic.Int64)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); wg.Wait() })
	for a := range addrs {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("127.0.5.%d", 1+a))}, Timeout: 2 * time.Second}
		for range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 100 {
					c, err := d.Dial("tcp", addr)
					if err != nil {
						select {
						case <-stop:
							return
						case <-time.After(50 * time.Millisecond): // out of ports: a pause, not a spin
						}
						continue
					}
					dials.Add(1)
					if !holdHalfOpen(c, stop, held) {
						return
					}
				}
			}()
		}
	}
	return held, dials
}

// holdHalfOpen sends a request line and waits until the server closes c
// (true) or the test ends (false).
func holdHalfOpen(c net.Conn, stop chan struct{}, held *atomic.Int64) bool {
	defer c.Close()
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\n")); err != nil {
		return true
	}
	held.Add(1)
	defer held.Add(-1)
	closed := make(chan struct{})
	go func() {
		c.SetReadDeadline(time.Now().Add(time.Minute))
		c.Read(make([]byte, 1))
		close(closed)
	}()
	select {
	case <-closed:
		return true
	case <-stop:
		return false
	}
}
