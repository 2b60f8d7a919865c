package rooms

import (
	"errors"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// counted is what a manager holds, counted the slow way: every room in the
// map, locked, its live members added up.
func counted(m *Manager) (rooms, clients int) {
	for _, r := range m.list() {
		r.mu.Lock()
		if !r.closed {
			rooms++
			clients += r.live
		}
		r.mu.Unlock()
	}
	return rooms, clients
}

// The live counts kept at the manager (Counts) and on each room (Lookup,
// Snapshot) follow every change of a room's members: joins, a reconnect
// that replaces a socket, blips and clean leaves, the host's close, the
// grace's end, a move (out of one manager, into another), a join on the
// new machine and an abort. After each step they equal the count made by
// locking every room.
func TestCountsFollowEveryChange(t *testing.T) {
	t.Parallel()
	clk := &testutil.FakeClock{}
	src, dst := machines(clk)
	host, p, again, host2 := &fakeMember{}, &fakeMember{}, &fakeMember{}, &fakeMember{}
	var a, b, c *Room
	steps := []struct {
		name     string
		do       func() error
		src, dst [2]int // rooms, clients
	}{
		{"create a", func() (err error) {
			a, err = src.Create(CreateRequest{Member: host, ClientID: "h", MaxClients: 4})
			return err
		}, [2]int{1, 1}, [2]int{}},
		{"join a", func() error { _, _, err := src.Join(a.Code, "p", p, JoinOptions{}); return err },
			[2]int{1, 2}, [2]int{}},
		{"p reconnects", func() error { _, _, err := src.Join(a.Code, "p", again, JoinOptions{}); return err },
			[2]int{1, 2}, [2]int{}},
		{"the replaced socket leaves", func() error { a.Leave(1, p, false); return nil },
			[2]int{1, 2}, [2]int{}},
		{"p blips", func() error { a.Leave(1, again, false); return nil }, [2]int{1, 1}, [2]int{}},
		{"create b", func() (err error) {
			b, err = src.Create(CreateRequest{Member: host2, ClientID: "h2", MaxClients: 2})
			return err
		}, [2]int{2, 2}, [2]int{}},
		{"a's host blips", func() error { a.Leave(0, host, false); return nil }, [2]int{2, 1}, [2]int{}},
		{"a's grace ends", func() error { clk.Advance(time.Minute); return nil }, [2]int{1, 1}, [2]int{}},
		{"b's host closes it", func() error { return b.End(AsMember(0, host2)) }, [2]int{}, [2]int{}},
		{"create c with two", func() (err error) {
			if c, err = src.Create(CreateRequest{Member: &fakeMember{}, ClientID: "h3", MaxClients: 4}); err != nil {
				return err
			}
			_, _, err = src.Join(c.Code, "q", &fakeMember{}, JoinOptions{})
			return err
		}, [2]int{1, 2}, [2]int{}},
		{"c moves", func() error { return src.Move(c.Code, "t1", "dst", viaJSON(dst)) },
			[2]int{}, [2]int{1, 0}},
		{"c's host rejoins on dst", func() error { _, _, err := dst.Join(c.Code, "h3", &fakeMember{}, JoinOptions{}); return err },
			[2]int{}, [2]int{1, 1}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		for _, m := range []struct {
			name string
			m    *Manager
			want [2]int
		}{{"src", src, st.src}, {"dst", dst, st.dst}} {
			rooms, clients := m.m.Counts()
			slowRooms, slowClients := counted(m.m)
			if [2]int{rooms, clients} != m.want || [2]int{slowRooms, slowClients} != m.want {
				t.Errorf("after %s: %s Counts() = %d, %d (locking every room: %d, %d), want %d, %d",
					st.name, m.name, rooms, clients, slowRooms, slowClients, m.want[0], m.want[1])
			}
			sum := 0
			for _, in := range m.m.Snapshot() {
				if in2, ok := m.m.Lookup(in.Code); !ok || in2 != in {
					t.Errorf("after %s: %s Lookup(%s) = %+v, %v; Snapshot has %+v", st.name, m.name, in.Code, in2, ok, in)
				}
				sum += in.Clients
			}
			if sum != clients {
				t.Errorf("after %s: %s Snapshot's clients add up to %d, Counts says %d", st.name, m.name, sum, clients)
			}
		}
	}
	if _, ok := src.Lookup(a.Code); ok {
		t.Error("Lookup finds a room whose grace ended")
	}
	// An aborted copy is dropped only while nobody has joined it: the host
	// leaves, the abort drops the room, and its count goes with it.
	in, _ := dst.Lookup(c.Code)
	moved := dst.Room(c.Code)
	moved.mu.Lock()
	host3 := moved.slotLocked(0).member
	moved.mu.Unlock()
	moved.Leave(0, host3, false)
	if dropped, err := dst.Abort(c.Code, "t1", ""); !dropped || err != nil {
		t.Fatalf("Abort: %v, %v (the room had %d live)", dropped, err, in.Clients)
	}
	if rooms, clients := dst.Counts(); rooms != 0 || clients != 0 {
		t.Fatalf("after the abort dst Counts() = %d, %d", rooms, clients)
	}
}

// Move holds the room's lock while send runs (the snapshot on its way to
// a sibling): Counts, Len, Lookup and Snapshot answer from within send, on
// the goroutine that holds the lock, so none takes it; and they still
// count the room, which is here until the move ends.
func TestCountsDuringAMoveTakeNoRoomLock(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	r := create(t, m, &fakeMember{}, 4)
	join(t, m, r.Code, "p", &fakeMember{})
	held := errors.New("held")
	err := m.Move(r.Code, "t", "dst", func(*Snapshot) error {
		if rooms, clients := m.Counts(); rooms != 1 || clients != 2 || m.Len() != 1 {
			t.Errorf("Counts() during the move = %d, %d, Len %d; want 1, 2, 1", rooms, clients, m.Len())
		}
		want := Info{Code: r.Code, Clients: 2, MaxClients: 4, Origin: "https://game.example"}
		if in, ok := m.Lookup(r.Code); !ok || in != want {
			t.Errorf("Lookup during the move = %+v, %v; want %+v", in, ok, want)
		}
		if all := m.Snapshot(); len(all) != 1 || all[0] != want {
			t.Errorf("Snapshot during the move = %+v", all)
		}
		return held
	})
	if err != held {
		t.Fatalf("Move: %v", err)
	}
}
