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
