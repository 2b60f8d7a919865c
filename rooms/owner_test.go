package rooms

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// ownedMember is a fakeMember that names who it is (Owned).
type ownedMember struct {
	fakeMember
	owner string
}

func (o *ownedMember) Owner() string { return o.owner }

// Each event carries the owner of the member that caused it, which rooms
// only copies: the webhooks' queue is fair between them (issue 20). A
// member with no Owner, and what the room does itself, carry "".
func TestEventsCarryTheOwnerOfWhoCausedThem(t *testing.T) {
	t.Parallel()
	var got []string
	m := NewManager(Config{Clock: &testutil.FakeClock{}, Codes: &seqCodes{}, HostGrace: time.Minute,
		Events: func(e Event) { got = append(got, fmt.Sprintf("%s %q", e.Type, e.Owner)) }})
	host, guest := &ownedMember{owner: "192.0.2.1"}, &ownedMember{owner: "2001:db8::/64"}
	r, err := m.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: 4})
	if err != nil {
		t.Fatal(err)
	}
	_, idx, err := m.Join(r.Code, "guest", guest, JoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Leave(idx, guest, false)
	plain := &fakeMember{}
	join(t, m, r.Code, "plain", plain)
	if err := r.End(AsBackend()); err != nil {
		t.Fatal(err)
	}
	want := []string{`room.created "192.0.2.1"`, `player.joined "192.0.2.1"`, `player.joined "2001:db8::/64"`,
		`player.left "2001:db8::/64"`, `player.joined ""`, `room.closed ""`}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("events %s, want %s", strings.Join(got, ", "), strings.Join(want, ", "))
	}
}
