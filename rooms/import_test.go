package rooms

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/budget"
	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/internal/wire"
)

// oneSlot is a snapshot of a room with only its host's slot, vacant.
func oneSlot(code, transfer string) *Snapshot {
	return &Snapshot{Version: 1, Transfer: transfer, From: "old", Code: code, MaxClients: 4, Next: 2, GraceMs: -1,
		Slots: []SlotSnapshot{{Index: 0, Key: strings.Repeat("ab", 32)}}}
}

// Issue 20: an import took a url create refuses (a javascript: one, with
// itself as host), and bytes no browser takes. It holds every field to
// create's rules now, and every frame to what this server sends.
func TestImportTakesOnlyWhatCreateWould(t *testing.T) {
	t.Parallel()
	dst := NewManager(Config{Instance: "new", HostGrace: time.Minute, Clock: &testutil.FakeClock{}, Codes: &seqCodes{}})
	recovering := func(s *Snapshot, frame string) {
		s.Slots[0].Recover, s.Slots[0].Seq = true, 1
		s.Slots[0].Window = []FrameSnapshot{{Seq: 1, Frame: frame}}
	}
	tests := []struct {
		name   string
		mutate func(*Snapshot)
		ok     bool
	}{
		{"an https url", func(s *Snapshot) { s.URL = "https://game.example/join/ROOM" }, true},
		{"a javascript: url", func(s *Snapshot) { s.URL = "javascript:alert(1)" }, false},
		{"an http url", func(s *Snapshot) { s.URL = "http://game.example/" }, false},
		{"a relative url", func(s *Snapshot) { s.URL = "/join" }, false},
		{"a url with a space", func(s *Snapshot) { s.URL = "https://game.example/ x" }, false},
		{"a url with a control character", func(s *Snapshot) { s.URL = "https://game.example/\x01" }, false},
		{"a url with a placeholder left", func(s *Snapshot) { s.URL = "https://game.example/{room}" }, false},
		{"a url too long", func(s *Snapshot) { s.URL = "https://game.example/" + strings.Repeat("a", MaxURLBytes) }, false},
		{"an origin not UTF-8", func(s *Snapshot) { s.Origin = "https://\xff.example" }, false},
		{"a state not UTF-8", func(s *Snapshot) { s.State = []byte("\"\xff\"") }, false},
		{"a transfer id with a space", func(s *Snapshot) { s.Transfer = "a b" }, false},
		{"a sender id with a newline", func(s *Snapshot) { s.From = "old\nforged" }, false},
		{"a kept frame", func(s *Snapshot) { recovering(s, `{"type":"message","from":1,"data":"hi","seq":1}`) }, true},
		{"a frame this server never sends", func(s *Snapshot) { recovering(s, `{}`) }, false},
		{"a frame of another type", func(s *Snapshot) { recovering(s, `{"type":"joined","seq":1}`) }, false},
		{"a frame numbered otherwise", func(s *Snapshot) { recovering(s, `{"type":"message","from":1,"seq":2}`) }, false},
		{
			"a frame not UTF-8",
			func(s *Snapshot) { recovering(s, "{\"type\":\"message\",\"from\":1,\"data\":\"\xff\",\"seq\":1}") },
			false,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := oneSlot("URL"+strconv.Itoa(i), "t"+strconv.Itoa(i))
			tt.mutate(s)
			err := dst.Import(s)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrHandoffFormat)) {
				t.Fatalf("Import = %v, want ok %v", err, tt.ok)
			}
			if dst.Held(s.Code) != tt.ok {
				t.Fatalf("held %v after Import = %v", dst.Held(s.Code), err)
			}
		})
	}
}

