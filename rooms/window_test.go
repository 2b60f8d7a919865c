package rooms

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/budget"
	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/internal/wire"
)

// The bounds on recovery windows (issue 20, finding 1): a room's windows
// together, the machine's budget, which refuses before anyone is shed,
// vacant windows first, the age sweep, and the overhead of every frame.

// windowManager is a manager with small windows' bounds on a fake clock.
func windowManager(t *testing.T, b *budget.Budget, roomBytes int) (*Manager, *testutil.FakeClock) {
	t.Helper()
	clk := &testutil.FakeClock{}
	m := NewManager(Config{Instance: "m1", Region: "fra", HostGrace: time.Minute, Clock: clk, Codes: &seqCodes{},
		Budget: b, RecoverRoomBytes: roomBytes})
	t.Cleanup(func() { checkAccounts(t, m, b) })
	return m, clk
}

// checkAccounts holds every count to what the rooms hold: each window's
// cost to its frames and array, the rooms' totals to their windows, the
// manager's vacant total to the rooms', the budget to all of it (nothing
// else uses it in these tests), and each window to the latest frames of
// its slot without a hole.
func checkAccounts(t *testing.T, m *Manager, b *budget.Budget) {
	t.Helper()
	var held, vacant int64
	for _, r := range m.list() {
		r.mu.Lock()
		win, vac := 0, 0
		for i := range r.slots {
			s := &r.slots[i]
			cost := s.win.arr * entryBytes
			frames := 0
			for j, e := range s.win.entries {
				cost += allocBytes(cap(e.frame))
				frames += len(e.frame)
				if want := s.seq - uint64(len(s.win.entries)-1-j); e.seq != want {
					t.Errorf("room %s slot %d: frame %d has seq %d, want %d (the slot's latest, no hole)", r.Code, s.index, j, e.seq, want)
				}
			}
			if cost != s.win.cost || frames != s.win.frames {
				t.Errorf(
					"room %s slot %d: window counts cost %d, frames %d; holds %d, %d",
					r.Code,
					s.index,
					s.win.cost,
					s.win.frames,
					cost,
					frames,
				)
			}
			win += cost
			if s.member == nil {
				vac += cost
			}
		}
		if win != r.winCost || vac != r.vacantCost {
			t.Errorf("room %s counts windows %d, vacant %d; holds %d, %d", r.Code, r.winCost, r.vacantCost, win, vac)
		}
		if win > m.cfg.RecoverRoomBytes {
			t.Errorf("room %s holds %d bytes of windows, over its bound %d", r.Code, win, m.cfg.RecoverRoomBytes)
		}
		held += int64(RoomBytes + len(r.slots)*SlotBytes + len(r.state) + win)
		vacant += int64(vac)
		r.mu.Unlock()
	}
	if vacant != m.vacant.Load() {
		t.Errorf("manager counts %d vacant bytes, rooms hold %d", m.vacant.Load(), vacant)
	}
	if b != nil && b.Used() != held {
		t.Errorf("budget counts %d, rooms hold %d", b.Used(), held)
	}
}

// awayPlayers joins n players that recover and leave with a blip, one
// clock tick apart (the first is away longest).
func awayPlayers(t *testing.T, m *Manager, clk *testutil.FakeClock, code string, n int) []*fakeMember {
	t.Helper()
	var out []*fakeMember
	for i := range n {
		p := &fakeMember{}
		_, idx, err := m.Join(code, fmt.Sprintf("away-%d", i), p, JoinOptions{Recover: true})
		if err != nil {
			t.Fatal(err)
		}
		m.Room(code).Leave(idx, p, false)
		clk.Advance(time.Millisecond)
		out = append(out, p)
	}
	return out
}

func payload(n int) []byte { return []byte(`"` + strings.Repeat("x", n) + `"`) }

// A room's windows together stay under RecoverRoomBytes (checkAccounts
// looks after every frame); live slots' windows slide: their oldest
// frames go, their latest stay.
func TestRoomWindowsHaveABound(t *testing.T) {
	t.Parallel()
	b := budget.New(0)
	m, _ := windowManager(t, b, 16<<10)
	host := &fakeMember{}
	r, _ := m.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 8, Recover: true})
	players := make([]*fakeMember, 4)
	for i := range players {
		players[i] = &fakeMember{}
		if _, _, err := m.Join(r.Code, fmt.Sprintf("p%d", i), players[i], JoinOptions{Recover: true}); err != nil {
			t.Fatal(err)
		}
	}
	for range 200 {
		r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, payload(500)))
		checkAccounts(t, m, b)
	}
	if r.winCost < 12<<10 || r.winCost > 16<<10 {
		t.Fatalf("the room holds %d bytes of windows, bound 16 KiB", r.winCost)
	}
	for idx := 1; idx <= 4; idx++ {
		if s := r.slotLocked(idx); len(s.win.entries) < 2 || s.win.first() == 1 {
			t.Fatalf("slot %d holds %d frames from seq %d of %d: want its latest, sliding", idx, len(s.win.entries), s.win.first(), s.seq)
		}
	}
}

