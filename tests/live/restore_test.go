package live

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// Crash-proof rooms (docs/protocol.md "Crash-proof rooms"): the members of a room
// carry its sealed ticket, and rebuild the room elsewhere when its machine
// is lost. These tests use raw WebSocket clients through the cluster's
// edges; every player comes from 127.0.0.1, one Fly-Client-IP: a
// household.

// member is a player that keeps its room's freshest ticket and the last
// state it saw, as our clients do.
type member struct {
	id    string
	p     *testutil.Client
	index int

	mu     sync.Mutex // guards ticket, state
	ticket string
	state  json.RawMessage
}

// read keeps the member's ticket and state up to date until its socket
// ends; frames of other types are sent on frames.
func (m *member) read(frames chan<- testutil.Frame) {
	for {
		f, err := m.p.Next()
		if err != nil {
			close(frames)
			return
		}
		m.mu.Lock()
		switch f.Type {
		case "ticket":
			var v struct{ Ticket string }
			json.Unmarshal([]byte(f.Raw), &v)
			m.ticket = v.Ticket
		case "state":
			m.state = f.Data
		}
		m.mu.Unlock()
		if f.Type != "ticket" {
			select {
			case frames <- f:
			default:
			}
		}
	}
}

func (m *member) held() (string, json.RawMessage) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ticket, m.state
}

// ticketedRoom makes a room on machine host of region with n players
// besides the host, all opted in to tickets, the host's state set, and
// waits until every member holds a ticket that carries it.
func ticketedRoom(t *testing.T, region, host string, n int) (string, []*member) {
	t.Helper()
	h := &member{id: "h-" + nonce()[:8], p: dial(t, region, "/?instance="+host, nil)}
	h.p.SendJSON(map[string]any{"type": "create", "clientId": h.id, "maxClients": 8, "tickets": true})
	code := h.p.ExpectType("created").Room
	members := []*member{h}
	for i := range n {
		m := &member{id: fmt.Sprintf("p%d-%s", i, nonce()[:8]), p: dial(t, region, "/"+code, nil)}
		m.p.SendJSON(map[string]any{"type": "join", "room": code, "clientId": m.id, "tickets": true})
		m.index = m.p.ExpectType("joined").Index
		members = append(members, m)
	}
	h.p.SendJSON(map[string]any{"type": "set_state", "data": map[string]any{"round": 4, "scores": []int{3, 1, 4}}})
	for _, m := range members {
		go m.read(make(chan testutil.Frame, 64))
	}
	testutil.Eventually(t, 10*time.Second, "every member's ticket to carry the state", func() bool {
		for _, m := range members {
			if tk, _ := m.held(); tk == "" {
				return false
			}
		}
		_, st := members[len(members)-1].held()
		return st != nil || n == 0
	})
	return code, members
}

// restoreVia opens /<code> through region's edge and restores as m, or
// joins when told the room exists; it returns the first answer.
func restoreVia(t *testing.T, region, code string, m *member) (testutil.Frame, *testutil.Client) {
	t.Helper()
	tk, st := m.held()
	p, err := tryDial(t, region, "/"+code, nil)
	if err != nil {
		t.Fatalf("%s's restore dial: %v", m.id, err) // a 429 here is the household locked out
	}
	msg := map[string]any{"type": "restore", "clientId": m.id, "ticket": tk}
	if st != nil {
		msg["state"] = st
	}
	p.SendJSON(msg)
	f, err := p.Next()
	if err != nil {
		t.Fatalf("%s's restore: %v", m.id, err)
	}
	return f, p
}

