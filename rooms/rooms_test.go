package rooms

import (
	"fmt"
	"go/build"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/budget"
	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/internal/wire"
)

func TestCreateJoinBroadcast(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	host, a, b := &fakeMember{}, &fakeMember{}, &fakeMember{}
	r := create(t, m, host, 4)
	expectFrames(t, "host", host, `{"type":"created","room":"AAAA01","instance":"m1","region":"fra","index":0}`)
	if idx := join(t, m, r.Code, "a", a); idx != 1 {
		t.Fatalf("a got index %d", idx)
	}
	expectFrames(t, "a", a, `{"type":"joined","room":"AAAA01","index":1,"peers":[0]}`)
	expectFrames(t, "host", host, `{"type":"peer_joined","index":1}`)
	join(t, m, r.Code, "b", b)
	expectFrames(t, "b", b, `{"type":"joined","room":"AAAA01","index":2,"peers":[0,1]}`)

	if _, err := r.Relay(AsMember(1, a), nil, wire.MessageFrame(1, []byte(`{"x":1}`))); err != nil {
		t.Fatal(err)
	}
	expectFrames(t, "a", a, `{"type":"peer_joined","index":2}`)
	expectFrames(t, "b", b, `{"type":"message","from":1,"data":{"x":1}}`)
	expectFrames(t, "host", host, `{"type":"peer_joined","index":2}`, `{"type":"message","from":1,"data":{"x":1}}`)

	to := uint64(2)
	if _, err := r.Relay(AsMember(0, host), &to, wire.MessageFrame(0, nil)); err != nil {
		t.Fatal(err)
	}
	expectFrames(t, "b", b, `{"type":"message","from":0}`)
	expectFrames(t, "a", a)
	self := uint64(1)
	if _, err := r.Relay(AsMember(1, a), &self, wire.MessageFrame(1, nil)); err != nil {
		t.Fatalf("send to self: %v", err)
	}
	expectFrames(t, "a", a, `{"type":"message","from":1}`)
	for _, bad := range []uint64{3, 99, 1 << 53} {
		if _, err := r.Relay(AsMember(1, a), &bad, wire.MessageFrame(1, nil)); err != ErrTargetNotFound {
			t.Errorf("send to %d: %v, want %v", bad, err, ErrTargetNotFound)
		}
	}
}

func TestCapCountsLiveMembersAndIndicesAreNotReused(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	host, a, b, c := &fakeMember{}, &fakeMember{}, &fakeMember{}, &fakeMember{}
	r := create(t, m, host, 2)
	join(t, m, r.Code, "a", a)
	if _, _, err := m.Join(r.Code, "b", b, JoinOptions{}); err != ErrRoomFull {
		t.Fatalf("third join: %v, want %v", err, ErrRoomFull)
	}
	r.Leave(1, a, true)
	if idx := join(t, m, r.Code, "b", b); idx != 2 {
		t.Fatalf("b after a left got index %d, want 2", idx)
	}
	// a's slot is vacant but the room is full again: reclaim is refused.
	if _, _, err := m.Join(r.Code, "a", c, JoinOptions{}); err != ErrRoomFull {
		t.Fatalf("reclaim into full room: %v, want %v", err, ErrRoomFull)
	}
	r.Leave(2, b, true)
	host.take()
	if idx := join(t, m, r.Code, "a", c); idx != 1 {
		t.Fatalf("reclaim got index %d, want 1", idx)
	}
	expectFrames(t, "host", host, `{"type":"peer_joined","index":1}`)
	expectFrames(t, "c", c, `{"type":"joined","room":"AAAA01","index":1,"peers":[0]}`)
}

func TestReplaceClosesOldSocketSilently(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	host, a, a2 := &fakeMember{}, &fakeMember{}, &fakeMember{}
	r := create(t, m, host, 2)
	join(t, m, r.Code, "a", a)
	host.take()
	if idx := join(t, m, r.Code, "a", a2); idx != 1 {
		t.Fatalf("replace got index %d", idx)
	}
	if code, reason := a.closed(); code != 4000 || reason != "replaced" {
		t.Fatalf("old socket closed with %d %q, want 4000 replaced", code, reason)
	}
	expectFrames(t, "host", host)
	// The old socket going away afterwards causes nothing.
	r.Leave(1, a, true)
	expectFrames(t, "host", host)
	if _, err := r.Relay(AsMember(1, a), nil, wire.MessageFrame(1, nil)); err != ErrNotInRoom {
		t.Fatalf("send from replaced socket: %v", err)
	}
	if in, _ := r.Info(); in.Clients != 2 {
		t.Fatalf("clients = %d, want 2", in.Clients)
	}
}