// Vacant slots' windows go first, oldest vacancy first; a live slot keeps
// every frame meanwhile. A lapsed slot is no longer a target, and its
// rejoin says recovered: false and gets the state.
func TestVacantWindowsGoFirst(t *testing.T) {
	t.Parallel()
	b := budget.New(0)
	m, clk := windowManager(t, b, 64<<10) // room for two windows of 20 frames, and a bit
	host := &fakeMember{}
	r, _ := m.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 8})
	r.PutState(AsMember(0, host), []byte(`"s"`))
	live := &fakeMember{}
	m.Join(r.Code, "live", live, JoinOptions{Recover: true})
	awayPlayers(t, m, clk, r.Code, 3) // slots 2, 3, 4
	live.take()
	for range 20 {
		r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, payload(1000)))
	}
	for _, idx := range []int{2, 3} {
		if s := r.slotLocked(idx); !s.lapsed || s.win.cost != 0 {
			t.Fatalf("slot %d, away longer, kept %d bytes, lapsed %v", idx, s.win.cost, s.lapsed)
		}
	}
	if s := r.slotLocked(4); s.lapsed || s.win.cost == 0 {
		t.Fatalf("the slot away the shortest lost its window first (lapsed %v)", s.lapsed)
	}
	if s := r.slotLocked(1); len(s.win.entries) != 3+3+20 {
		t.Fatalf(
			"the live slot holds %d frames, want all 26 (3 joins, 3 leaves, 20 messages): vacant windows were to go first",
			len(s.win.entries),
		)
	}
	to := uint64(2)
	if _, err := r.Relay(AsMember(0, host), &to, wire.MessageFrame(0, nil)); err != ErrTargetNotFound {
		t.Fatalf("a targeted send to a lapsed slot: %v, want %v", err, ErrTargetNotFound)
	}
	for _, since := range []uint64{0, 1, 5} {
		back := &fakeMember{}
		if _, _, err := m.Join(r.Code, "away-0", back, JoinOptions{Recover: true, Since: &since}); err != nil {
			t.Fatalf("rejoin of a lapsed slot since %d: %v", since, err)
		}
		got := back.take()
		if len(got) != 2 || !strings.Contains(got[0], `"recovered":false`) || got[1] != `{"type":"state","data":"s"}` {
			t.Fatalf("rejoin of a lapsed slot since %d: %q", since, got)
		}
		r.Leave(2, back, false)
	}
}

// The machine's budget refuses a frame instead of counting it; the room's
// own vacant windows go first, then a live slot's oldest frames, and a
// live slot whose frame still cannot be kept loses its window: never a
// hole that a rejoin would be told was recovered.
func TestBudgetRefusesWindowFrames(t *testing.T) {
	t.Parallel()
	b := budget.New(64 << 10)
	m, _ := windowManager(t, b, 1<<20)
	host := &fakeMember{}
	r, _ := m.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 8})
	p := &fakeMember{}
	m.Join(r.Code, "p", p, JoinOptions{Recover: true})
	for range 200 {
		r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, payload(1000)))
		if b.Used() > b.Limit() {
			t.Fatalf("budget %d over its limit %d", b.Used(), b.Limit())
		}
	}
	s := r.slotLocked(1)
	if len(s.win.entries) == 0 || s.win.first() == 1 {
		t.Fatalf("the live slot's window did not slide: %d frames from %d", len(s.win.entries), s.win.first())
	}
	// Something that only counts (a send queue) takes the rest: a frame
	// larger than the whole window cannot be kept; the window restarts
	// after the gap.
	hold := b.Limit() - b.Used()
	b.Add(hold)
	r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, payload(60_000)))
	b.Add(-hold)
	gap := s.seq
	if len(s.win.entries) != 0 {
		t.Fatalf("a refused frame left %d frames in the window: a hole", len(s.win.entries))
	}
	r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, payload(10)))
	r.Leave(1, p, false)
	for _, c := range []struct {
		since     uint64
		recovered bool
		frames    int
	}{{gap - 1, false, 1}, {gap, true, 2}} {
		back := &fakeMember{}
		m.Join(r.Code, "p", back, since(c.since))
		got := back.take()
		if want := fmt.Sprintf(`"recovered":%v`, c.recovered); len(got) != c.frames || !strings.Contains(got[0], want) {
			t.Fatalf("rejoin since %d (the gap at %d): %q, want %s and %d frames", c.since, gap, got, want, c.frames)
		}
		r.Leave(1, back, false)
	}
}

