package rooms

import (
	"fmt"
	"testing"

	"github.com/party-sockets/party-sockets/closecode"
	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/internal/wire"
)

// nopMember takes frames without keeping them, like a queue that drains.
type nopMember struct{ n int }

func (m *nopMember) Send([]byte)         { m.n++ }
func (m *nopMember) Close(closecode.End) {}

func roomOf(b testing.TB, size int) (*Room, []*nopMember) {
	m := NewManager(Config{Clock: &testutil.FakeClock{}, Codes: &seqCodes{}})
	members := make([]*nopMember, size)
	for i := range members {
		members[i] = &nopMember{}
	}
	r, err := m.Create(CreateRequest{Member: members[0], ClientID: "h", MaxClients: float64(size)})
	if err != nil {
		b.Fatal(err)
	}
	for i := 1; i < size; i++ {
		if _, _, err := m.Join(r.Code, fmt.Sprint(i), members[i], JoinOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	return r, members
}

// BenchmarkBroadcast8 is one send in a room of 8: encode once, enqueue 7.
func BenchmarkBroadcast8(b *testing.B) {
	r, members := roomOf(b, 8)
	data := []byte(`{"q":12345,"t":1732270000000000000,"p":"abcdefghijklmnopqrstuvwxyz0123"}`)
	b.ReportAllocs()
	for b.Loop() {
		frame := wire.MessageFrame(3, data)
		if _, err := r.Relay(AsMember(3, members[3]), nil, frame); err != nil {
			b.Fatal(err)
		}
	}
}

// The broadcast path allocates once per message (the frame), never per
// receiver.
func TestBroadcastAllocationsDoNotGrowWithReceivers(t *testing.T) {
	data := []byte(`{"x":1}`)
	allocs := func(size int) float64 {
		r, members := roomOf(t, size)
		return testing.AllocsPerRun(200, func() {
			r.Relay(AsMember(1, members[1]), nil, wire.MessageFrame(1, data))
		})
	}
	a8, a64 := allocs(8), allocs(64)
	if a8 != a64 || a8 > 1 {
		t.Fatalf("allocations per broadcast: %v in a room of 8, %v in a room of 64; want the same, at most 1", a8, a64)
	}
}

func BenchmarkCreateJoinLeave(b *testing.B) {
	m := NewManager(Config{Clock: &testutil.FakeClock{}, Codes: &lockedCodes{}})
	host, a, c := &nopMember{}, &nopMember{}, &nopMember{}
	b.ReportAllocs()
	for b.Loop() {
		r, err := m.Create(CreateRequest{Member: host, ClientID: "h", MaxClients: 4})
		if err != nil {
			b.Fatal(err)
		}
		m.Join(r.Code, "a", a, JoinOptions{})
		m.Join(r.Code, "c", c, JoinOptions{})
		r.Leave(1, a, true)
		r.Leave(2, c, true)
		r.Leave(0, host, true)
	}
}

// BenchmarkMoveRoom8 is one room of 8 handed over: snapshot under the
// lock, JSON both ways, checks and import; each slot recovers and holds
// 64 frames. The network is not in it.
func BenchmarkMoveRoom8(b *testing.B) {
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		b.StopTimer()
		src := NewManager(Config{Instance: "old", Clock: &testutil.FakeClock{}, Codes: &seqCodes{}})
		dst := NewManager(Config{Instance: "new", Clock: &testutil.FakeClock{}, Codes: &seqCodes{}})
		host := &nopMember{}
		r, _ := src.Create(CreateRequest{Member: host, ClientID: "h", MaxClients: 8, Recover: true})
		for i := 1; i < 8; i++ {
			src.Join(r.Code, fmt.Sprint(i), &nopMember{}, JoinOptions{Recover: true})
		}
		r.PutState(AsMember(0, host), []byte(`{"round":3,"scores":[1,2,3,4,5,6,7]}`))
		for i := range 64 {
			r.Relay(AsMember(0, host), nil, wire.MessageFrame(0, []byte(fmt.Sprintf(`{"tick":%d,"p":"abcdefghijklmnopqrstuvwxyz"}`, i))))
		}
		b.StartTimer()
		if err := src.Move(r.Code, fmt.Sprint(n), "new", viaJSON(dst)); err != nil {
			b.Fatal(err)
		}
		n++
	}
}
