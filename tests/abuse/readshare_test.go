package abuse

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/internal/wsframe"
)

// Issue 20, second review, finding 1: messages being read may hold a
// fifth of the budget together, and one address filled it. Its 200
// sockets (MAX_CONNS_PER_IP) kept a fresh 64 KB message each half-sent:
// they finished it within the second a message takes to go stale and
// began the next, and re-dialled when closed. Every bystander's message
// over 512 bytes (a drawing's strokes, a quiz's question with its
// pictures' names) was then refused with 1013. Now one address's
// messages hold at most an eighth of that cap, and an address holding
// less (a bystander) takes the room of the address holding most.
//
// The attack from one address did not fill the cap in this test (its
// sockets spend time between one message and the next); from 4 and 8 it
// did. Before the fix: 4×200, 2 bystander sockets closed with 1013 and 10
// of 600 messages arrived; 8×100, 1 closed and 2 of 600 arrived. After
// it: no bystander closed, 600 of 600 in each (662 with 8×100, the hosts
// sending on while the test waits), the budget's peak 9-48%.
func TestOneAddressCannotFillTheReadingCap(t *testing.T) {
	if testing.Short() {
		t.Skip("200 sockets resending 64 KB halves for 4 s")
	}
	for _, c := range []struct{ addrs, per int }{{1, 200}, {4, 200}, {8, 100}} {
		t.Run(fmt.Sprintf("%d×%d", c.addrs, c.per), func(t *testing.T) {
			readingCapAttack(t, c.addrs, c.per)
		})
	}
}

// readingCapAttack runs the attack from addrs addresses of per sockets
// each, while 5 bystander rooms play with 4 KB messages.
func readingCapAttack(t *testing.T, addrs, per int) {
	srv := testutil.Start(t, "GOMEMLIMIT=200MiB", "UPGRADES_PER_SEC=0")
	seen := watch(t, srv)
	body := `{"type":"send","to":999999999,"data":"` + strings.Repeat("x", 64000) + `"}`
	head := wsframe.Client(false, wsframe.OpText, []byte(body[:len(body)-500]))
	tail := wsframe.Client(true, wsframe.OpContinuation, []byte(body[len(body)-500:]))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var halves, redials atomic.Int64
	var ends closeCounts
	for a := range addrs {
		src := addr16(4, a)
		h, code, err := peerCreate(srv.Addr, src, fmt.Sprintf("attacker-%d", a), 1000)
		if err != nil {
			t.Fatalf("the attacker's room: %v", err)
		}
		h.readAll(nil, func(int) {})
		t.Cleanup(h.close)
		for i := range per - 1 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("attacker-%d-%d", a, i)
				for {
					select {
					case <-stop:
						return
					default:
					}
					p, err := peerJoin(srv.Addr, src, code, id, 0)
					if err != nil {
						time.Sleep(50 * time.Millisecond)
						continue
					}
					gone := make(chan struct{})
					p.readAll(nil, func(code int) { ends.add(code); close(gone) })
				send:
					for {
						if p.write(head) != nil {
							break
						}
						halves.Add(1)
						select {
						case <-stop:
							p.close()
							return
						case <-gone:
							break send
						case <-time.After(600 * time.Millisecond):
						}
						if p.write(tail) != nil {
							break
						}
					}
					p.close()
					redials.Add(1)
				}
			}()
		}
	}
	time.Sleep(2 * time.Second) // the attack in full swing
	pl := playSized(t, srv, 5, 2, 3, `{"type":"send","data":{"strokes":"`+strings.Repeat("L10 20 ", 600)+`"}}`)
	pl.await(600, 10*time.Second) // three seconds of play: 10 guests, 20 messages a second each
	got := pl.frames.Load()
	ended, how := pl.finish()
	close(stop)
	wg.Wait()
	memoryBounds(t, srv, seen)
	t.Logf("%d address(es) × %d sockets sent %d halves of 64 KB messages (%d re-dials); attacker sockets ended by close code %v; "+
		"bystander sockets ended: %d (%s); bystander guests got %d messages of 4 KB (want 600); refused messages %v",
		addrs, per, halves.Load(), redials.Load(), &ends, ended, how, got, closedBy(t, srv, "over_budget"))
	if ended > 0 || got < 600 {
		t.Errorf("bystanders: %d sockets ended (%s), %d messages of 600 arrived", ended, how, got)
	}
}
