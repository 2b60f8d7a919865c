package abuse

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// Issue 23, item 5: a household (host and four phones behind one address)
// is not locked out by its own retries after a crash. Two real server
// processes share a secret; the room's is killed with SIGKILL; each member
// does what a reconnecting client does, a rejoin every 100 ms (the room
// wait), and, with a ticket, a restore on "Room not found". Default
// limits: 60 misses a minute per address.

const householdSecret = "household-secret-0123456789abcdef0123456789"

type phone struct {
	id, ticket string
	index      int
	state      json.RawMessage
}

// household makes a room of five on url, all opted in to tickets (or not),
// the host's state set, and returns each member's last ticket and state.
func household(t *testing.T, url string, tickets bool) (string, []*phone) {
	t.Helper()
	var socks []*testutil.Client
	var phones []*phone
	code := ""
	for i := range 5 {
		c := testutil.Dial(t, url)
		ph := &phone{id: fmt.Sprintf("phone-%d", i)}
		if i == 0 {
			c.SendJSON(map[string]any{"type": "create", "clientId": ph.id, "maxClients": 8, "tickets": tickets})
			code = c.ExpectType("created").Room
		} else {
			c.SendJSON(map[string]any{"type": "join", "room": code, "clientId": ph.id, "tickets": tickets})
			ph.index = c.ExpectType("joined").Index
		}
		socks, phones = append(socks, c), append(phones, ph)
	}
	socks[0].Send(`{"type":"set_state","data":{"scores":[5,3,2,2,1]}}`)
	if !tickets {
		return code, phones
	}
	// One issue, one ticket for every member: the last member's first
	// ticket after the state carries its digest.
	last := socks[len(socks)-1]
	for f := next(t, last); f.Type != "state"; f = next(t, last) {
	}
	f := next(t, last)
	for f.Type != "ticket" {
		f = next(t, last)
	}
	var v struct{ Ticket string }
	json.Unmarshal([]byte(f.Raw), &v)
	for _, ph := range phones {
		ph.ticket, ph.state = v.Ticket, json.RawMessage(`{"scores":[5,3,2,2,1]}`)
	}
	return code, phones
}

// next is the next frame but the room's comings and goings.
func next(t *testing.T, c *testutil.Client) testutil.Frame {
	t.Helper()
	for {
		f, err := c.Next()
		if err != nil {
			t.Fatal(err)
		}
		if f.Type != "peer_joined" && f.Type != "peer_left" {
			return f
		}
	}
}

// comeBack is one member's reconnect after the crash, as a client does:
// a rejoin every 100 ms for at most 6 s; with a ticket, a restore after
// each "Room not found". It returns the joined frame and the number of
// rejoins that found no room, and fails on a 429.
func comeBack(t *testing.T, url, code string, ph *phone, restore bool) (joined testutil.Frame, misses int, lockedOut string) {
	deadline := time.Now().Add(6 * time.Second)
	for ; time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c, resp, err := testutil.Dialer{Timeout: 5 * time.Second}.TryDial(t, url+"/"+code)
		if err != nil {
			if resp != nil {
				return joined, misses, resp.Status
			}
			t.Errorf("%s: %v", ph.id, err)
			return joined, misses, ""
		}
		c.SendJSON(map[string]any{"type": "join", "room": code, "clientId": ph.id})
		f := next(t, c)
		if f.Type == "error" && f.Message == "Room not found" && restore {
			misses++
			c.SendJSON(map[string]any{"type": "restore", "clientId": ph.id, "ticket": ph.ticket, "state": ph.state})
			f = next(t, c)
		} else if f.Type == "error" && f.Message == "Room not found" {
			misses++
		}
		if f.Type == "joined" {
			return f, misses, ""
		}
		c.Drop()
		if f.Type == "error" && strings.HasPrefix(f.Message, "Too many") {
			return joined, misses, f.Message
		}
	}
	return joined, misses, "still not back after 6 s"
}

// TestHouseholdRestoresAfterKill: with tickets, every member of the
// household is back in its own slot within the retries, the state with
// it, and no retry is refused; without tickets (the figure before), the
// same retries spend the address's misses and are refused.
func TestHouseholdRestoresAfterKill(t *testing.T) {
	t.Parallel()
	for _, tickets := range []bool{false, true} {
		t.Run(fmt.Sprint("tickets=", tickets), func(t *testing.T) {
			a := testutil.Start(t, "HANDOFF_SECRET="+householdSecret)
			code, phones := household(t, a.URL, tickets)
			b := testutil.Start(t, "HANDOFF_SECRET="+householdSecret)
			a.Cmd.Process.Kill() // kill -9
			a.Cmd.Wait()
			type result struct {
				f         testutil.Frame
				misses    int
				lockedOut string
				took      time.Duration
			}
			results := make([]result, len(phones))
			start := time.Now()
			done := make(chan int, len(phones))
			for i, ph := range phones {
				go func() {
					f, m, lo := comeBack(t, b.URL, code, ph, tickets)
					results[i] = result{f, m, lo, time.Since(start)}
					done <- i
				}()
			}
			for range phones {
				<-done
			}
			misses, locked := 0, 0
			for i, r := range results {
				misses += r.misses
				if r.lockedOut != "" {
					locked++
				}
				if tickets && (r.f.Type != "joined" || r.f.Index != phones[i].index || r.lockedOut != "") {
					t.Errorf("%s: %s (locked out: %q), want back in slot %d", phones[i].id, r.f.Raw, r.lockedOut, phones[i].index)
				}
			}
			t.Logf("tickets=%v: %d rejoins found no room, %d of 5 members refused; times %v", tickets, misses, locked,
				[]time.Duration{results[0].took, results[1].took, results[2].took, results[3].took, results[4].took})
			if !tickets && locked == 0 {
				t.Errorf("without tickets no member was refused: the figure before is not what it was")
			}
		})
	}
}