// TestRestoreAfterKill: kill -9 mid-game. A household (host and four
// players behind one address) is back in its room with its code, each in
// its own slot, with the latest state, and no dial gets a 429.
func TestRestoreAfterKill(t *testing.T) {
	local(t)
	victim := cluster.inRegion("fra")[0]
	t.Cleanup(func() { cluster.restore(t, "machines/"+victim.ID+"/start") })
	code, members := ticketedRoom(t, "fra", victim.ID, 4)
	cluster.control(t, "machines/"+victim.ID+"/kill")
	cut := time.Now()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		restored int
		took     []time.Duration
	)
	for _, m := range members {
		wg.Go(func() {
			f, p := restoreVia(t, "fra", code, m)
			for f.Type == "error" && (f.Message == "Try again" || f.Message == "Room exists") {
				if f.Message == "Room exists" {
					p.SendJSON(map[string]any{"type": "join", "room": code, "clientId": m.id})
				} else {
					f, p = restoreVia(t, "fra", code, m)
					continue
				}
				f, _ = p.Next()
			}
			if f.Type != "joined" || f.Index != m.index || f.Room != code {
				t.Errorf("%s (slot %d) got %s", m.id, m.index, f.Raw)
				return
			}
			st := p.ExpectType("state")
			if !strings.Contains(string(st.Data), `"scores":[3,1,4]`) {
				t.Errorf("%s got state %s", m.id, st.Data)
			}
			mu.Lock()
			defer mu.Unlock()
			took = append(took, time.Since(cut))
			if strings.Contains(f.Raw, `"restored":true`) {
				restored++
			}
		})
	}
	wg.Wait()
	if restored != 1 {
		t.Errorf("%d members rebuilt the room, want exactly 1", restored)
	}
	slices.Sort(took)
	t.Logf("kill -9 to every member rejoined: %v (each: %v)", took[len(took)-1], took)
}

// holders is the machines that answer 200 to a pinned GET /room/<code>.
func holders(t *testing.T, code string) []string {
	t.Helper()
	var out []string
	for _, m := range cluster.Machines {
		resp, _ := do(t, noRedirect(), cluster.edgeRequest(t, "GET", m.Region, "/room/"+code+"?instance="+m.ID))
		if resp.StatusCode == http.StatusOK {
			out = append(out, m.ID)
		}
	}
	return out
}

// TestRestoreTwoAtOnce: the holder is killed and started again (empty);
// two members restore at once through the region's edge, which may take
// them to either machine: one room.
func TestRestoreTwoAtOnce(t *testing.T) {
	local(t)
	victim := cluster.inRegion("fra")[1]
	t.Cleanup(func() { cluster.restore(t, "machines/"+victim.ID+"/start") })
	code, members := ticketedRoom(t, "fra", victim.ID, 1)
	cluster.control(t, "machines/"+victim.ID+"/kill")
	cluster.control(t, "machines/"+victim.ID+"/start")
	var wg sync.WaitGroup
	answers := make([]testutil.Frame, len(members))
	for i, m := range members {
		wg.Go(func() { answers[i], _ = restoreVia(t, "fra", code, m) })
	}
	wg.Wait()
	restored := 0
	for i, f := range answers {
		switch {
		case f.Type == "joined" && strings.Contains(f.Raw, `"restored":true`):
			restored++
		case f.Type == "joined", f.Type == "error" && (f.Message == "Room exists" || f.Message == "Try again"):
		default:
			t.Errorf("member %d: %s", i, f.Raw)
		}
	}
	if restored != 1 {
		t.Errorf("%d restores rebuilt the room, want 1: %v", restored, answers)
	}
	if h := holders(t, code); len(h) != 1 {
		t.Errorf("the code is held by %v, want one machine", h)
	}
}

// TestRestoreRefusedLive: a forged, an altered and an ended room's ticket
// are refused; a ticket cannot take the code of a live room.
func TestRestoreRefusedLive(t *testing.T) {
	local(t)
	host := cluster.inRegion("iad")[0]
	code, members := ticketedRoom(t, "iad", host.ID, 1)
	tk, _ := members[1].held()
	altered := []byte(tk)
	altered[len(altered)/2] ^= 1
	if altered[len(altered)/2] == '-'^1 || altered[len(altered)/2] == '_'^1 {
		altered[len(altered)/2] = 'A'
	}
	for name, ticket := range map[string]string{"forged": strings.Repeat("A", 300), "altered": string(altered)} {
		p := dial(t, "iad", "/"+code, nil)
		p.SendJSON(map[string]any{"type": "restore", "clientId": members[1].id, "ticket": ticket})
		if f := p.ExpectType("error"); f.Message != "Invalid ticket" {
			t.Errorf("%s ticket: %s, want Invalid ticket", name, f.Raw)
		}
	}
	// Live: the restore joins it, in the member's own slot.
	f, _ := restoreVia(t, "iad", code, members[1])
	if f.Type != "joined" || f.Index != members[1].index || strings.Contains(f.Raw, "restored") {
		t.Errorf("restore of a live room: %s", f.Raw)
	}
	members[0].p.SendJSON(map[string]any{"type": "close_room"})
	testutil.Eventually(t, 5*time.Second, "the room to end", func() bool { return len(holders(t, code)) == 0 })
	for _, region := range []string{"iad"} {
		p := dial(t, region, "/"+code, nil)
		p.SendJSON(map[string]any{"type": "restore", "clientId": members[1].id, "ticket": tk})
		if f := p.ExpectType("error"); f.Message != "Room ended" {
			t.Errorf("ended room's ticket through %s: %s, want Room ended", region, f.Raw)
		}
	}
}

