package rooms

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/budget"
	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/internal/wire"
)

// viaJSON is a Move's send that carries the snapshot to dst through JSON,
// as the wire does.
func viaJSON(dst *Manager) func(*Snapshot) error {
	return func(s *Snapshot) error {
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		var in Snapshot
		if err := json.Unmarshal(b, &in); err != nil {
			return err
		}
		return dst.Import(&in)
	}
}

// moveRoom moves code from src to dst through JSON.
func moveRoom(t *testing.T, src, dst *Manager, code, transfer string) {
	t.Helper()
	if err := src.Move(code, transfer, "dst", viaJSON(dst)); err != nil {
		t.Fatalf("Move: %v", err)
	}
}

// machines is an old and a new machine's managers on one clock, with codes
// that do not collide.
func machines(clk Clock) (src, dst *Manager) {
	src = NewManager(Config{Instance: "old", Region: "fra", HostGrace: time.Minute, Clock: clk, Codes: &seqCodes{}})
	dst = NewManager(Config{Instance: "new", Region: "fra", HostGrace: time.Minute, Clock: clk, Codes: &seqCodes{n: 50}})
	return src, dst
}

// A room moves whole: members are closed with 1012 on the old machine and
// find, on the new one, their own slots, the retained state, and (those
// that recover) every frame since their seq, with the peer_left of the
// move; a fresh player gets the next index.
func TestMoveKeepsSlotsStateAndWindows(t *testing.T) {
	t.Parallel()
	clk := &testutil.FakeClock{}
	src, dst := machines(clk)
	host, p1, p2 := &fakeMember{}, &fakeMember{}, &fakeMember{}
	r, _ := src.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 4, Origin: "https://g.example", Recover: true})
	src.Join(r.Code, "p1", p1, JoinOptions{Recover: true})
	src.Join(r.Code, "p2", p2, JoinOptions{})
	r.PutState(AsMember(0, host), []byte(`{"round":3}`))
	r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, []byte(`"hi"`)))
	p1.take()

	moveRoom(t, src, dst, r.Code, "t1")
	for name, m := range map[string]*fakeMember{"host": host, "p1": p1, "p2": p2} {
		if code, _ := m.closed(); code != 1012 {
			t.Errorf("%s closed with %d on the old machine, want 1012", name, code)
		}
	}
	if src.Held(r.Code) || !dst.Held(r.Code) {
		t.Fatalf("after the move: old holds %v, new holds %v", src.Held(r.Code), dst.Held(r.Code))
	}
	// A member's call on the old machine after the move is told so (the
	// server forwards it); anyone else finds no room.
	if _, err := r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, nil)); err != ErrRoomMoved {
		t.Fatalf("a send on the old machine after the move: %v", err)
	}
	if _, err := r.Relay(AsMember(0, &fakeMember{}), nil, wire.MessageFrame(0, nil)); err != ErrRoomNotFound {
		t.Fatalf("a stranger's send after the move: %v", err)
	}

	back1 := &fakeMember{}
	if _, idx, err := dst.Join(r.Code, "p1", back1, since(3)); err != nil || idx != 1 {
		t.Fatalf("p1 rejoin: %d %v", idx, err)
	}
	// p1 saw seq 1..3 (peer_joined p2, state, message); the move adds
	// peer_left for the host (and p2), and p1's own departure is no frame.
	expectFrames(t, "p1", back1,
		`{"type":"joined","room":"`+r.Code+`","index":1,"peers":[],"seq":5,"recovered":true}`,
		`{"type":"peer_left","index":0,"seq":4}`,
		`{"type":"peer_left","index":2,"seq":5}`)
	back2 := &fakeMember{}
	if _, idx, _ := dst.Join(r.Code, "p2", back2, JoinOptions{}); idx != 2 {
		t.Fatalf("p2 came back as %d", idx)
	}
	expectFrames(
		t,
		"p2",
		back2,
		`{"type":"joined","room":"`+r.Code+`","index":2,"peers":[1]}`,
		`{"type":"state","data":{"round":3}}`,
	)
	fresh := &fakeMember{}
	if _, idx, _ := dst.Join(r.Code, "p3", fresh, JoinOptions{}); idx != 3 {
		t.Fatalf("a new player got index %d, want 3", idx)
	}
	if info, _ := dst.Lookup(r.Code); info.Origin != "https://g.example" || info.MaxClients != 4 || info.Clients != 3 {
		t.Fatalf("info after the move: %+v", info)
	}
}

