package rooms

import (
	"fmt"
	"testing"

	"github.com/party-sockets/party-sockets/closecode"
	"github.com/party-sockets/party-sockets/internal/budget"
	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/internal/wire"
)

// sharingMember holds a broadcast's shared cost as a queue would, and lets
// go of it at once, as a queue that drains does.
type sharingMember struct{ held int }

func (m *sharingMember) Send([]byte)         {}
func (m *sharingMember) Close(closecode.End) {}
func (m *sharingMember) SendShared(_ []byte, sh *budget.Shared) {
	sh.Hold()
	m.held++
	sh.Release()
}

// Issue 20 review, finding 4: a broadcast's frame, one allocation, is
// counted once for all its receivers, and that costs the broadcast no
// allocation of its own: still one (the frame) in a room of 8 or 64.
func TestSharedBroadcastCostsNoAllocation(t *testing.T) {
	b := budget.New(0)
	allocs := func(size int) float64 {
		m := NewManager(Config{Clock: &testutil.FakeClock{}, Codes: &seqCodes{}, Budget: b})
		members := make([]*sharingMember, size)
		r, _ := m.Create(CreateRequest{Member: &sharingMember{}, ClientID: "h", MaxClients: float64(size + 1)})
		for i := range members {
			members[i] = &sharingMember{}
			if _, _, err := m.Join(r.Code, fmt.Sprint(i), members[i], JoinOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		data := []byte(`{"x":1}`)
		n := testing.AllocsPerRun(200, func() {
			r.Relay(AsMember(1, members[0]), nil, wire.MessageFrame(1, data))
		})
		if members[size-1].held == 0 {
			t.Fatal("the members were not sent the frame as sharers")
		}
		return n
	}
	a8, a64 := allocs(8), allocs(64)
	if a8 != a64 || a8 > 1 {
		t.Fatalf("allocations per shared broadcast: %v in a room of 8, %v in a room of 64; want the same, at most 1", a8, a64)
	}
}
