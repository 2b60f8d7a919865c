package rooms

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/closecode"
	"github.com/party-sockets/party-sockets/internal/testutil"
)

// The fixtures of the package's tests: a member that records its frames, code generators, and shorthands.

// fakeMember records what a room sent it.
type fakeMember struct {
	mu     sync.Mutex
	frames []string
	code   int
	reason string
}

func (f *fakeMember) Send(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frames = append(f.frames, string(b))
}

func (f *fakeMember) Close(end closecode.End) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.code, f.reason = int(end.Code()), end.Text()
}

func (f *fakeMember) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.frames
	f.frames = nil
	return out
}

func (f *fakeMember) closed() (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.code, f.reason
}

// seqCodes hands out 111112, 111113, ...
type seqCodes struct{ n uint64 }

func (s *seqCodes) Next() (string, error) {
	s.n++
	return fmt.Sprintf("AAAA%02d", s.n%100), nil
}

func newManager(t *testing.T) (*Manager, *testutil.FakeClock) {
	t.Helper()
	clk := &testutil.FakeClock{}
	return NewManager(Config{Instance: "m1", Region: "fra", HostGrace: 2 * time.Minute, Clock: clk, Codes: &seqCodes{}}), clk
}

func expectFrames(t *testing.T, who string, f *fakeMember, want ...string) {
	t.Helper()
	got := f.take()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s got frames\n  %s\nwant\n  %s", who, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func create(t *testing.T, m *Manager, host *fakeMember, max float64) *Room {
	t.Helper()
	r, err := m.Create(CreateRequest{Member: host, ClientID: "host", MaxClients: max, Origin: "https://game.example"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return r
}

func join(t *testing.T, m *Manager, code, id string, mem *fakeMember) int {
	t.Helper()
	_, idx, err := m.Join(code, id, mem, JoinOptions{})
	if err != nil {
		t.Fatalf("Join(%s): %v", id, err)
	}
	return idx
}