// TestSuspendRestoreResume: the holder is suspended (gone from DNS, its
// process stopped); a member restores the room elsewhere; the holder is
// resumed, sees that it was frozen, finds the newer copy and gives way:
// one room at the end.
func TestSuspendRestoreResume(t *testing.T) {
	local(t)
	victim := cluster.inRegion("iad")[1]
	t.Cleanup(func() { cluster.restore(t, "machines/"+victim.ID+"/resume") })
	code, members := ticketedRoom(t, "iad", victim.ID, 1)
	cluster.control(t, "machines/"+victim.ID+"/suspend")
	frozenAt := time.Now()
	f, _ := restoreVia(t, "iad", code, members[1])
	for f.Type == "error" && f.Message == "Try again" {
		f, _ = restoreVia(t, "iad", code, members[1])
	}
	if f.Type != "joined" || !strings.Contains(f.Raw, `"restored":true`) {
		t.Fatalf("restore while the holder is suspended: %s", f.Raw)
	}
	time.Sleep(max(0, 7*time.Second-time.Since(frozenAt))) // the scenario: frozen longer than its watch's gap
	cluster.control(t, "machines/"+victim.ID+"/resume")
	testutil.Eventually(t, 15*time.Second, "one holder", func() bool {
		h := holders(t, code)
		return len(h) == 1 && h[0] != victim.ID
	})
}

// TestFreezeThaw: a frozen holder is still listed but answers nothing: a
// restore is "Try again" (unknown is never absent), never a second room;
// once thawed the room goes on where it was. One room at the end.
func TestFreezeThaw(t *testing.T) {
	local(t)
	victim := cluster.inRegion("fra")[0]
	t.Cleanup(func() { cluster.restore(t, "machines/"+victim.ID+"/thaw") })
	code, members := ticketedRoom(t, "fra", victim.ID, 1)
	cluster.control(t, "machines/"+victim.ID+"/freeze")
	f, _ := restoreVia(t, "fra", code, members[1])
	if f.Type != "error" || f.Message != "Try again" {
		t.Errorf("restore while the holder is frozen: %s, want Try again", f.Raw)
	}
	cluster.control(t, "machines/"+victim.ID+"/thaw")
	testutil.Eventually(t, 15*time.Second, "the room on its machine alone", func() bool {
		h := holders(t, code)
		return len(h) == 1 && h[0] == victim.ID
	})
	p := dial(t, "fra", "/"+code, nil)
	if j := join(t, p, code, members[1].id); j.Index != members[1].index {
		t.Errorf("after the thaw the member rejoined slot %d, want %d", j.Index, members[1].index)
	}
}

// TestRestoreTwoAtOnceAroundTheRendezvous: two members restore at once on
// the region's two machines, each pinned (around the rendezvous, as a
// pin's fallback may land): both may rebuild, and the copy that rebuilt
// second sees the first and one gives way. One room at the end.
func TestRestoreTwoAtOnceAroundTheRendezvous(t *testing.T) {
	local(t)
	fra := cluster.inRegion("fra")
	victim := fra[0]
	t.Cleanup(func() { cluster.restore(t, "machines/"+victim.ID+"/start") })
	code, members := ticketedRoom(t, "fra", victim.ID, 1)
	cluster.control(t, "machines/"+victim.ID+"/kill")
	cluster.control(t, "machines/"+victim.ID+"/start")
	var wg sync.WaitGroup
	socks := make([]*testutil.Client, len(members))
	for i, m := range members {
		wg.Go(func() {
			tk, st := m.held()
			p := dial(t, "fra", "/"+code+"?instance="+fra[i%2].ID, nil)
			p.SendJSON(map[string]any{"type": "restore", "clientId": m.id, "ticket": tk, "state": st})
			socks[i] = p
		})
	}
	wg.Wait()
	testutil.Eventually(t, 10*time.Second, "one holder", func() bool { return len(holders(t, code)) == 1 })
}
