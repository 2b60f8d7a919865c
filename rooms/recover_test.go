package rooms

import (
	"fmt"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/budget"
	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/internal/wire"
)

func since(n uint64) JoinOptions { return JoinOptions{Recover: true, Since: &n} }

// A player that blips while the host sends broadcasts and targeted
// messages gets every one back on rejoin, in order, with its seq, and then
// live traffic; the state is not replayed because nothing was lost.
func TestRecoveryReplaysWhatASlotMissed(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	host := &fakeMember{}
	r, _ := m.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 4, Recover: true})
	expectFrames(t, "host", host, `{"type":"created","room":"AAAA01","instance":"m1","region":"fra","index":0,"seq":0}`)
	p := &fakeMember{}
	if _, _, err := m.Join(r.Code, "p", p, JoinOptions{Recover: true}); err != nil {
		t.Fatal(err)
	}
	expectFrames(t, "player", p, `{"type":"joined","room":"AAAA01","index":1,"peers":[0],"seq":0}`)
	expectFrames(t, "host", host, `{"type":"peer_joined","index":1,"seq":1}`)
	r.PutState(AsMember(0, host), []byte(`{"round":1}`))
	expectFrames(t, "player", p, `{"type":"state","data":{"round":1},"seq":1}`)

	r.Leave(1, p, false) // a blip
	to := uint64(1)
	for i := range 3 {
		r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, []byte(fmt.Sprint(i))))
		if _, err := r.Relay(AsMember(0, host), &to, wire.MessageFrame(0, []byte(fmt.Sprint(10+i)))); err != nil {
			t.Fatalf("a targeted send to a slot that recovers: %v", err)
		}
	}
	back := &fakeMember{}
	if _, _, err := m.Join(r.Code, "p", back, since(1)); err != nil {
		t.Fatal(err)
	}
	expectFrames(t, "rejoined player", back,
		`{"type":"joined","room":"AAAA01","index":1,"peers":[0],"seq":7,"recovered":true}`,
		`{"type":"message","from":0,"data":0,"seq":2}`,
		`{"type":"message","from":0,"data":10,"seq":3}`,
		`{"type":"message","from":0,"data":1,"seq":4}`,
		`{"type":"message","from":0,"data":11,"seq":5}`,
		`{"type":"message","from":0,"data":2,"seq":6}`,
		`{"type":"message","from":0,"data":12,"seq":7}`)
	r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, []byte(`"live"`)))
	expectFrames(t, "rejoined player", back, `{"type":"message","from":0,"data":"live","seq":8}`)

	// Nothing missed: recovered, nothing replayed.
	again := &fakeMember{}
	m.Join(r.Code, "p", again, since(8))
	expectFrames(t, "player", again, `{"type":"joined","room":"AAAA01","index":1,"peers":[0],"seq":8,"recovered":true}`)
	if _, _, err := m.Join(r.Code, "p", &fakeMember{}, since(9)); err != ErrSinceAhead {
		t.Fatalf("since ahead: %v", err)
	}
}

// Away longer than the window holds: recovered false, then the state.
func TestRecoveryWindowBounds(t *testing.T) {
	t.Parallel()
	clk := &testutil.FakeClock{}
	m := NewManager(Config{Instance: "m1", Region: "fra", HostGrace: time.Minute, Clock: clk, Codes: &seqCodes{}, RecoverFrames: 4})
	host := &fakeMember{}
	r, _ := m.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 4})
	r.PutState(AsMember(0, host), []byte(`"s"`))
	p := &fakeMember{}
	m.Join(r.Code, "p", p, JoinOptions{Recover: true})
	r.Leave(1, p, false)
	for i := range 5 {
		r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, []byte(fmt.Sprint(i))))
	}
	back := &fakeMember{}
	m.Join(r.Code, "p", back, since(0))
	expectFrames(
		t,
		"player",
		back,
		`{"type":"joined","room":"AAAA01","index":1,"peers":[0],"seq":5,"recovered":false}`,
		`{"type":"state","data":"s"}`,
	)
	// Age: away longer than the window's age, the slot lapsed: its frames
	// are gone and it skipped a seq (7), so it cannot be told recovered.
	r.Leave(1, back, false)
	r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, []byte(`"old"`)))
	clk.Advance(2 * time.Minute)
	late := &fakeMember{}
	if _, _, err := m.Join(r.Code, "p", late, since(5)); err != nil {
		t.Fatal(err)
	}
	if got := late.take(); len(got) != 2 ||
		got[0] != `{"type":"joined","room":"AAAA01","index":1,"peers":[0],"seq":7,"recovered":false}` {
		t.Fatalf("after the window's age: %q", got)
	}
}

// A vacant slot that never opted in answers as today.
func TestTargetedSendToVacantSlotWithoutRecovery(t *testing.T) {
	t.Parallel()
	m, _ := newManager(t)
	host := &fakeMember{}
	r := create(t, m, host, 4)
	p := &fakeMember{}
	join(t, m, r.Code, "p", p)
	r.Leave(1, p, false)
	to := uint64(1)
	if _, err := r.Relay(AsMember(0, host), &to, wire.MessageFrame(0, nil)); err != ErrTargetNotFound {
		t.Fatalf("send to a vacant slot without recovery: %v", err)
	}
}

// A room whose last member blips is kept for the host grace; a clean
// leave ends it at once; windows are freed with the room.
func TestEmptyRoomKeptAfterABlip(t *testing.T) {
	t.Parallel()
	b := budget.New(0)
	clk := &testutil.FakeClock{}
	m := NewManager(Config{HostGrace: time.Minute, Clock: clk, Codes: &seqCodes{}, Budget: b})
	host := &fakeMember{}
	r, _ := m.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 4, Recover: true})
	r.Leave(0, host, false)
	if !m.Held(r.Code) {
		t.Fatal("a lone host's blip ended its room")
	}
	back := &fakeMember{}
	m.Join(r.Code, "host", back, since(0))
	if code, _ := back.closed(); code != 0 || !m.Held(r.Code) {
		t.Fatal("the host could not reclaim its kept room")
	}
	r.Leave(0, back, false)
	clk.Advance(time.Minute)
	if m.Held(r.Code) {
		t.Fatal("the kept room outlived the host grace")
	}
	r2, _ := m.Create(CreateRequest{Member: &fakeMember{}, ClientID: "h2", MaxClients: 4, Recover: true})
	p := &fakeMember{}
	m.Join(r2.Code, "p", p, JoinOptions{Recover: true})
	r2.Leave(0, r2.slots[0].member, true)
	r2.Leave(1, p, true)
	if m.Held(r2.Code) {
		t.Fatal("a room whose last member left cleanly was kept")
	}
	if b.Used() != 0 {
		t.Fatalf("budget %d after every room ended: windows not freed", b.Used())
	}
}
