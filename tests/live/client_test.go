package live

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// player is a real WebSocket client of the app.
type player struct {
	t  *testing.T
	ws *websocket.Conn
}

func wsURL(base string) string {
	return "ws" + strings.TrimPrefix(base, "http")
}

// dial connects through region's edge to path (with query).
func dial(t *testing.T, region, path string, hdr http.Header) *player {
	t.Helper()
	p, err := tryDial(t, region, path, hdr)
	if err != nil {
		t.Fatalf("dial %s%s: %v", region, path, err)
	}
	return p
}

func tryDial(t *testing.T, region, path string, hdr http.Header) (*player, error) {
	testutil.TrackModule(t) // the cluster runs binaries built from the whole module
	h := cluster.edgeHeader(region)
	for k, v := range hdr {
		h[k] = v
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, wsURL(cluster.Edges[region])+path, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if resp != nil {
			return nil, errors.New(resp.Status + ": " + err.Error())
		}
		return nil, err
	}
	// Players leave cleanly (1000): a blip would keep their emptied room for
	// the host grace, and a machine holding rooms cannot drain.
	t.Cleanup(func() { ws.Close(websocket.StatusNormalClosure, "") })
	return &player{t: t, ws: ws}, nil
}

type msg struct {
	Type     string          `json:"type"`
	Room     string          `json:"room"`
	Instance string          `json:"instance"`
	Region   string          `json:"region"`
	Index    int             `json:"index"`
	Peers    []int           `json:"peers"`
	From     int             `json:"from"`
	Data     json.RawMessage `json:"data"`
	Message  string          `json:"message"`
}

func (p *player) send(v any) {
	p.t.Helper()
	b, _ := json.Marshal(v)
	if err := p.ws.Write(p.t.Context(), websocket.MessageText, b); err != nil {
		p.t.Fatalf("send %s: %v", b, err)
	}
}

func (p *player) next() (msg, error) {
	ctx, cancel := context.WithTimeout(p.t.Context(), 15*time.Second)
	defer cancel()
	_, b, err := p.ws.Read(ctx)
	if err != nil {
		return msg{}, err
	}
	var m msg
	if err := json.Unmarshal(b, &m); err != nil {
		return msg{}, err
	}
	return m, nil
}

// expect reads until a message of type typ (skipping peer_joined/peer_left
// unless asked for).
func (p *player) expect(typ string) msg {
	p.t.Helper()
	for {
		m, err := p.next()
		if err != nil {
			p.t.Fatalf("waiting for %s: %v", typ, err)
		}
		if m.Type == typ {
			return m
		}
		if m.Type != "peer_joined" && m.Type != "peer_left" {
			p.t.Fatalf("waiting for %s, got %+v", typ, m)
		}
	}
}

func (p *player) create(clientID string) msg {
	p.t.Helper()
	p.send(map[string]any{"type": "create", "clientId": clientID, "maxClients": 8})
	return p.expect("created")
}

func (p *player) join(code, clientID string) msg {
	p.t.Helper()
	p.send(map[string]any{"type": "join", "room": code, "clientId": clientID})
	return p.expect("joined")
}

// closed waits for the socket to end and returns the close code (-1 when
// the connection dropped without a close frame).
func (p *player) closed() int {
	p.t.Helper()
	for {
		_, err := p.next()
		if err != nil {
			return int(websocket.CloseStatus(err))
		}
	}
}

func sortStrings(s []string) []string { slices.Sort(s); return s }