// The host was away when the room moved: the grace it had left goes on;
// a host that was live starts a whole grace on the new machine.
func TestMoveCarriesTheHostGraceLeft(t *testing.T) {
	t.Parallel()
	clk := &testutil.FakeClock{}
	src, dst := machines(clk)
	host, p := &fakeMember{}, &fakeMember{}
	away, _ := src.Create(CreateRequest{Member: host, ClientID: "h", MaxClients: 4})
	src.Join(away.Code, "p", p, JoinOptions{})
	away.Leave(0, host, false)
	clk.Advance(40 * time.Second)
	live, _ := src.Create(CreateRequest{Member: &fakeMember{}, ClientID: "h2", MaxClients: 4})
	moveRoom(t, src, dst, away.Code, "a")
	moveRoom(t, src, dst, live.Code, "b")
	clk.Advance(21 * time.Second)
	if dst.Held(away.Code) {
		t.Fatal("the host grace restarted on the new machine")
	}
	if !dst.Held(live.Code) {
		t.Fatal("a room whose host was live ended before a whole grace")
	}
	clk.Advance(40 * time.Second)
	if dst.Held(live.Code) {
		t.Fatal("a moved room outlived its grace with nobody back")
	}
}

// A retry of a transfer is taken as done; another room's code, a forged
// snapshot or one over the budget is refused, and changes nothing.
func TestImportRefusals(t *testing.T) {
	t.Parallel()
	clk := &testutil.FakeClock{}
	b := budget.New(100 << 10)
	dst := NewManager(Config{Instance: "new", HostGrace: time.Minute, Clock: clk, Codes: &seqCodes{}, Budget: b})
	host := &fakeMember{}
	existing, _ := dst.Create(CreateRequest{Member: host, ClientID: "h", MaxClients: 4})
	key := strings.Repeat("ab", 32)
	snap := func() *Snapshot {
		return &Snapshot{Version: 1, Transfer: "x", Code: "QQQQ01", MaxClients: 4, Next: 1, GraceMs: -1,
			Slots: []SlotSnapshot{{Index: 0, Key: key, Live: true}}}
	}
	if err := dst.Import(snap()); err != nil {
		t.Fatal(err)
	}
	if err := dst.Import(snap()); err != nil {
		t.Fatalf("a retry of the same transfer: %v", err)
	}
	other := snap()
	other.Transfer = "y"
	if err := dst.Import(other); err != ErrCodeTaken {
		t.Fatalf("a second transfer of a held code: %v", err)
	}
	steal := snap()
	steal.Code, steal.Transfer = existing.Code, "z"
	if err := dst.Import(steal); err != ErrCodeTaken {
		t.Fatalf("a snapshot for a live room's code: %v", err)
	}
	expectFrames(t, "host", host, `{"type":"created","room":"`+existing.Code+`","instance":"new","region":"","index":0}`)
	if info, _ := dst.Lookup(existing.Code); info.Clients != 1 {
		t.Fatalf("the live room changed: %+v", info)
	}
	bad := []func(*Snapshot){
		func(s *Snapshot) { s.Version = 2 },
		func(s *Snapshot) { s.Code = "../x" },
		func(s *Snapshot) { s.MaxClients = 0 },
		func(s *Snapshot) { s.Slots = nil },
		func(s *Snapshot) { s.Slots[0].Key = "zz" },
		func(s *Snapshot) { s.Slots = append(s.Slots, SlotSnapshot{Index: 0, Key: key}) },
		func(s *Snapshot) { s.Slots[0].Index = 5 },
		func(s *Snapshot) { s.State = json.RawMessage(`{"a":`) },
		func(s *Snapshot) { s.GraceMs = 1 << 50 },
		func(s *Snapshot) { s.From = strings.Repeat("f", 65) },
		func(s *Snapshot) {
			s.Slots[0].Recover, s.Slots[0].Seq = true, 1
			s.Slots[0].Window = []FrameSnapshot{{Seq: 1, AgeMs: 1 << 62, Frame: "{}"}}
		},
		func(s *Snapshot) { s.Slots[0].Window = []FrameSnapshot{{Seq: 1, Frame: "{}"}} },
		func(s *Snapshot) {
			s.Slots[0].Recover, s.Slots[0].Seq = true, 1
			s.Slots[0].Window = []FrameSnapshot{{Seq: 1, Frame: "not json"}}
		},
		func(s *Snapshot) {
			for i := 1; i < 100; i++ {
				s.Slots = append(
					s.Slots,
					SlotSnapshot{Index: i, Key: strings.Repeat("0", 62) + string("0123456789abcdef"[i/16]) + string("0123456789abcdef"[i%16])},
				)
			}
			s.Next = 100
		},
	}
	for i, mutate := range bad {
		s := snap()
		s.Code, s.Transfer = "BAD"+string(rune('A'+i)), "bad"
		mutate(s)
		if err := dst.Import(s); !errors.Is(err, ErrHandoffFormat) && err != ErrStateTooLarge {
			t.Errorf("forged snapshot %d: %v", i, err)
		}
		if dst.Held(s.Code) {
			t.Errorf("forged snapshot %d made a room", i)
		}
	}
	big := snap()
	big.Code, big.Transfer = "BIG001", "big"
	big.Slots[0].Recover, big.Slots[0].Seq = true, 20
	for i := range 20 {
		frame := `{"type":"message","from":0,"data":"` + strings.Repeat("x", 8000) + `","seq":` + strconv.Itoa(i+1) + `}`
		big.Slots[0].Window = append(big.Slots[0].Window, FrameSnapshot{Seq: uint64(i + 1), Frame: frame})
	}
	if err := dst.Import(big); err != ErrOverBudget {
		t.Fatalf("a snapshot over the memory budget: %v", err)
	}
}

