package rooms

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/budget"
	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/internal/ticket"
)

// issuer counts the issues a manager asks for, and makes each ticket's
// plaintext as the server would.
type issuer struct {
	mu     sync.Mutex
	plains []*ticket.Plain
}

func (is *issuer) issue(r *Room) {
	p, ok := r.TicketPlain()
	if !ok {
		return
	}
	is.mu.Lock()
	is.plains = append(is.plains, p)
	is.mu.Unlock()
	r.SendTicket([]byte(`{"type":"ticket"}`), false)
}

func (is *issuer) count() int {
	is.mu.Lock()
	defer is.mu.Unlock()
	return len(is.plains)
}

func (is *issuer) last() *ticket.Plain {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.plains[len(is.plains)-1]
}

func ticketManager(t *testing.T) (*Manager, *testutil.FakeClock, *issuer) {
	t.Helper()
	clk := &testutil.FakeClock{}
	is := &issuer{}
	m := NewManager(Config{Instance: "m1", Region: "fra", HostGrace: 2 * time.Minute, Clock: clk, Codes: &seqCodes{}})
	m.SetIssuer(is.issue)
	return m, clk, is
}

// TestTicketsCoalesced: a stranger's join churn makes at most one issue
// per TicketGap, the last one reflects the room as sealed, and a quiet
// room is issued again every ReissueEvery.
func TestTicketsCoalesced(t *testing.T) {
	t.Parallel()
	m, clk, is := ticketManager(t)
	host := &fakeMember{}
	r, err := m.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 2, Origin: "o", Tickets: true})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(0)
	if is.count() != 1 {
		t.Fatalf("after create: %d issues, want 1", is.count())
	}
	for i := range 50 { // churn: 50 joins and leaves within one gap
		mem := &fakeMember{}
		_, idx, _ := m.Join(r.Code, "stranger"+strings.Repeat("x", i), mem, JoinOptions{})
		r.Leave(idx, mem, false)
	}
	clk.Advance(TicketGap - time.Millisecond)
	if is.count() != 1 {
		t.Fatalf("within the gap: %d issues, want 1", is.count())
	}
	clk.Advance(time.Millisecond)
	if is.count() != 2 {
		t.Fatalf("after the gap: %d issues, want 2", is.count())
	}
	if p := is.last(); p.Next != 51 || len(p.Slots) != 16 {
		t.Errorf("last ticket: next %d, %d slots; want 51, 16 (the history)", p.Next, len(p.Slots))
	}
	clk.Advance(ticket.ReissueEvery)
	if is.count() != 3 {
		t.Fatalf("after a quiet minute: %d issues, want 3", is.count())
	}
	if a, b := is.plains[1].Version, is.last().Version; b <= a {
		t.Errorf("versions %d then %d: a reissue must grow it", a, b)
	}
}

// TestTicketsOptIn: a room whose members did not opt in issues nothing.
func TestTicketsOptIn(t *testing.T) {
	t.Parallel()
	m, clk, is := ticketManager(t)
	r := create(t, m, &fakeMember{}, 8)
	join(t, m, r.Code, "p1", &fakeMember{})
	clk.Advance(2 * ticket.ReissueEvery)
	if is.count() != 0 {
		t.Fatalf("%d issues in a room nobody opted in to tickets", is.count())
	}
}

func restoredManager(t *testing.T) (*Manager, *ticket.Plain) {
	t.Helper()
	m, clk, is := ticketManager(t)
	host, p1 := &fakeMember{}, &fakeMember{}
	r, _ := m.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 8, Origin: "o", Tickets: true})
	m.Join(r.Code, "p1", p1, JoinOptions{Tickets: true})
	r.setState(t, `{"round":2}`)
	clk.Advance(TicketGap)
	p := is.last()
	// The machine is lost: a new one rebuilds the room from p.
	m2, _, _ := ticketManager(t)
	return m2, p
}

func (r *Room) setState(t *testing.T, s string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.setStateLocked(-1, []byte(s)); err != nil {
		t.Fatal(err)
	}
}

