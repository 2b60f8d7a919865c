package server

import (
	"context"
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

	"github.com/coder/websocket"
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

// client is a real WebSocket client.
type client struct {
	t  *testing.T
	ws *websocket.Conn
}

func dial(t *testing.T, base, path string, hdr http.Header) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+path, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	return &client{t: t, ws: ws}
}

func (c *client) send(msg string) {
	c.t.Helper()
	if err := c.ws.Write(c.t.Context(), websocket.MessageText, []byte(msg)); err != nil {
		c.t.Fatalf("write %s: %v", msg, err)
	}
}

func (c *client) read() (string, error) {
	ctx, cancel := context.WithTimeout(c.t.Context(), 5*time.Second)
	defer cancel()
	typ, b, err := c.ws.Read(ctx)
	if err == nil && typ != websocket.MessageText {
		c.t.Errorf("server sent a %v frame", typ)
	}
	return string(b), err
}

// expect reads the next frame and compares it byte for byte.
func (c *client) expect(want string) {
	c.t.Helper()
	got, err := c.read()
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", want, err)
	}
	if got != want {
		c.t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// expectErr reads the next frame and checks it is this error.
func (c *client) expectErr(msg string) {
	c.t.Helper()
	b, _ := json.Marshal(msg)
	c.expect(`{"type":"error","message":` + string(b) + `}`)
}

// expectClose reads until the socket closes and checks the close code.
func (c *client) expectClose(code int, reason string) {
	c.t.Helper()
	for {
		got, err := c.read()
		if err == nil {
			c.t.Fatalf("expected close %d, got frame %s", code, got)
		}
		var ce websocket.CloseError
		if !asCloseError(err, &ce) {
			c.t.Fatalf("expected close %d, got %v", code, err)
		}
		if int(ce.Code) != code || ce.Reason != reason {
			c.t.Fatalf("closed with %d %q, want %d %q", ce.Code, ce.Reason, code, reason)
		}
		return
	}
}

// create makes a room and returns its code.
func (c *client) create(clientID string, max int) string {
	c.t.Helper()
	c.send(`{"type":"create","clientId":"` + clientID + `","maxClients":` + itoa(max) + `}`)
	got, err := c.read()
	if err != nil {
		c.t.Fatal(err)
	}
	var m struct{ Type, Room string }
	if json.Unmarshal([]byte(got), &m); m.Type != "created" {
		c.t.Fatalf("create: got %s", got)
	}
	return m.Room
}

func (c *client) join(code, clientID string) {
	c.t.Helper()
	c.send(`{"type":"join","room":"` + code + `","clientId":"` + clientID + `"}`)
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
func guest(t *testing.T, ts *testServer, h *client, code, clientID string, index int, peers string) *client {
	t.Helper()
	c := dial(t, ts.URL, "/", nil)
	c.join(code, clientID)
	c.expect(`{"type":"joined","room":"` + code + `","index":` + itoa(index) + `,"peers":[` + peers + `]}`)
	h.expect(`{"type":"peer_joined","index":` + itoa(index) + `}`)
	return c
}
