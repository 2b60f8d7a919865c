package rooms

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/budget"
	"github.com/party-sockets/party-sockets/internal/testutil"
)

// closedRooms records the room.closed events: room and reason.
type closedRooms struct {
	mu  sync.Mutex
	got []string
}

func (c *closedRooms) event(e Event) {
	if e.Type == EventRoomClosed {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.got = append(c.got, e.Room+" "+e.Reason)
	}
}

func (c *closedRooms) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// Issue 20 review, finding 7: hosts that drop without a close frame kept
// MAX_ROOMS full for their rooms' grace, and every create was refused. At
// the cap a create ends the room that has been empty longest (room.closed
// "evicted"); a room someone is back in is not empty; with no empty room
// left the create is refused.
func TestMaxRoomsEvictsTheLongestEmpty(t *testing.T) {
	clk := &testutil.FakeClock{}
	var closed closedRooms
	m := NewManager(Config{HostGrace: 2 * time.Minute, Clock: clk, Codes: &seqCodes{}, MaxRooms: 3, Events: closed.event})
	hosts := make([]*fakeMember, 3)
	var rs []*Room
	for i := range hosts {
		hosts[i] = &fakeMember{}
		rs = append(rs, create(t, m, hosts[i], 8))
	}
	rs[2].Leave(0, hosts[2], false) // empty first
	clk.Advance(time.Second)
	rs[0].Leave(0, hosts[0], false)
	clk.Advance(time.Second)
	rs[1].Leave(0, hosts[1], false)
	back := &fakeMember{}
	if _, _, err := m.Join(rs[1].Code, "host", back, JoinOptions{}); err != nil { // rs[1] is not empty again
		t.Fatal(err)
	}
	d := create(t, m, &fakeMember{}, 8)
	e := create(t, m, &fakeMember{}, 8)
	if _, err := m.Create(CreateRequest{Member: &fakeMember{}, ClientID: "f", MaxClients: 8}); err != ErrTooManyRooms {
		t.Fatalf("a create with every room live: %v, want %v", err, ErrTooManyRooms)
	}
	want := []string{rs[2].Code + " evicted", rs[0].Code + " evicted"}
	if got := closed.list(); !slices.Equal(got, want) {
		t.Fatalf("room.closed events %v, want %v", got, want)
	}
	if m.Len() != 3 || m.Room(d.Code) == nil || m.Room(e.Code) == nil || m.Room(rs[1].Code) == nil {
		t.Fatalf("%d rooms; want the two new ones and the one its host is back in", m.Len())
	}
}

// The budget counts a room's own cost as well as its slots: with every
// room live a create the budget cannot take answers Over memory budget;
// with empty rooms it ends the one empty longest, rather than be refused.
func TestCreateEvictsWhenTheBudgetIsFull(t *testing.T) {
	b := budget.New(64 << 10)
	clk := &testutil.FakeClock{}
	var closed closedRooms
	m := NewManager(Config{HostGrace: 2 * time.Minute, Clock: clk, Codes: &countCodes{}, Budget: b, Events: closed.event})
	type held struct {
		r *Room
		h *fakeMember
	}
	var rooms []held
	for {
		h := &fakeMember{}
		r, err := m.Create(CreateRequest{Member: h, ClientID: "h", MaxClients: 8})
		if err == ErrOverBudget {
			break
		}
		if err != nil || len(rooms) > 40 {
			t.Fatalf("create %d: %v", len(rooms), err)
		}
		rooms = append(rooms, held{r, h})
	}
	if want := int(b.Ceiling()) / (RoomBytes + SlotBytes); len(rooms) != want {
		t.Fatalf("%d rooms made before one was refused, want %d", len(rooms), want)
	}
	if got := closed.list(); len(got) != 0 {
		t.Fatalf("rooms closed while live: %v", got)
	}
	for _, x := range rooms { // every host blips: every room is empty, the first longest
		x.r.Leave(0, x.h, false)
		clk.Advance(time.Millisecond)
	}
	if _, err := m.Create(CreateRequest{Member: &fakeMember{}, ClientID: "n", MaxClients: 8}); err != nil {
		t.Fatalf("a create with empty rooms to evict: %v", err)
	}
	if got := closed.list(); !slices.Equal(got, []string{rooms[0].r.Code + " evicted"}) {
		t.Fatalf("room.closed events %v, want the first room's", got)
	}
}

// countCodes hands out codes that never repeat.
type countCodes struct {
	mu sync.Mutex
	n  int
}

func (c *countCodes) Next() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return fmt.Sprintf("Z%05d", c.n), nil
}