// A retry of a transfer whose room lives here is taken as done; once the
// room has ended, the transfer is refused, for as long as a call that
// carries it could still arrive. A try that arrives late (the sender
// retried, and the room ended meanwhile) cannot bring the room back.
func TestTransferRefusedOnceItsRoomEnded(t *testing.T) {
	t.Parallel()
	clk := &testutil.FakeClock{}
	dst := NewManager(Config{Instance: "new", HostGrace: time.Minute, Clock: clk, Codes: &seqCodes{}})
	if err := dst.Import(oneSlot("DONE01", "t1")); err != nil {
		t.Fatal(err)
	}
	if err := dst.Import(oneSlot("DONE01", "t1")); err != nil {
		t.Fatalf("a retry while the room lives: %v", err)
	}
	if err := dst.Room("DONE01").End(AsForward("old", 0)); err != nil {
		t.Fatal(err)
	}
	if err := dst.Import(oneSlot("DONE01", "t1")); err != ErrTransferDone || dst.Held("DONE01") {
		t.Fatalf("the transfer again after its room ended: %v (held %v)", err, dst.Held("DONE01"))
	}
	clk.Advance(TransferMemory - time.Second)
	if err := dst.Import(oneSlot("DONE01", "t1")); err != ErrTransferDone {
		t.Fatalf("the transfer again within its window: %v", err)
	}
	clk.Advance(2 * time.Second)
	if err := dst.Import(oneSlot("DONE01", "t1")); err != nil {
		t.Fatalf("the id past its window is forgotten: %v", err)
	}
}

// Issue 20: the table of aborted transfers cleared itself whole at 1,024
// ids, so an abort could be forgotten at once and its overtaken transfer
// taken late (two owners). The log forgets only by age: full, it refuses.
func TestAbortedTransfersAreNotForgottenWhenFull(t *testing.T) {
	t.Parallel()
	clk := &testutil.FakeClock{}
	dst := NewManager(Config{Instance: "new", HostGrace: time.Minute, Clock: clk, Codes: &seqCodes{}})
	for i := range MaxTransfers {
		if _, err := dst.Abort("GONE", "a"+strconv.Itoa(i), "old"); err != nil {
			t.Fatalf("abort %d: %v", i, err)
		}
	}
	if _, err := dst.Abort("GONE", "one-more", "old"); err != ErrTooManyTransfers {
		t.Fatalf("an abort past the bound: %v", err)
	}
	if err := dst.Import(oneSlot("LATE01", "a0")); err != ErrTransferAborted || dst.Held("LATE01") {
		t.Fatalf("the first aborted transfer, arriving late: %v", err)
	}
	if err := dst.Import(oneSlot("FRESH1", "fresh")); err != ErrTooManyTransfers || dst.Held("FRESH1") {
		t.Fatalf("a new transfer into a full log: %v", err)
	}
	clk.Advance(TransferMemory + time.Second)
	if err := dst.Import(oneSlot("FRESH1", "fresh")); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	if n := len(dst.transfers.seen); n != 1 {
		t.Fatalf("the log holds %d ids after the window, want 1", n)
	}
}