// TestRestore: the rebuilt room has the ticket's code, slots and next
// index; the presenter is live in its own slot; the state comes back
// with its digest only; the other member rejoins its own slot.
func TestRestore(t *testing.T) {
	t.Parallel()
	m, p := restoredManager(t)
	p1 := &fakeMember{}
	if _, _, _, err := m.Restore(RestoreRequest{Plain: p, ClientID: "stranger", Member: p1}); err != ErrNotInTicket {
		t.Fatalf("a stranger's restore: %v, want %v", err, ErrNotInTicket)
	}
	r, idx, restored, err := m.Restore(RestoreRequest{Plain: p, ClientID: "p1", Member: p1, State: []byte(`{"round":1}`)})
	if err != nil || idx != 1 || !restored {
		t.Fatalf("Restore(p1) = %d, %v, %v; want 1, true, nil", idx, restored, err)
	}
	expectFrames(t, "p1", p1, `{"type":"joined","room":"`+p.Code+`","index":1,"peers":[],"restored":true}`)
	if r.state != nil {
		t.Fatalf("a state whose digest is not the ticket's was taken: %s", r.state)
	}
	host := &fakeMember{}
	_, hidx, restored, err := m.Restore(RestoreRequest{Plain: p, ClientID: "host", Member: host, State: []byte(`{"round":2}`)})
	if err != nil || hidx != 0 || restored {
		t.Fatalf("Restore(host) = %d, %v, %v; want 0, false (joined a room another restored), nil", hidx, restored, err)
	}
	expectFrames(t, "p1", p1, `{"type":"state","data":{"round":2}}`, `{"type":"peer_joined","index":0}`)
	expectFrames(
		t,
		"host",
		host,
		`{"type":"joined","room":"`+p.Code+`","index":0,"peers":[1],"rebuilt":true}`,
		`{"type":"state","data":{"round":2}}`,
	)
	if c := join(t, m, r.Code, "p2", &fakeMember{}); c != int(p.Next)+restoreIndexGap {
		t.Errorf("a new member got index %d, want the ticket's next %d past the gap %d", c, p.Next, restoreIndexGap)
	}
}

// TestRestoreRecovering: a member that recovers gets recovered: false
// in a rebuilt room, and the state.
func TestRestoreRecovering(t *testing.T) {
	t.Parallel()
	m, p := restoredManager(t)
	host := &fakeMember{}
	if _, _, _, err := m.Restore(RestoreRequest{Plain: p, ClientID: "host", Member: host, State: []byte(`{"round":2}`),
		Join: JoinOptions{Recover: true}}); err != nil {
		t.Fatal(err)
	}
	expectFrames(
		t,
		"host",
		host,
		`{"type":"joined","room":"`+p.Code+`","index":0,"peers":[],"restored":true,"seq":0,"recovered":false}`,
		`{"type":"state","data":{"round":2}}`,
	)
	p1 := &fakeMember{}
	since := uint64(42)
	if _, _, err := m.Join(p.Code, "p1", p1, JoinOptions{Recover: true, Since: &since}); err != nil {
		t.Fatalf("p1's recovering rejoin: %v", err)
	}
	expectFrames(t, "p1", p1, `{"type":"joined","room":"`+p.Code+`","index":1,"peers":[0],"rebuilt":true,"seq":0,"recovered":false}`,
		`{"type":"state","data":{"round":2}}`)
}