// RoomBytes covers what an empty room in its grace holds: measured as
// live heap over thousands of them (a real clock's timer each), with the
// host's slot counted apart (SlotBytes).
func TestRoomCostCoversItsHeap(t *testing.T) {
	const n = 5000
	m := NewManager(Config{HostGrace: time.Hour, Codes: &countCodes{}})
	hosts := make([]*nopMember, n)
	for i := range hosts {
		hosts[i] = &nopMember{}
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	for i, h := range hosts {
		r, err := m.Create(CreateRequest{Member: h, ClientID: fmt.Sprintf("%032x", i), MaxClients: 8,
			Origin: "https://game.example"})
		if err != nil {
			t.Fatal(err)
		}
		r.Leave(0, h, false) // the grace is armed: its timer is part of the cost
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	per := (int64(ms.HeapAlloc) - int64(before)) / n
	t.Logf("an empty room in its grace: %d bytes of heap; counted %d (RoomBytes %d + SlotBytes %d)",
		per, RoomBytes+SlotBytes, RoomBytes, SlotBytes)
	if per > RoomBytes+SlotBytes {
		t.Fatalf("an empty room holds %d bytes, the budget counts %d", per, RoomBytes+SlotBytes)
	}
	for _, r := range m.list() {
		r.End(AsBackend())
	}
	runtime.KeepAlive(hosts)
}

// Issue 20, second review, finding 4: a household whose Wi-Fi dropped had
// been empty longer than a stranger's fresh rooms, and was evicted first.
// Empty rooms go by what they cost a stranger to make: rooms only their
// host was ever in, then rooms another member joined but that were not
// played (two live together for playedToKeep in all), then games played;
// each longest empty first. A lone host's state lifts nothing; play adds
// up over several stretches; a guest who came and went lifts a room only
// to the middle tier, however long its host stayed.
func TestEvictionTakesTheCheapestRoomsFirst(t *testing.T) {
	clk := &testutil.FakeClock{}
	var closed closedRooms
	m := NewManager(Config{HostGrace: time.Hour, Clock: clk, Codes: &countCodes{}, MaxRooms: 6, Events: closed.event})
	// play makes a room whose members are live together for each of
	// stretches in turn (the last guest leaves and comes back between
	// two), the host alone for alone after, then everyone blips.
	play := func(guests int, alone time.Duration, stretches ...time.Duration) *Room {
		host := &fakeMember{}
		r := create(t, m, host, 8)
		mems := []*fakeMember{host}
		for i := range guests {
			mems = append(mems, &fakeMember{})
			join(t, m, r.Code, fmt.Sprintf("guest-%d", i), mems[i+1])
		}
		for i, d := range stretches {
			clk.Advance(d)
			if i < len(stretches)-1 {
				last := len(mems) - 1
				r.Leave(last, mems[last], false)
				clk.Advance(time.Minute) // not played: one member live
				mems[last] = &fakeMember{}
				join(t, m, r.Code, fmt.Sprintf("guest-%d", guests-1), mems[last])
			}
		}
		for i := len(mems) - 1; i >= 0; i-- {
			r.Leave(i, mems[i], false)
			if i == 1 {
				clk.Advance(alone)
			}
		}
		clk.Advance(time.Second)
		return r
	}
	game := play(3, 0, 5*time.Minute)                   // a real game, empty first
	early := play(1, 0, 10*time.Second)                 // blipped in its first seconds
	twice := play(1, 0, 20*time.Second, 15*time.Second) // 35 s played in two stretches
	lonely := play(1, 10*time.Minute, time.Second)      // a guest for a second, the host alone for long
	alone := play(0, 0)
	stated := play(0, 0)
	host := &fakeMember{}
	if _, _, err := m.Join(stated.Code, "host", host, JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := stated.PutState(AsMember(0, host), []byte(`{"lobby":true}`)); err != nil {
		t.Fatal(err)
	}
	stated.Leave(0, host, false)
	for range 6 {
		create(t, m, &fakeMember{}, 8) // each ends one empty room
	}
	if _, err := m.Create(CreateRequest{Member: &fakeMember{}, ClientID: "f", MaxClients: 8}); err != ErrTooManyRooms {
		t.Fatalf("a create with every room live: %v, want %v", err, ErrTooManyRooms)
	}
	var want []string
	for _, r := range []*Room{alone, stated, early, lonely, game, twice} {
		want = append(want, r.Code+" evicted")
	}
	if got := closed.list(); !slices.Equal(got, want) {
		t.Fatalf("eviction order\n  %v\nwant (alone, stated, early, lonely, game, twice)\n  %v", got, want)
	}
}

// Finding 4, the attacker's side: a stranger who joins its own rooms from
// a second socket lifts them past rooms only their host was in, but not
// past a game played: 40 such rooms made after the household blipped are
// all evicted before it, and so is a played room that went empty later.
func TestStrangersJoiningTheirOwnRoomsGoBeforeAGame(t *testing.T) {
	clk := &testutil.FakeClock{}
	var closed closedRooms
	m := NewManager(Config{HostGrace: 2 * time.Minute, Clock: clk, Codes: &countCodes{}, MaxRooms: 41, Events: closed.event})
	host, guest := &fakeMember{}, &fakeMember{}
	game := create(t, m, host, 8)
	join(t, m, game.Code, "phone", guest)
	clk.Advance(playedToKeep)
	game.Leave(1, guest, false)
	game.Leave(0, host, false)
	for i := range 40 {
		h, g := &fakeMember{}, &fakeMember{}
		r := create(t, m, h, 8)
		join(t, m, r.Code, fmt.Sprintf("sock-%d", i), g)
		clk.Advance(time.Second) // played a little, well under playedToKeep
		r.Leave(1, g, false)
		r.Leave(0, h, false)
	}
	for i := range 40 {
		create(t, m, &fakeMember{}, 8)
		if got := closed.list(); len(got) != i+1 || got[i] == game.Code+" evicted" {
			t.Fatalf("create %d at the cap: room.closed %v; the game must outlast the strangers' rooms", i, got[max(0, len(got)-1):])
		}
	}
	if m.Room(game.Code) == nil {
		t.Fatal("the game was evicted while the strangers' rooms were there")
	}
	create(t, m, &fakeMember{}, 8) // no other empty room: now it goes
	if got := closed.list(); got[len(got)-1] != game.Code+" evicted" {
		t.Fatalf("last eviction %v, want the game's", got[len(got)-1])
	}
}