// A room that arrives costs the budget what it cost its sender: its
// windows are kept as the room's own are, each frame counted as allocated
// (here as a copy of the snapshot's bytes, there with wire.WithSeq's slack), so
// the two agree within a tenth. Once it ends, all of it is given back.
func TestImportCostsWhatTheRoomCostItsSender(t *testing.T) {
	t.Parallel()
	clk := &testutil.FakeClock{}
	srcBudget, dstBudget := budget.New(0), budget.New(0)
	src := NewManager(Config{Instance: "old", HostGrace: time.Minute, Clock: clk, Codes: &seqCodes{}, Budget: srcBudget})
	dst := NewManager(Config{Instance: "new", HostGrace: time.Minute, Clock: clk, Codes: &seqCodes{n: 50}, Budget: dstBudget})
	host := &fakeMember{}
	r, _ := src.Create(CreateRequest{Member: host, ClientID: "h", MaxClients: 8, Recover: true})
	players := make([]*fakeMember, 5)
	for i := range players {
		players[i] = &fakeMember{}
		src.Join(r.Code, "p"+strconv.Itoa(i), players[i], JoinOptions{Recover: i%2 == 0})
	}
	r.PutState(AsMember(0, host), []byte(`{"round":1,"board":"`+strings.Repeat("x", 500)+`"}`))
	for i := range 30 {
		r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, []byte(`{"n":`+strconv.Itoa(i)+`}`)))
	}
	// Everyone blips: no slot is live when the room moves, so the move
	// adds no peer_left to the windows.
	for i := len(players) - 1; i >= 0; i-- {
		r.Leave(i+1, players[i], false)
	}
	r.Leave(0, host, false)
	before := srcBudget.Used()
	if before < 30*60 {
		t.Fatalf("the room costs %d bytes on its sender: its windows are not counted", before)
	}
	moveRoom(t, src, dst, r.Code, "t")
	if got := dstBudget.Used(); got < before*9/10 || got > before*11/10 || srcBudget.Used() != 0 {
		t.Fatalf("the room cost %d on its sender, %d here (%d left there)", before, got, srcBudget.Used())
	}
	if err := dst.Room(r.Code).End(AsForward("old", 0)); err != nil {
		t.Fatal(err)
	}
	if got := dstBudget.Used(); got != 0 {
		t.Fatalf("the ended room left %d bytes counted", got)
	}
}

// Issue 20: a relay was accepted into any room, as any slot. Now only
// into a room that came from the relaying machine, from a slot it
// remembers; state and close only from the host's.
func TestForwardOnlyFromTheSender(t *testing.T) {
	t.Parallel()
	dst := NewManager(Config{Instance: "new", HostGrace: time.Minute, Clock: &testutil.FakeClock{}, Codes: &seqCodes{}})
	s := oneSlot("FWD001", "t")
	s.Slots = append(s.Slots, SlotSnapshot{Index: 1, Key: strings.Repeat("cd", 32)})
	if err := dst.Import(s); err != nil {
		t.Fatal(err)
	}
	moved := dst.Room("FWD001")
	mine, _ := dst.Create(CreateRequest{Member: &fakeMember{}, ClientID: "h", MaxClients: 4})
	msg := wire.MessageFrame(1, []byte(`"x"`))
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"the sender, a remembered slot", func() error { _, err := moved.Relay(AsForward("old", 1), nil, msg); return err }, nil},
		{"the previous release (unsigned)", func() error { _, err := moved.Relay(AsForward("", 1), nil, msg); return err }, nil},
		{"another machine", func() error { _, err := moved.Relay(AsForward("other", 1), nil, msg); return err }, ErrNotFromSender},
		{"a room made here", func() error { _, err := mine.Relay(AsForward("old", 0), nil, msg); return err }, ErrNotFromSender},
		{"a slot never remembered", func() error { _, err := moved.Relay(AsForward("old", 5), nil, msg); return err }, ErrNotInRoom},
		{
			"the backend's slot",
			func() error { _, err := moved.Relay(AsForward("old", ServerFrom), nil, msg); return err },
			ErrNotInRoom,
		},
		{"state from a guest", func() error { return moved.PutState(AsForward("old", 1), []byte(`1`)) }, ErrOnlyHostState},
		{
			"state too large",
			func() error { return moved.PutState(AsForward("old", 0), make([]byte, MaxStateBytes+1)) },
			ErrStateTooLarge,
		},
		{"close from a guest", func() error { return moved.End(AsForward("old", 1)) }, ErrOnlyHostClose},
		{"close from another machine", func() error { return moved.End(AsForward("other", 0)) }, ErrNotFromSender},
		{"close from the host", func() error { return moved.End(AsForward("old", 0)) }, nil},
	}
	for _, tt := range tests {
		if err := tt.call(); err != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if dst.Held("FWD001") {
		t.Fatal("the host's forwarded close did not end the room")
	}
}