func TestStateRetainedAndReplayedAfterJoined(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	host, a, b := &fakeMember{}, &fakeMember{}, &fakeMember{}
	r := create(t, m, host, 4)
	host.take()
	join(t, m, r.Code, "a", a)
	if err := r.PutState(AsMember(1, a), []byte(`1`)); err != ErrOnlyHostState {
		t.Fatalf("non-host set_state: %v", err)
	}
	if err := r.PutState(AsMember(0, host), nil); err != ErrStateRequired {
		t.Fatalf("set_state without data: %v", err)
	}
	if err := r.PutState(AsMember(0, host), make([]byte, MaxStateBytes+1)); err != ErrStateTooLarge {
		t.Fatalf("oversized state: %v", err)
	}
	a.take()
	if err := r.PutState(AsMember(0, host), []byte(`{"round":2}`)); err != nil {
		t.Fatal(err)
	}
	expectFrames(t, "a", a, `{"type":"state","data":{"round":2}}`)
	expectFrames(t, "host", host, `{"type":"peer_joined","index":1}`)
	join(t, m, r.Code, "b", b)
	expectFrames(t, "b", b, `{"type":"joined","room":"AAAA01","index":2,"peers":[0,1]}`, `{"type":"state","data":{"round":2}}`)
	if err := r.PutState(AsMember(0, host), []byte(`null`)); err != nil {
		t.Fatalf("null state: %v", err)
	}
	expectFrames(t, "b", b, `{"type":"state","data":null}`)
}

func TestCloseRoom(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	host, a := &fakeMember{}, &fakeMember{}
	r := create(t, m, host, 4)
	join(t, m, r.Code, "a", a)
	if err := r.End(AsMember(1, a)); err != ErrOnlyHostClose {
		t.Fatalf("non-host close: %v", err)
	}
	host.take()
	a.take()
	if err := r.End(AsMember(0, host)); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]*fakeMember{"host": host, "a": a} {
		if code, reason := f.closed(); code != 4001 || reason != "room closed" {
			t.Errorf("%s closed with %d %q", name, code, reason)
		}
		expectFrames(t, name, f)
	}
	if _, ok := m.Lookup(r.Code); ok {
		t.Fatal("closed room still found")
	}
	if _, _, err := m.Join(r.Code, "a", &fakeMember{}, JoinOptions{}); err != ErrRoomNotFound {
		t.Fatalf("join closed room: %v", err)
	}
}

func TestEmptyRoomIsDeletedAtOnce(t *testing.T) {
	t.Parallel()
	m, clk := newManager(t)
	host, a := &fakeMember{}, &fakeMember{}
	r := create(t, m, host, 4)
	join(t, m, r.Code, "a", a)
	r.Leave(1, a, true)
	r.Leave(0, host, true)
	if m.Held(r.Code) {
		t.Fatal("empty room still held")
	}
	if n := clk.Pending(); n != 0 {
		t.Fatalf("%d timers armed after the room ended", n)
	}
}

func TestHostGrace(t *testing.T) {
	t.Parallel()
	m, clk := newManager(t)
	host, a := &fakeMember{}, &fakeMember{}
	r := create(t, m, host, 4)
	join(t, m, r.Code, "a", a)
	a.take()
	r.Leave(0, host, true)
	expectFrames(t, "a", a, `{"type":"peer_left","index":0}`)
	clk.Advance(2*time.Minute - time.Millisecond)
	if !m.Held(r.Code) {
		t.Fatal("room ended before the grace window")
	}
	clk.Advance(time.Millisecond)
	if m.Held(r.Code) {
		t.Fatal("room outlived the grace window")
	}
	if code, _ := a.closed(); code != 4001 {
		t.Fatalf("member closed with %d, want 4001", code)
	}
}

