package rooms

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/budget"
	"github.com/party-sockets/party-sockets/internal/wire"
)

// liveWindow is a room whose host and one member recover; the member
// stays live. n frames of size bytes are sent to the member.
func liveWindow(t *testing.T, m *Manager, n, size int) (*Room, *fakeMember) {
	t.Helper()
	host := &fakeMember{}
	r, err := m.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 8, Recover: true})
	if err != nil {
		t.Fatal(err)
	}
	r.PutState(AsMember(0, host), []byte(`"s"`))
	p := &fakeMember{}
	if _, _, err := m.Join(r.Code, "p", p, JoinOptions{Recover: true}); err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, payload(size))); err != nil {
			t.Fatal(err)
		}
	}
	return r, p
}

// window returns the seq of the oldest frame slot idx holds and how many.
func windowOf(r *Room, idx int) (first uint64, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.slotLocked(idx)
	return s.win.first(), len(s.win.entries)
}

// Issue 20 review, finding 4(c): live members' windows were never freed
// for anyone else. Reclaim takes, after vacant windows, the oldest frames
// of live windows, oldest first across the machine, from each window's
// oldest end: the newer room's window is untouched, and the older one's
// member, rejoining from before what it still holds, is told
// recovered: false and gets the state.
func TestReclaimTakesTheOldestLiveFramesMachineWide(t *testing.T) {
	b := budget.New(0)
	m, clk := windowManager(t, b, 1<<20)
	old, _ := liveWindow(t, m, 10, 1000)
	clk.Advance(10 * time.Second)
	young, _ := liveWindow(t, m, 10, 1000)
	need := int64(5 * allocBytes(1000))
	if freed := m.Reclaim(need); freed < need {
		t.Fatalf("Reclaim(%d) freed %d", need, freed)
	}
	if first, n := windowOf(young, 1); first != 1 || n != 10 {
		t.Fatalf("the younger room's window holds %d frames from seq %d; want all 10 from 1", n, first)
	}
	first, n := windowOf(old, 1)
	if n == 10 {
		t.Fatal("the older room's window lost nothing")
	}
	checkAccounts(t, m, b)
	back := &fakeMember{}
	since := uint64(0)
	if _, _, err := m.Join(old.Code, "p", back, JoinOptions{Recover: true, Since: &since}); err != nil {
		t.Fatal(err)
	}
	back.mu.Lock()
	got := strings.Join(back.frames, "\n")
	back.mu.Unlock()
	if !strings.Contains(got, `"recovered":false`) || !strings.Contains(got, `{"type":"state","data":"s"}`) {
		t.Fatalf("a rejoin from seq 0 with the window at %d (%d frames) got:\n%s", first, n, got)
	}
}

// With the budget full of live windows, a create frees their oldest
// frames and is made; before, it was refused for good.
func TestCreateFreesLiveWindows(t *testing.T) {
	b := budget.New(256 << 10)
	m, _ := windowManager(t, b, 1<<20)
	r, _ := liveWindow(t, m, 400, 1000) // the window fills the budget to its ceiling
	if _, n := windowOf(r, 1); b.Used() < b.Ceiling()-2048 || n == 400 {
		t.Fatalf("the window holds %d frames, the budget %d of its ceiling %d: not full", n, b.Used(), b.Ceiling())
	}
	if _, err := m.Create(CreateRequest{Member: &fakeMember{}, ClientID: "honest", MaxClients: 8}); err != nil {
		t.Fatalf("a create with the budget full of live windows: %v", err)
	}
	checkAccounts(t, m, b)
}

// What the server frees of its own (stale work) is asked for only when a
// slot, a room or a state would be refused after the windows, never for
// a window's frame: a frame costs nobody more than windows.
func TestStaleReclaimerIsTheLastResort(t *testing.T) {
	b := budget.New(256 << 10)
	m, _ := windowManager(t, b, 1<<20)
	host := &fakeMember{}
	r, _ := m.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 8})
	p := &fakeMember{}
	m.Join(r.Code, "p", p, JoinOptions{Recover: true})
	held := b.Ceiling() - b.Used() // the server's stale work, say
	b.Add(held)
	var asked atomic.Int32
	m.SetStaleReclaimer(func(want int64) {
		if asked.Add(1) == 2 {
			b.Add(-held) // the second time, it frees what it held
		}
	})
	r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, payload(1000)))
	if _, n := windowOf(r, 1); n != 0 || asked.Load() != 0 {
		t.Fatalf("a frame the budget cannot take: kept %d, the server asked %d times; want 0 and 0", n, asked.Load())
	}
	if _, _, err := m.Join(r.Code, "new", &fakeMember{}, JoinOptions{}); err != ErrOverBudget || asked.Load() != 1 {
		t.Fatalf("a new slot: %v, the server asked %d times; want %v, once", err, asked.Load(), ErrOverBudget)
	}
	if _, err := m.Create(CreateRequest{Member: &fakeMember{}, ClientID: "c", MaxClients: 8}); err != nil || asked.Load() != 2 {
		t.Fatalf("a create once the server frees: %v, asked %d times", err, asked.Load())
	}
}