// When the budget is short, vacant windows across the machine are freed,
// oldest vacancy first: by the server's shedding (ReclaimVacant), and in
// the background when a room's frame is refused.
func TestMachineReclaimsVacantWindowsOldestFirst(t *testing.T) {
	t.Parallel()
	b := budget.New(0)
	m, clk := windowManager(t, b, 1<<20)
	var rooms []*Room
	for i := range 3 {
		host := &fakeMember{}
		r, _ := m.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 8})
		awayPlayers(t, m, clk, r.Code, 2)
		for range 10 {
			r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, payload(1000)))
		}
		rooms = append(rooms, r)
		clk.Advance(time.Duration(i+1) * time.Second)
	}
	cost := func(r *Room) int { r.mu.Lock(); defer r.mu.Unlock(); return r.vacantCost }
	first := cost(rooms[0])
	if freed := m.ReclaimVacant(int64(first)); freed < int64(first) {
		t.Fatalf("ReclaimVacant(%d) freed %d", first, freed)
	}
	if cost(rooms[0]) != 0 || cost(rooms[2]) == 0 {
		t.Fatalf("after freeing the oldest room's worth: vacant bytes %d, %d, %d; want the oldest gone, the newest kept",
			cost(rooms[0]), cost(rooms[1]), cost(rooms[2]))
	}
	checkAccounts(t, m, b)

	// A frame that does not fit frees the machine's vacant windows first,
	// before the live slot's own: it is kept at once.
	for _, r := range rooms {
		r.End(AsBackend())
	}
	b2 := budget.New(64 << 10)
	m2, clk2 := windowManager(t, b2, 1<<20)
	a, _ := m2.Create(CreateRequest{Member: &fakeMember{}, ClientID: "a", MaxClients: 8})
	awayPlayers(t, m2, clk2, a.Code, 2)
	for range 10 {
		a.Relay(AsBackend(), nil, wire.MessageFrame(ServerFrom, payload(1000)))
	}
	other, _ := m2.Create(CreateRequest{Member: &fakeMember{}, ClientID: "b", MaxClients: 8})
	p := &fakeMember{}
	m2.Join(other.Code, "p", p, JoinOptions{Recover: true})
	hold := b2.Ceiling() - b2.Used() - 100 // what only counts (send queues) takes the rest
	b2.Add(hold)
	defer b2.Add(-hold)
	if m2.vacant.Load() == 0 {
		t.Fatal("no vacant window to free")
	}
	other.Relay(AsBackend(), nil, wire.MessageFrame(ServerFrom, payload(1000)))
	other.mu.Lock()
	kept := len(other.slotLocked(1).win.entries)
	other.mu.Unlock()
	if kept != 1 || m2.vacant.Load() != 0 {
		t.Fatalf("the live slot kept %d frames, %d vacant bytes left elsewhere; want 1 and 0", kept, m2.vacant.Load())
	}
}

// A slot vacant for the window's age stops being numbered, with no
// traffic to notice it: the age sweep frees its window. It is no longer a
// target; its rejoin says recovered: false, gets the state, and numbering
// goes on from the seq it skipped.
func TestAgeSweepLapsesVacantSlots(t *testing.T) {
	t.Parallel()
	b := budget.New(0)
	m, clk := windowManager(t, b, 1<<20)
	host := &fakeMember{}
	r, _ := m.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 8})
	r.PutState(AsMember(0, host), []byte(`"s"`))
	p := &fakeMember{}
	m.Join(r.Code, "p", p, JoinOptions{Recover: true})
	r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, payload(100))) // seq 1
	r.Leave(1, p, false)
	r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, payload(100))) // seq 2, kept while away
	held := b.Used()
	clk.Advance(time.Minute - time.Millisecond)
	if s := r.slotLocked(1); s.lapsed || b.Used() != held {
		t.Fatal("the slot lapsed before the window's age")
	}
	clk.Advance(m.ageSlack() + time.Millisecond)
	r.mu.Lock()
	s := r.slotLocked(1)
	lapsed, cost, seq := s.lapsed, s.win.cost, s.seq
	r.mu.Unlock()
	if !lapsed || cost != 0 || seq != 3 {
		t.Fatalf(
			"after the window's age: lapsed %v, window %d bytes, seq %d; want lapsed, empty, seq 3 (one skipped)",
			lapsed,
			cost,
			seq,
		)
	}
	to := uint64(1)
	if _, err := r.Relay(AsMember(0, host), &to, wire.MessageFrame(0, nil)); err != ErrTargetNotFound {
		t.Fatalf("a targeted send to a lapsed slot: %v", err)
	}
	back := &fakeMember{}
	m.Join(r.Code, "p", back, since(1))
	expectFrames(
		t,
		"rejoined",
		back,
		`{"type":"joined","room":"AAAA01","index":1,"peers":[0],"seq":3,"recovered":false}`,
		`{"type":"state","data":"s"}`,
	)
	r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, nil))
	expectFrames(t, "rejoined", back, `{"type":"message","from":0,"seq":4}`)
	r.End(AsBackend())
	if n := clk.Pending(); n != 0 {
		t.Fatalf("%d timers left after the room ended", n)
	}
}