func TestHostReclaimCancelsGrace(t *testing.T) {
	t.Parallel()
	m, clk := newManager(t)
	host, host2, a := &fakeMember{}, &fakeMember{}, &fakeMember{}
	r := create(t, m, host, 4)
	join(t, m, r.Code, "a", a)
	r.Leave(0, host, true)
	clk.Advance(time.Minute)
	if idx := join(t, m, r.Code, "host", host2); idx != 0 {
		t.Fatalf("host reclaimed index %d", idx)
	}
	clk.Advance(time.Hour)
	if !m.Held(r.Code) {
		t.Fatal("room ended although the host came back")
	}
	// A second departure arms a fresh, full window.
	r.Leave(0, host2, true)
	clk.Advance(2*time.Minute - time.Second)
	if !m.Held(r.Code) {
		t.Fatal("second grace window was shortened by the first")
	}
	clk.Advance(time.Second)
	if m.Held(r.Code) {
		t.Fatal("room outlived the second window")
	}
}

func TestMaxRooms(t *testing.T) {
	t.Parallel()
	clk := &testutil.FakeClock{}
	m := NewManager(Config{Clock: clk, Codes: &seqCodes{}, MaxRooms: 1})
	create(t, m, &fakeMember{}, 10)
	if _, err := m.Create(CreateRequest{Member: &fakeMember{}, ClientID: "x", MaxClients: 1}); err != ErrTooManyRooms {
		t.Fatalf("second room: %v", err)
	}
}

// Regression: a room once remembered a flat 1,000 clientIds and then
// refused every new player, so anyone who knew a code could lock the room
// in two seconds of churn. Now the history scales with the room, and the
// key vacant longest is forgotten (its index stays retired).
func TestSlotHistoryChurnNeverLocksTheRoom(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	host := &fakeMember{}
	r := create(t, m, host, 4)
	if r.history != 20 {
		t.Fatalf("history for maxClients 4 = %d, want 20", r.history)
	}
	// A player blips: its slot is vacant, reclaimable.
	p := &fakeMember{}
	join(t, m, r.Code, "player", p)
	r.Leave(1, p, true)
	// A stranger churns 1,000 keys.
	for i := range 1000 {
		mem := &fakeMember{}
		idx := join(t, m, r.Code, fmt.Sprintf("churn-%d", i), mem)
		if idx != i+2 {
			t.Fatalf("churn %d got index %d: indices must never be reused", i, idx)
		}
		r.Leave(idx, mem, true)
	}
	r.mu.Lock()
	n := len(r.slots)
	r.mu.Unlock()
	if n > r.history {
		t.Fatalf("room remembers %d slots, history is %d", n, r.history)
	}
	// A newcomer still gets in, with a fresh index.
	if idx := join(t, m, r.Code, "newcomer", &fakeMember{}); idx != 1002 {
		t.Fatalf("newcomer index %d, want 1002", idx)
	}
	// The blipped player's key was forgotten: it joins as new, never as 1.
	if idx := join(t, m, r.Code, "player", &fakeMember{}); idx == 1 {
		t.Fatal("a forgotten key reclaimed its retired index")
	}
	// The host's key is never forgotten.
	r.Leave(0, host, true)
	if idx := join(t, m, r.Code, "host", &fakeMember{}); idx != 0 {
		t.Fatalf("host reclaim after churn got %d", idx)
	}
}

// The room keeps a hash of each clientId, never the secret, and a long id
// is refused before it costs anything.
func TestClientIDIsHashedAndBounded(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	r := create(t, m, &fakeMember{}, 4)
	join(t, m, r.Code, "secret-id", &fakeMember{})
	r.mu.Lock()
	for k := range r.byKey {
		if strings.Contains(string(k[:]), "secret") {
			t.Fatal("room holds the clientId")
		}
	}
	r.mu.Unlock()
	long := strings.Repeat("x", MaxClientIDBytes+1)
	if _, _, err := m.Join(r.Code, long, &fakeMember{}, JoinOptions{}); err != ErrClientIDTooLong {
		t.Fatalf("join with a long id: %v", err)
	}
	if _, err := m.Create(CreateRequest{Member: &fakeMember{}, ClientID: long, MaxClients: 2}); err != ErrClientIDTooLong {
		t.Fatalf("create with a long id: %v", err)
	}
	uuid := "0f8fad5b-d9cb-469f-a165-70867728950e" // the old relay's clients
	join(t, m, r.Code, uuid, &fakeMember{})
}

