package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/rooms"
)

// testServer is a real handler on a loopback listener.
type testServer struct {
	*Server
	URL   string
	clock *testutil.FakeClock
	reg   *prometheus.Registry
}

type seq struct{ n atomic.Uint64 }

func (s *seq) Next() (string, error) {
	return "Room" + string(rune('A'+s.n.Add(1)%26)) + "x", nil
}

func newTestServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	return newTestServerWith(t, cfg, 0, 0)
}

// newTestServerWith also bounds rooms per machine and members per room.
func newTestServerWith(t *testing.T, cfg Config, maxRooms, maxMembers int) *testServer {
	t.Helper()
	clk := &testutil.FakeClock{}
	mgr := rooms.NewManager(rooms.Config{Instance: cfg.Instance, Region: cfg.Region, HostGrace: 2 * time.Minute, Clock: clk,
		Codes: &seq{}, MaxRooms: maxRooms, MaxMembers: maxMembers, Budget: cfg.Budget})
	return newTestServerWithManager(t, cfg, mgr, clk)
}

// newTestServerWithManager serves a manager the test made itself.
func newTestServerWithManager(t *testing.T, cfg Config, mgr *rooms.Manager, clk *testutil.FakeClock) *testServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := New(cfg, mgr, reg, reg)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	listen(t, hs.URL, s)
	return &testServer{Server: s, URL: hs.URL, clock: clk, reg: reg}
}

// servers is every test server by its base URL ("http://host:port"), so a
// test can sign a call for the machine it sends it to (signTo).
var servers sync.Map

func listen(t *testing.T, base string, s *Server) {
	servers.Store(base, s)
	t.Cleanup(func() { servers.Delete(base) })
}

// signTo signs req as from signs a call to a sibling: for the test server
// req goes to (a URL no test server has gets a call for nobody).
func signTo(from *Server, req *http.Request, body []byte) {
	to := "nobody"
	if s, ok := servers.Load("http://" + req.URL.Host); ok {
		to = s.(*Server).selfID()
	}
	from.signPeer(req, to, body)
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func getJSON(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, resp.Header, sb.String()
}

// guest joins code as clientID on a new connection, checks its joined frame
// (index, peers) and that the host h saw peer_joined.
func guest(t *testing.T, ts *testServer, h *testutil.Client, code, clientID string, index int, peers string) *testutil.Client {
	t.Helper()
	c := testutil.Dial(t, ts.URL)
	c.Join(code, clientID)
	c.Expect(`{"type":"joined","room":"` + code + `","index":` + itoa(index) + `,"peers":[` + peers + `]}`)
	h.Expect(`{"type":"peer_joined","index":` + itoa(index) + `}`)
	return c
}