// TestRestoreMovesUp: an older ticket won the race; a newer one of the
// same epoch adds its slots and next index, so no index is handed out
// twice.
func TestRestoreMovesUp(t *testing.T) {
	t.Parallel()
	m, clk, is := ticketManager(t)
	host := &fakeMember{}
	r, _ := m.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 8, Origin: "o", Tickets: true})
	clk.Advance(0)
	old := is.last()
	m.Join(r.Code, "p1", &fakeMember{}, JoinOptions{Tickets: true})
	clk.Advance(TicketGap)
	newer := is.last()
	if old.Next != 1 || newer.Next != 2 {
		t.Fatalf("tickets' next: %d, %d; want 1, 2", old.Next, newer.Next)
	}
	m2, _, _ := ticketManager(t)
	r2, _, _, err := m2.Restore(RestoreRequest{Plain: old, ClientID: "host", Member: &fakeMember{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := m2.Restore(RestoreRequest{Plain: old, ClientID: "p1", Member: &fakeMember{}}); err != ErrNotInTicket {
		t.Fatalf("p1 with the old ticket: %v, want %v", err, ErrNotInTicket)
	}
	_, idx, restored, err := m2.Restore(RestoreRequest{Plain: newer, ClientID: "p1", Member: &fakeMember{}})
	if err != nil || idx != 1 || restored {
		t.Fatalf("p1 with the newer ticket: %d, %v, %v; want its own slot 1, joined, nil", idx, restored, err)
	}
	if got := join(t, m2, r2.Code, "p2", &fakeMember{}); got != 1+restoreIndexGap {
		t.Errorf("a new member got index %d after the move up, want %d (the first ticket's next past the gap)", got, 1+restoreIndexGap)
	}
	// An older ticket never lowers next.
	m2.Restore(RestoreRequest{Plain: old, ClientID: "host", Member: &fakeMember{}})
	if r2.next != 2+restoreIndexGap {
		t.Errorf("next is %d after an older ticket, want %d", r2.next, 2+restoreIndexGap)
	}
}

// TestRestoreOtherRoom: a ticket never joins a room of another lineage
// that took its code; the server answers Room exists.
func TestRestoreOtherRoom(t *testing.T) {
	t.Parallel()
	m, p := restoredManager(t)
	other, err := m.Create(CreateRequest{Member: &fakeMember{}, ClientID: "someone", MaxClients: 8, Origin: "o"})
	if err != nil || other.Code != p.Code {
		t.Fatalf("the test needs the same code: %v, %s vs %s", err, other.Code, p.Code)
	}
	if _, _, _, err := m.Restore(RestoreRequest{Plain: p, ClientID: "p1", Member: &fakeMember{}}); err != ErrOtherRoom {
		t.Fatalf("restore into another room with the code: %v, want %v", err, ErrOtherRoom)
	}
}

// TestRestoredRoomMoves: a restored room handed off keeps its lineage and
// its slots known by their ticket's key: their owners rejoin their own
// slots on the receiver.
func TestRestoredRoomMoves(t *testing.T) {
	t.Parallel()
	m, p := restoredManager(t)
	if _, _, _, err := m.Restore(RestoreRequest{Plain: p, ClientID: "host", Member: &fakeMember{}}); err != nil {
		t.Fatal(err)
	}
	var snap *Snapshot
	if err := m.Move(p.Code, "t1", "m2", func(s *Snapshot) error { snap = s; return nil }); err != nil {
		t.Fatal(err)
	}
	m2, _, _ := ticketManager(t)
	if err := m2.Import(snap); err != nil {
		t.Fatal(err)
	}
	r := m2.Room(p.Code)
	if e, _, from := r.Epoch(); from != p.Epoch || e == p.Epoch {
		t.Errorf("after the move: epoch %d from %d; want a new epoch from %d", e, from, p.Epoch)
	}
	if got := join(t, m2, p.Code, "p1", &fakeMember{}); got != 1 {
		t.Errorf("p1 rejoined slot %d after the move, want its own, 1", got)
	}
}

// restoreIntoLive makes a live room of host and p1 (recovering), relays
// messages 1 to n from the host, and restores p1 into it with its newest
// ticket and join; it returns what p1's new socket got.
func restoreIntoLive(t *testing.T, n int, join JoinOptions) (*Room, *fakeMember) {
	t.Helper()
	m, clk, is := ticketManager(t)
	r, _ := m.Create(CreateRequest{Member: &fakeMember{}, ClientID: "host", MaxClients: 8, Origin: "o", Tickets: true})
	m.Join(r.Code, "p1", &fakeMember{}, JoinOptions{Tickets: true, Recover: true})
	r.mu.Lock()
	for i := 1; i <= n; i++ {
		r.relayLocked(0, nil, []byte(`{"type":"message","from":0,"data":`+strconv.Itoa(i)+`}`))
	}
	r.mu.Unlock()
	clk.Advance(TicketGap)
	again := &fakeMember{}
	if _, _, restored, err := m.Restore(RestoreRequest{Plain: is.last(), ClientID: "p1", Member: again, Join: join}); err != nil ||
		restored {
		t.Fatalf("restore into the live room: %v, %v", restored, err)
	}
	return r, again
}

// TestRestoreIntoLiveRoomRecovering: a restore with recover into the live
// room is a join with recover: no frames replayed from 0, no
// "recovered" field.
func TestRestoreIntoLiveRoomRecovering(t *testing.T) {
	t.Parallel()
	r, again := restoreIntoLive(t, 1, JoinOptions{Recover: true})
	expectFrames(t, "p1", again, `{"type":"joined","room":"`+r.Code+`","index":1,"peers":[0],"seq":1}`)
}

// TestRestoreIntoLiveRoomWithSince: a restore that carries since into a
// room that is here already (it was handed off while its member waited)
// replays what the member missed, as a rejoin does. Before, since was
// dropped and the member silently missed it (the short drill: 17
// messages lost in a deploy with the DNS down).
func TestRestoreIntoLiveRoomWithSince(t *testing.T) {
	t.Parallel()
	since := uint64(1)
	r, again := restoreIntoLive(t, 2, JoinOptions{Recover: true, Since: &since})
	expectFrames(t, "p1", again, `{"type":"joined","room":"`+r.Code+`","index":1,"peers":[0],"seq":2,"recovered":true}`,
		`{"type":"message","from":0,"data":2,"seq":2}`)
}

// TestRestoredRoomCostsWhatItGivesBack: a rebuilt room reserves its own
// cost and its slots', as a created one does, and gives back exactly that
// when it ends. Before, it reserved only its slots and gave back 2 KiB
// more at its end: the budget drifted down for good with every restore.
func TestRestoredRoomCostsWhatItGivesBack(t *testing.T) {
	t.Parallel()
	_, p := restoredManager(t)
	b := budget.New(1 << 20)
	clk := &testutil.FakeClock{}
	m := NewManager(Config{Instance: "m2", Region: "fra", HostGrace: 2 * time.Minute, Clock: clk, Codes: &seqCodes{}, Budget: b})
	host := &fakeMember{}
	r, idx, restored, err := m.Restore(RestoreRequest{Plain: p, ClientID: "host", Member: host})
	if err != nil || !restored || idx != 0 {
		t.Fatalf("restore: %d, %v, %v", idx, restored, err)
	}
	if got, want := b.Used(), int64(RoomBytes+len(p.Slots)*SlotBytes); got < want {
		t.Fatalf("a rebuilt room holds %d of the budget, want at least %d (its own cost and its slots')", got, want)
	}
	if err := r.End(AsMember(0, host)); err != nil {
		t.Fatal(err)
	}
	if got := b.Used(); got != 0 {
		t.Fatalf("after the rebuilt room ended the budget holds %d, want 0", got)
	}
	// Ended here: a late restore of its ticket does not rebuild it, even
	// one that looked before the end (JoinOnly: its room was here).
	if _, _, _, err := m.Restore(RestoreRequest{Plain: p, ClientID: "p1", Member: &fakeMember{}}); err != ErrRoomEnded {
		t.Errorf("a restore after the end: %v, want %v", err, ErrRoomEnded)
	}
	if _, _, _, err := m.Restore(RestoreRequest{Plain: p, ClientID: "p1", Member: &fakeMember{}, JoinOnly: true}); err != ErrRestoreAgain {
		t.Errorf("a JoinOnly restore of a room gone since: %v, want %v", err, ErrRestoreAgain)
	}
}

// TestRejoinWithItsTicketTakesItsSlot: a room rebuilt from an early
// ticket does not know the members who joined after it; their rejoins
// carry their own newer ticket, which moves the room up first, so each
// takes back its own index. Before, the room gave them fresh indices in
// the order they came back, swapping two members' slots (an attack
// review of crash-proof rooms, finding 1).
func TestRejoinWithItsTicketTakesItsSlot(t *testing.T) {
	t.Parallel()
	m, clk, is := ticketManager(t)
	r, _ := m.Create(CreateRequest{Member: &fakeMember{}, ClientID: "host", MaxClients: 8, Origin: "o", Tickets: true})
	m.Join(r.Code, "p1", &fakeMember{}, JoinOptions{Tickets: true})
	clk.Advance(TicketGap)
	early := is.last() // host and p1
	m.Join(r.Code, "p2", &fakeMember{}, JoinOptions{Tickets: true})
	m.Join(r.Code, "p3", &fakeMember{}, JoinOptions{Tickets: true})
	clk.Advance(TicketGap)
	newer := is.last() // p2 at 2, p3 at 3
	m2, _, _ := ticketManager(t)
	if _, _, _, err := m2.Restore(RestoreRequest{Plain: early, ClientID: "p1", Member: &fakeMember{}}); err != nil {
		t.Fatal(err)
	}
	// A stranger joins the rebuilt room first: it takes none of the
	// indices the members who joined since hold.
	if _, idx, err := m2.Join(r.Code, "stranger", &fakeMember{}, JoinOptions{}); err != nil || idx < int(newer.Next) {
		t.Errorf("a stranger's join into the rebuilt room: slot %d, %v; want one past %d", idx, err, newer.Next)
	}
	// p3 is back first, then p2: each with its ticket.
	for _, c := range []struct {
		id   string
		want int
	}{{"p3", 3}, {"p2", 2}} {
		_, idx, err := m2.Join(r.Code, c.id, &fakeMember{}, JoinOptions{Tickets: true, Ticket: newer})
		if err != nil || idx != c.want {
			t.Errorf("%s rejoined with its ticket: slot %d, %v; want its own, %d", c.id, idx, err, c.want)
		}
	}
}