// A sender that could not learn whether its room arrived keeps it, and
// aborts the transfer: the copy goes, unless someone joined it already.
func TestAbortDropsAnUnusedCopy(t *testing.T) {
	t.Parallel()
	clk := &testutil.FakeClock{}
	b := budget.New(1 << 20)
	dst := NewManager(Config{Instance: "new", HostGrace: time.Minute, Clock: clk, Codes: &seqCodes{}, Budget: b})
	key := strings.Repeat("ab", 32)
	snap := func(code, transfer string) *Snapshot {
		return &Snapshot{Version: 1, Transfer: transfer, Code: code, MaxClients: 4, Next: 1, GraceMs: -1,
			Slots: []SlotSnapshot{{Index: 0, Key: key}}}
	}
	dst.Import(snap("ABORT1", "t1"))
	if dropped, _ := dst.Abort("ABORT1", "other", ""); dropped || !dst.Held("ABORT1") {
		t.Fatal("a wrong transfer id aborted the room")
	}
	if dropped, _ := dst.Abort("ABORT1", "t1", ""); !dropped || dst.Held("ABORT1") {
		t.Fatal("the unused copy is still here")
	}
	if b.Used() != 0 || clk.Pending() != 0 {
		t.Fatalf("an aborted room left %d bytes and %d timers", b.Used(), clk.Pending())
	}
	dst.Import(snap("ABORT2", "t2"))
	if _, _, err := dst.Join("ABORT2", "someone", &fakeMember{}, JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	if dropped, _ := dst.Abort("ABORT2", "t2", ""); dropped || !dst.Held("ABORT2") {
		t.Fatal("a room someone joined was aborted")
	}
	mine, _ := dst.Create(CreateRequest{Member: &fakeMember{}, ClientID: "h", MaxClients: 2})
	if dropped, _ := dst.Abort(mine.Code, "", ""); dropped {
		t.Fatal("a room made here was aborted")
	}
	// The abort overtook its transfer: the snapshot that comes after it is
	// refused.
	if dropped, _ := dst.Abort("ABORT3", "t3", ""); dropped {
		t.Fatal("dropped a room that is not here")
	}
	if err := dst.Import(snap("ABORT3", "t3")); err != ErrTransferAborted || dst.Held("ABORT3") {
		t.Fatalf("an aborted transfer arriving late: %v", err)
	}
}

// Move with a failing send leaves the room as it was.
func TestMoveFailureKeepsTheRoom(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	host := &fakeMember{}
	r := create(t, m, host, 4)
	host.take()
	if err := m.Move(r.Code, "t", "dst", func(*Snapshot) error { return errors.New("peer down") }); err == nil {
		t.Fatal("Move reported success")
	}
	if _, err := r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, nil)); err != nil {
		t.Fatalf("the room after a failed move: %v", err)
	}
	if code, _ := host.closed(); code != 0 {
		t.Fatalf("host closed with %d", code)
	}
}