// What a window counts is what it holds: each frame as allocated, and the
// array of entries with its spare room, not only the payload.
func TestWindowCountsItsOverhead(t *testing.T) {
	t.Parallel()
	b := budget.New(0)
	m, clk := windowManager(t, b, 1<<20)
	host := &fakeMember{}
	r, _ := m.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 8})
	awayPlayers(t, m, clk, r.Code, 1)
	base := b.Used()
	payloadBytes := 0
	for range 100 {
		f := wire.MessageFrame(0, nil) // {"type":"message","from":0}: 26 bytes
		payloadBytes += len(f) + len(`,"seq":100`)
		r.Relay(AsMember(0, host), nil, f)
	}
	r.mu.Lock()
	w := r.slotLocked(1).win
	r.mu.Unlock()
	counted := int(b.Used() - base)
	if counted != w.cost || w.arr < len(w.entries) {
		t.Fatalf("budget counts %d, the window %d", counted, w.cost)
	}
	if min := payloadBytes + 100*entryBytes; counted < min {
		t.Fatalf("100 small frames count %d bytes; their payload and entries alone are %d", counted, min)
	}
	t.Logf("100 frames of ~36 bytes: %d bytes counted (%d per frame)", counted, counted/100)
	r.End(AsBackend())
	if b.Used() != 0 {
		t.Fatalf("budget %d after the room ended", b.Used())
	}
}

// With the budget spent, what a client would add for the room's life is
// refused, not counted: a new slot (create, join), a larger state. A
// player taking back its own slot costs nothing and is let in.
func TestSpentBudgetRefusesSlotsAndState(t *testing.T) {
	t.Parallel()
	b := budget.New(1 << 20)
	m, _ := windowManager(t, b, 1<<20)
	host := &fakeMember{}
	r, _ := m.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 8})
	p := &fakeMember{}
	join(t, m, r.Code, "p", p)
	hold := b.Ceiling() - b.Used() // what can be refused is refused from here
	b.Add(hold)
	defer b.Add(-hold)
	if _, err := m.Create(CreateRequest{Member: &fakeMember{}, ClientID: "h2", MaxClients: 8}); err != ErrOverBudget {
		t.Fatalf("create with the budget spent: %v", err)
	}
	if _, _, err := m.Join(r.Code, "new", &fakeMember{}, JoinOptions{}); err != ErrOverBudget {
		t.Fatalf("a new slot with the budget spent: %v", err)
	}
	if err := r.PutState(AsMember(0, host), []byte(`"more"`)); err != ErrOverBudget {
		t.Fatalf("a state with the budget spent: %v", err)
	}
	r.Leave(1, p, false)
	if _, _, err := m.Join(r.Code, "p", &fakeMember{}, JoinOptions{}); err != nil {
		t.Fatalf("taking back an own slot with the budget spent: %v", err)
	}
	if m.Len() != 1 {
		t.Fatalf("%d rooms", m.Len())
	}
}

// A room that arrives by hand-off is held to this machine's room bound:
// its oldest vacancies lapse (all its slots arrive vacant).
func TestImportHoldsWindowsToTheRoomBound(t *testing.T) {
	t.Parallel()
	clk := &testutil.FakeClock{}
	src := NewManager(Config{Instance: "old", Region: "fra", HostGrace: time.Minute, Clock: clk, Codes: &seqCodes{}})
	b := budget.New(0)
	dst := NewManager(Config{Instance: "new", Region: "fra", HostGrace: time.Minute, Clock: clk, Codes: &seqCodes{n: 50},
		Budget: b, RecoverRoomBytes: 8 << 10})
	host := &fakeMember{}
	r, _ := src.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 8, Recover: true})
	awayPlayers(t, src, clk, r.Code, 4)
	for range 10 {
		r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, payload(500)))
	}
	moveRoom(t, src, dst, r.Code, "t1")
	got := dst.Room(r.Code)
	got.mu.Lock()
	lapsed := 0
	for i := range got.slots {
		if got.slots[i].lapsed {
			lapsed++
		}
	}
	got.mu.Unlock()
	if lapsed == 0 {
		t.Fatal("no slot lapsed: the room arrived with more windows than its bound")
	}
	checkAccounts(t, dst, b)
}
