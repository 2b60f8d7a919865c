package abuse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// member is a real WebSocket client of the server under attack.
type member struct {
	t  testing.TB
	ws *websocket.Conn
}

func dialWS(t testing.TB, url string, hdr http.Header) (*member, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http"), &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		return nil, resp, err
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	return &member{t: t, ws: ws}, resp, nil
}

func mustDial(t testing.TB, url string) *member {
	t.Helper()
	m, _, err := dialWS(t, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return m
}

func (m *member) send(msg string) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		m.t.Fatalf("write: %v", err)
	}
}

func (m *member) next() (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := m.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		m.t.Fatalf("server sent %q: %v", b, err)
	}
	return v, nil
}

// expectType reads frames until one of type typ arrives.
func (m *member) expectType(typ string) map[string]any {
	m.t.Helper()
	for {
		v, err := m.next()
		if err != nil {
			m.t.Fatalf("waiting for %s: %v", typ, err)
		}
		if v["type"] == typ {
			return v
		}
	}
}

func (m *member) expectErr(msg string) {
	m.t.Helper()
	if v := m.expectType("error"); v["message"] != msg {
		m.t.Fatalf("error %q, want %q", v["message"], msg)
	}
}

// closeCode reads until the socket ends and returns its close code (-1
// when it ended without a close frame).
func (m *member) closeCode(d time.Duration) int {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		_, _, err := m.ws.Read(ctx)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			m.t.Fatalf("socket still open after %v", d)
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return int(ce.Code)
		}
		return -1
	}
}

func (m *member) create(clientID string, maxClients float64) string {
	m.t.Helper()
	b, _ := json.Marshal(map[string]any{"type": "create", "clientId": clientID, "maxClients": maxClients})
	m.send(string(b))
	return m.expectType("created")["room"].(string)
}

func (m *member) join(code, clientID string) {
	m.t.Helper()
	b, _ := json.Marshal(map[string]any{"type": "join", "clientId": clientID, "room": code})
	m.send(string(b))
}

// healthyPair checks that a fresh room works: create, join, one message
// each way.
// pair is a room of max at url with its host and one player joined, the
// join chatter read; who names their clientIds (who-host, who-player).
func pair(t testing.TB, url, who string, max float64) (host, player *member, code string) {
	t.Helper()
	host = mustDial(t, url)
	code = host.create(who+"-host", max)
	player = mustDial(t, url)
	player.join(code, who+"-player")
	player.expectType("joined")
	host.expectType("peer_joined")
	return host, player, code
}

func healthyPair(t testing.TB, url string) {
	t.Helper()
	h, p, _ := pair(t, url, "healthy", 4)
	h.send(`{"type":"send","data":"ping"}`)
	if v := p.expectType("message"); v["data"] != "ping" {
		t.Fatalf("player got %v", v)
	}
	p.send(`{"type":"send","data":"pong"}`)
	if v := h.expectType("message"); v["data"] != "pong" {
		t.Fatalf("host got %v", v)
	}
}

func getJSON(t testing.TB, url string, hdr http.Header) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v
}

// dialFrom opens a WebSocket to url from the local address src (one of
// 127.0.0.0/8): each source address counts as its own client.
func dialFrom(t testing.TB, url, src string) (*member, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http"), &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	return &member{t: t, ws: ws}, nil
}

func mustDialFrom(t testing.TB, url, src string) *member {
	t.Helper()
	m, err := dialFrom(t, url, src)
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	return m
}

// loopback is the loopback address 127.0.0.n.
func loopback(n int) string { return fmt.Sprintf("127.0.0.%d", n) }