// A message that waited for the room's lock while the room moved is not
// taken here: its sender learns ErrRoomMoved, and a forward (AsForward)
// delivers it on the new machine, numbered into the windows of the slots
// that recover.
func TestMessageDuringAMoveIsForwarded(t *testing.T) {
	t.Parallel()
	clk := &testutil.FakeClock{}
	src, dst := machines(clk)
	host, p := &fakeMember{}, &fakeMember{}
	r, _ := src.Create(CreateRequest{Member: host, ClientID: "h", MaxClients: 4, Recover: true})
	src.Join(r.Code, "p", p, JoinOptions{})
	result := make(chan error, 1)
	err := src.Move(r.Code, "t", "dst", func(s *Snapshot) error {
		go func() {
			_, err := r.Relay(AsMember(1, p), nil, wire.MessageFrame(1, []byte(`"mid-move"`)))
			result <- err
		}()
		testutil.Eventually(t, 5*time.Second, "the send to wait for the room's lock", func() bool {
			return testutil.Blocked("rooms.(*Room).Relay")
		})
		return viaJSON(dst)(s)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-result; err != ErrRoomMoved {
		t.Fatalf("the waiting send: %v", err)
	}
	moved := dst.Room(r.Code)
	if n, err := moved.Relay(AsForward("old", 1), nil, wire.MessageFrame(1, []byte(`"mid-move"`))); err != nil || n != 0 {
		t.Fatalf("Forwarded: %d %v", n, err)
	}
	back := &fakeMember{}
	dst.Join(r.Code, "h", back, since(0))
	expectFrames(t, "host", back,
		`{"type":"joined","room":"`+r.Code+`","index":0,"peers":[],"seq":3,"recovered":true}`,
		`{"type":"peer_joined","index":1,"seq":1}`,
		`{"type":"peer_left","index":1,"seq":2}`,
		`{"type":"message","from":1,"data":"mid-move","seq":3}`)
	if _, err := moved.Relay(AsForward("old", 7), nil, wire.MessageFrame(7, nil)); err != ErrNotInRoom {
		t.Fatalf("a forward from a slot that never existed: %v", err)
	}
}

// The old machine tells the backend where the room went, and never that
// it closed: it lives on.
func TestMoveEventNamesTheNewMachine(t *testing.T) {
	t.Parallel()
	var events []Event
	src := NewManager(Config{Instance: "old", HostGrace: time.Minute, Codes: &seqCodes{},
		Events: func(e Event) { events = append(events, e) }})
	dst := NewManager(Config{Instance: "new", HostGrace: time.Minute, Codes: &seqCodes{n: 50}})
	r, _ := src.Create(CreateRequest{Member: &fakeMember{}, ClientID: "h", MaxClients: 2})
	moveRoom(t, src, dst, r.Code, "t")
	last := events[len(events)-1]
	if last.Type != EventRoomMoved || last.To != "dst" || last.Room != r.Code {
		t.Fatalf("last event %+v", last)
	}
	for _, e := range events {
		if e.Type == EventRoomClosed {
			t.Fatalf("a moved room was reported closed: %+v", e)
		}
	}
}

// Issue 21, item 8: off Fly (no Instance, no Region) created says nothing
// of the machine, as the old relay did, but a hand-off's sender is
// LocalID: the id the server signs its calls as, which the receiver holds
// the snapshot's from to.
func TestOffFlyCreatedIsEmptyAndSenderLocal(t *testing.T) {
	t.Parallel()
	clk := &testutil.FakeClock{}
	src := NewManager(Config{HostGrace: time.Minute, Clock: clk, Codes: &seqCodes{}})
	host := &fakeMember{}
	r, err := src.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 2, URL: "https://g.example/{room}?m={instance}"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"created","room":"` + r.Code + `","instance":"","region":"","index":0,` +
		`"url":"https://g.example/` + r.Code + `?m="}`
	if got := host.take()[0]; got != want {
		t.Errorf("created = %s, want %s", got, want)
	}
	var from string
	err = src.Move(r.Code, "t1", "dst", func(s *Snapshot) error { from = s.From; return nil })
	if err != nil || from != LocalID {
		t.Fatalf("Move: %v, snapshot from %q, want %q", err, from, LocalID)
	}
}