// Regression: maxClients had no upper bound (1e308 was accepted).
func TestMaxClientsClamped(t *testing.T) {
	t.Parallel()
	m := NewManager(Config{Codes: &seqCodes{}, MaxMembers: 50})
	r := create(t, m, &fakeMember{}, 1e308)
	if r.MaxClients != 50 {
		t.Fatalf("maxClients = %v, want clamped to 50", r.MaxClients)
	}
	if r.history != slotHistory(50) {
		t.Fatalf("history %d follows the clamped cap", r.history)
	}
}

// What rooms hold counts in the budget, and all of it is released when the
// room ends.
func TestBudgetCountsSlotsAndState(t *testing.T) {
	t.Parallel()
	b := budget.New(0)
	m := NewManager(Config{Codes: &seqCodes{}, Budget: b, Clock: &testutil.FakeClock{}})
	host := &fakeMember{}
	r := create(t, m, host, 8)
	join(t, m, r.Code, "a", &fakeMember{})
	if err := r.PutState(AsMember(0, host), []byte(`{"big":"`+strings.Repeat("s", 1000)+`"}`)); err != nil {
		t.Fatal(err)
	}
	if used := b.Used(); used < 2*SlotBytes+1000 {
		t.Fatalf("budget used %d after two slots and a 1 KB state", used)
	}
	if err := r.End(AsMember(0, host)); err != nil {
		t.Fatal(err)
	}
	if used := b.Used(); used != 0 {
		t.Fatalf("budget used %d after the room ended", used)
	}
}

func TestCodesAreNotReusedWhileLive(t *testing.T) {
	t.Parallel()
	clk := &testutil.FakeClock{}
	codes := &repeatCodes{list: []string{"AAAAAA", "AAAAAA", "BBBBBB"}}
	m := NewManager(Config{Clock: clk, Codes: codes})
	r1 := create(t, m, &fakeMember{}, 2)
	r2 := create(t, m, &fakeMember{}, 2)
	if r1.Code == r2.Code {
		t.Fatalf("two live rooms share code %s", r1.Code)
	}
}

type repeatCodes struct{ list []string }

func (r *repeatCodes) Next() (string, error) {
	c := r.list[0]
	r.list = r.list[1:]
	return c, nil
}

func TestURLResolvedInCreatedAndJoined(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	host, a := &fakeMember{}, &fakeMember{}
	tpl, err := ParseTemplate("https://ctl.example/{room}?i={instance}")
	if err != nil {
		t.Fatal(err)
	}
	r, err := m.Create(CreateRequest{Member: host, ClientID: "h", MaxClients: 2, URL: tpl})
	if err != nil {
		t.Fatal(err)
	}
	expectFrames(
		t,
		"host",
		host,
		`{"type":"created","room":"AAAA01","instance":"m1","region":"fra","index":0,"url":"https://ctl.example/AAAA01?i=m1"}`,
	)
	join(t, m, r.Code, "a", a)
	expectFrames(t, "a", a, `{"type":"joined","room":"AAAA01","index":1,"peers":[0],"url":"https://ctl.example/AAAA01?i=m1"}`)
}

// Many rooms busy at once, under -race: each room only takes its own lock.
func TestConcurrentRooms(t *testing.T) {
	t.Parallel()
	m := NewManager(Config{Codes: &lockedCodes{}, HostGrace: time.Minute})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				host, a := &fakeMember{}, &fakeMember{}
				r, err := m.Create(CreateRequest{Member: host, ClientID: "h", MaxClients: 4})
				if err != nil {
					t.Error(err)
					return
				}
				_, idx, err := m.Join(r.Code, fmt.Sprint(g, i), a, JoinOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				for range 10 {
					_, _ = r.Relay(AsMember(idx, a), nil, wire.MessageFrame(idx, []byte("1")))
				}
				_ = r.PutState(AsMember(0, host), []byte("2"))
				r.Leave(idx, a, true)
				r.Leave(0, host, true)
			}
		}()
	}
	wg.Wait()
	if n := m.Len(); n != 0 {
		t.Fatalf("%d rooms left", n)
	}
}

type lockedCodes struct {
	mu sync.Mutex
	n  uint64
}

func (c *lockedCodes) Next() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return fmt.Sprintf("%06d", c.n), nil
}

// rooms must never reach the network: a test fails the build of that rule.
func TestNoNetworkImports(t *testing.T) {
	t.Parallel()
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if imp == "net" || (strings.HasPrefix(imp, "net/") && imp != "net/url") || strings.Contains(imp, "websocket") {
			t.Errorf("rooms imports %s", imp)
		}
	}
}
