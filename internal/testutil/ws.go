package testutil

import (
	"cmp"
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

// Client is a real WebSocket client (coder/websocket) of a server under
// test. TrySend, Read and Next report failures and may be called from any
// goroutine; Send, SendJSON, Join, Create, CloseCode and the Expect
// methods end the test on a failure and belong on the test's goroutine.
type Client struct {
	WS *websocket.Conn // for what the helpers do not cover (binary frames, partial writes)

	t       testing.TB
	timeout time.Duration
}

// Dialer says how a Client connects. The zero value sends no extra header,
// lets the system pick the source address, waits 5 s for the handshake and
// for each frame, and drops the socket (no close frame) when the test ends.
type Dialer struct {
	Header    http.Header   // extra request headers (Origin, Fly-Region, ...)
	LocalAddr string        // source IP, one of 127.0.0.0/8: each counts as its own client
	Timeout   time.Duration // for the handshake and each read or write; 5 s when zero
	Leave     bool          // at the test's end, leave with 1000 as a player does, rather than drop
	SelfClose bool          // the caller closes the socket: no cleanup keeps it (and its buffers) until the test's end
}

// DefaultTimeout bounds a Client's handshake and each of its reads and
// writes, unless its Dialer says otherwise.
const DefaultTimeout = 5 * time.Second

// Dial connects to url (http:// or ws://, with path and query) and ends
// the test if it cannot.
func Dial(t testing.TB, url string) *Client {
	t.Helper()
	return Dialer{}.Dial(t, url)
}

// TryDial connects to url with the zero Dialer, and returns the refusal
// if there is one.
func TryDial(t testing.TB, url string) (*Client, *http.Response, error) {
	return Dialer{}.TryDial(t, url)
}

// Dial connects to url and ends the test if it cannot.
func (d Dialer) Dial(t testing.TB, url string) *Client {
	t.Helper()
	c, resp, err := d.TryDial(t, url)
	if err != nil {
		status := ""
		if resp != nil {
			status = " (" + resp.Status + ")"
		}
		t.Fatalf("dial %s: %v%s", url, err, status)
	}
	return c
}

// TryDial connects to url and returns the handshake's response too, so a
// test can see a refusal (its status and headers). The socket is closed
// when the test ends.
func (d Dialer) TryDial(t testing.TB, url string) (*Client, *http.Response, error) {
	timeout := cmp.Or(d.Timeout, DefaultTimeout)
	opts := &websocket.DialOptions{HTTPHeader: d.Header}
	if d.LocalAddr != "" {
		dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(d.LocalAddr)}, Timeout: timeout}
		tr := &http.Transport{DialContext: dialer.DialContext}
		defer tr.CloseIdleConnections() // the upgraded connection is the socket's now
		opts.HTTPClient = &http.Client{Transport: tr}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, WSURL(url), opts)
	if err != nil {
		return nil, resp, err
	}
	ws.SetReadLimit(1 << 20)
	switch {
	case d.SelfClose:
	case d.Leave:
		t.Cleanup(func() { ws.Close(websocket.StatusNormalClosure, "") })
	default:
		t.Cleanup(func() { ws.CloseNow() })
	}
	return &Client{WS: ws, t: t, timeout: timeout}, resp, nil
}

// WSURL is url with an http scheme turned into its WebSocket one.
func WSURL(url string) string {
	if rest, ok := strings.CutPrefix(url, "http"); ok {
		return "ws" + rest
	}
	return url
}

// Send writes msg as one text frame and ends the test if it cannot.
func (c *Client) Send(msg string) {
	c.t.Helper()
	if err := c.TrySend(msg); err != nil {
		c.t.Fatalf("send %.200s: %v", msg, err)
	}
}

// TrySend writes msg as one text frame within the timeout.
func (c *Client) TrySend(msg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	return c.WS.Write(ctx, websocket.MessageText, []byte(msg))
}

// SendJSON sends v encoded as JSON.
func (c *Client) SendJSON(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatalf("encode %v: %v", v, err)
	}
	c.Send(string(b))
}

// Read returns the next frame, waiting at most the timeout. Every frame
// of the protocol is JSON text: a binary one is reported as an error of
// the test (the read still returns it).
func (c *Client) Read() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	typ, b, err := c.WS.Read(ctx)
	if err == nil && typ != websocket.MessageText {
		c.t.Errorf("server sent a %v frame: %.200s", typ, b)
	}
	return string(b), err
}

