package rooms

import (
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/internal/wire"
)

// The checks of the one relay path, by actor: who may relay, put a state
// and end a room made here (forwards are checked in handoff_test.go).
func TestActorChecks(t *testing.T) {
	t.Parallel()
	type call struct {
		name string
		do   func(r *Room, host, guest *fakeMember) error
		want error
	}
	relay := func(a func(host, guest *fakeMember) Actor) func(*Room, *fakeMember, *fakeMember) error {
		return func(r *Room, h, g *fakeMember) error {
			_, err := r.Relay(a(h, g), nil, wire.MessageFrame(a(h, g).Slot(), nil))
			return err
		}
	}
	state := func(a func(host, guest *fakeMember) Actor) func(*Room, *fakeMember, *fakeMember) error {
		return func(r *Room, h, g *fakeMember) error { return r.PutState(a(h, g), []byte(`1`)) }
	}
	end := func(a func(host, guest *fakeMember) Actor) func(*Room, *fakeMember, *fakeMember) error {
		return func(r *Room, h, g *fakeMember) error { return r.End(a(h, g)) }
	}
	hostA := func(h, _ *fakeMember) Actor { return AsMember(0, h) }
	guestA := func(_, g *fakeMember) Actor { return AsMember(1, g) }
	strangerA := func(_, _ *fakeMember) Actor { return AsMember(1, &fakeMember{}) }
	backendA := func(_, _ *fakeMember) Actor { return AsBackend() }
	zeroA := func(_, _ *fakeMember) Actor { return Actor{} }
	forwardA := func(_, _ *fakeMember) Actor { return AsForward("", 0) }
	tests := []call{
		{"host relays", relay(hostA), nil},
		{"guest relays", relay(guestA), nil},
		{"backend relays", relay(backendA), nil},
		{"a socket not the slot's", relay(strangerA), ErrNotInRoom},
		{"the zero Actor relays", relay(zeroA), ErrNotInRoom},
		{"a forward into a room made here", relay(forwardA), ErrNotFromSender},
		{"host puts state", state(hostA), nil},
		{"backend puts state", state(backendA), nil},
		{"guest puts state", state(guestA), ErrOnlyHostState},
		{"the zero Actor puts state", state(zeroA), ErrNotInRoom},
		{"guest ends", end(guestA), ErrOnlyHostClose},
		{"a stranger ends", end(strangerA), ErrNotInRoom},
		{"the zero Actor ends", end(zeroA), ErrNotInRoom},
		{"a forward ends a room made here", end(forwardA), ErrNotFromSender},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newManager(t)
			host, guest := &fakeMember{}, &fakeMember{}
			r := create(t, m, host, 4)
			join(t, m, r.Code, "guest", guest)
			if err := tt.do(r, host, guest); err != tt.want {
				t.Fatalf("%s = %v, want %v", tt.name, err, tt.want)
			}
			if tt.want != nil && !m.Held(r.Code) {
				t.Errorf("%s was refused, but the room ended", tt.name)
			}
		})
	}
}

// The backend's message comes from ServerFrom to every member, the host's
// skips the host; a state the backend puts reaches the host too. Ending
// the room closes everyone with 4001, and tells webhooks who ended it.
func TestActorEffects(t *testing.T) {
	t.Parallel()
	var whys []string
	m := NewManager(Config{Clock: &testutil.FakeClock{}, Codes: &seqCodes{}, HostGrace: time.Minute,
		Events: func(e Event) {
			if e.Type == EventRoomClosed {
				whys = append(whys, e.Reason)
			}
		}})
	host, guest := &fakeMember{}, &fakeMember{}
	r := create(t, m, host, 4)
	join(t, m, r.Code, "guest", guest)
	host.take()
	guest.take()
	if n, err := r.Relay(AsBackend(), nil, wire.MessageFrame(ServerFrom, []byte(`"b"`))); n != 2 || err != nil {
		t.Fatalf("backend's Relay = %d, %v, want 2, nil", n, err)
	}
	if n, err := r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, []byte(`"h"`))); n != 1 || err != nil {
		t.Fatalf("host's Relay = %d, %v, want 1, nil", n, err)
	}
	if err := r.PutState(AsBackend(), []byte(`{"s":1}`)); err != nil {
		t.Fatal(err)
	}
	expectFrames(t, "host", host, `{"type":"message","from":-1,"data":"b"}`, `{"type":"state","data":{"s":1}}`)
	expectFrames(t, "guest", guest, `{"type":"message","from":-1,"data":"b"}`, `{"type":"message","from":0,"data":"h"}`,
		`{"type":"state","data":{"s":1}}`)
	if err := r.End(AsBackend()); err != nil {
		t.Fatal(err)
	}
	if code, reason := guest.closed(); code != 4001 || reason != "room closed" {
		t.Errorf("guest closed with %d %q, want 4001 \"room closed\"", code, reason)
	}
	host2 := &fakeMember{}
	r2 := create(t, m, host2, 4)
	for _, a := range []Actor{AsMember(0, host), AsBackend()} {
		if err := r.End(a); err != ErrRoomNotFound {
			t.Errorf("End(%+v) of an ended room = %v, want %v", a, err, ErrRoomNotFound)
		}
	}
	if err := r2.End(AsMember(0, host2)); err != nil {
		t.Fatal(err)
	}
	if len(whys) != 2 || whys[0] != EndServerClosed || whys[1] != EndHostClosed {
		t.Errorf("room.closed reasons = %q, want [%s %s]", whys, EndServerClosed, EndHostClosed)
	}
}