// Frame is a server frame decoded: the fields the protocol's frames carry
// (README.md "The protocol"), and the frame as it came.
type Frame struct {
	Type      string          `json:"type"`
	Room      string          `json:"room"`
	Instance  string          `json:"instance"`
	Region    string          `json:"region"`
	Index     int             `json:"index"`
	Peers     []int           `json:"peers"`
	From      int             `json:"from"`
	Data      json.RawMessage `json:"data"`
	Message   string          `json:"message"`
	URL       string          `json:"url"`
	Seq       int64           `json:"seq"`
	Recovered bool            `json:"recovered"`
	Raw       string          `json:"-"`
}

// Next reads the next frame and decodes it; a frame that is not a JSON
// object is an error.
func (c *Client) Next() (Frame, error) {
	b, err := c.Read()
	if err != nil {
		return Frame{}, err
	}
	var f Frame
	if err := json.Unmarshal([]byte(b), &f); err != nil {
		return Frame{}, fmt.Errorf("server sent %.200q: %w", b, err)
	}
	f.Raw = b
	return f, nil
}

// Expect reads the next frame and compares it byte for byte with want.
func (c *Client) Expect(want string) {
	c.t.Helper()
	got, err := c.Read()
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", want, err)
	}
	if got != want {
		c.t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// ErrorFrame is the frame of an error with this message, as the server
// writes it.
func ErrorFrame(msg string) string {
	b, _ := json.Marshal(msg)
	return `{"type":"error","message":` + string(b) + `}`
}

// ExpectErr reads the next frame and checks that it is exactly this error.
func (c *Client) ExpectErr(msg string) {
	c.t.Helper()
	c.Expect(ErrorFrame(msg))
}

// ExpectType reads frames until one of type typ and returns it. The room's
// comings and goings (peer_joined, peer_left) on the way are skipped unless
// typ is one of them; any other frame ends the test.
func (c *Client) ExpectType(typ string) Frame {
	c.t.Helper()
	for {
		f, err := c.Next()
		if err != nil {
			c.t.Fatalf("waiting for %s: %v", typ, err)
		}
		if f.Type == typ {
			return f
		}
		if f.Type != "peer_joined" && f.Type != "peer_left" {
			c.t.Fatalf("waiting for %s, got %s", typ, f.Raw)
		}
	}
}

// Create makes a room of at most maxClients and returns its code.
func (c *Client) Create(clientID string, maxClients int) string {
	c.t.Helper()
	c.SendJSON(map[string]any{"type": "create", "clientId": clientID, "maxClients": maxClients})
	return c.ExpectType("created").Room
}

// Join asks to join the room code as clientID; the answer is the caller's
// to read.
func (c *Client) Join(code, clientID string) {
	c.t.Helper()
	c.SendJSON(map[string]any{"type": "join", "room": code, "clientId": clientID})
}

// Leave closes the socket as a player who leaves does (1000).
func (c *Client) Leave() { c.WS.Close(websocket.StatusNormalClosure, "") }

// Drop cuts the socket without a close frame, as a network blip does.
func (c *Client) Drop() { c.WS.CloseNow() }

// ExpectClose reads the next frame and checks that it is the close, with
// this code and reason: a data frame first ends the test.
func (c *Client) ExpectClose(code int, reason string) {
	c.t.Helper()
	got, err := c.Read()
	if err == nil {
		c.t.Fatalf("expected close %d, got frame %s", code, got)
	}
	var ce websocket.CloseError
	if !errors.As(err, &ce) {
		c.t.Fatalf("expected close %d, got %v", code, err)
	}
	if int(ce.Code) != code || ce.Reason != reason {
		c.t.Fatalf("closed with %d %q, want %d %q", ce.Code, ce.Reason, code, reason)
	}
}

// CloseCode reads (and discards) frames until the socket ends, at most d,
// and returns its close code: -1 when it ended without a close frame.
func (c *Client) CloseCode(d time.Duration) int {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		_, _, err := c.WS.Read(ctx)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			c.t.Fatalf("socket still open after %v", d)
		}
		return int(websocket.CloseStatus(err))
	}
}

// Discard reads and drops every frame in the background until the socket
// ends, as a healthy player's client does when the test only needs it to
// keep up.
func (c *Client) Discard() {
	go func() {
		for {
			if _, _, err := c.WS.Read(context.Background()); err != nil {
				return
			}
		}
	}()
}

// Text is the frame's data decoded when it is a JSON string, and "" when
// it is anything else.
func (f Frame) Text() string {
	var s string
	if json.Unmarshal(f.Data, &s) != nil {
		return ""
	}
	return s
}
