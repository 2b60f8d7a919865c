package testutil

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// script is a WebSocket server that answers the first message with its
// remote IP, the given frames and then a close of code 4001 (code 0: it
// cuts the socket instead).
func script(t *testing.T, code websocket.StatusCode, frames ...string) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		if _, _, err := ws.Read(ctx); err != nil {
			return
		}
		ip, _, _ := net.SplitHostPort(r.RemoteAddr)
		ws.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"type":"ip","message":%q}`, ip)))
		for _, f := range frames {
			ws.Write(ctx, websocket.MessageText, []byte(f))
		}
		if code != 0 {
			ws.Close(code, "room closed")
		}
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}

// fatalTB records the first Fatalf and ends the goroutine, as the testing
// package would end the test.
type fatalTB struct {
	testing.TB
	failed chan string
}

func (f fatalTB) Fatalf(format string, args ...any) {
	f.failed <- fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fails runs f with a fatalTB and returns its failure ("" when none).
func fails(t *testing.T, f func(tb testing.TB)) string {
	tb := fatalTB{t, make(chan string, 1)}
	done := make(chan struct{})
	go func() { defer close(done); f(tb) }()
	<-done
	select {
	case msg := <-tb.failed:
		return msg
	default:
		return ""
	}
}

func TestClient(t *testing.T) {
	t.Parallel()
	url := script(t, 4001, `{"type":"peer_joined","index":1}`, `{"type":"message","from":1,"data":"hi"}`)
	c := Dialer{LocalAddr: "127.0.0.7"}.Dial(t, url)
	c.Send("go")
	if ip := c.ExpectType("ip"); ip.Message != "127.0.0.7" {
		t.Fatalf("the server saw %s, want the Dialer's LocalAddr 127.0.0.7", ip.Raw)
	}
	if m := c.ExpectType("message"); m.From != 1 || m.Text() != "hi" {
		t.Fatalf("ExpectType(message) = %s, want the message past peer_joined", m.Raw)
	}
	c.ExpectClose(4001, "room closed")
}

func TestClientFailures(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		run  func(c *Client)
		want string
	}{
		{"another frame than the type", func(c *Client) { c.ExpectType("message") }, `waiting for message, got {"type":"state"}`},
		{"another frame than the one", func(c *Client) { c.Expect(`{"type":"joined"}`) }, `got  {"type":"state"}`},
		{"another frame than the error", func(c *Client) { c.ExpectErr("Room not found") }, `want {"type":"error","message":"Room not found"}`},
		{"a frame before the close", func(c *Client) { c.ExpectClose(4001, "room closed") }, `expected close 4001, got frame {"type":"state"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := script(t, 4001, `{"type":"state"}`)
			msg := fails(t, func(tb testing.TB) {
				c := Dial(tb, url)
				c.Send("go")
				c.ExpectType("ip")
				tt.run(c)
			})
			if !strings.Contains(msg, tt.want) {
				t.Fatalf("failure %q, want it to say %q", msg, tt.want)
			}
		})
	}
}

func TestCloseCode(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		code websocket.StatusCode
		want int
	}{
		{"a close frame", 4001, 4001},
		{"a cut socket", 0, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Dial(t, script(t, tt.code, `{"type":"state"}`))
			c.Send("go")
			if got := c.CloseCode(DefaultTimeout); got != tt.want {
				t.Fatalf("CloseCode = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestTryDialReturnsTheRefusal(t *testing.T) {
	t.Parallel()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"Too many requests"}`, http.StatusTooManyRequests)
	}))
	t.Cleanup(hs.Close)
	if _, resp, err := TryDial(t, hs.URL); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("TryDial of a refusing server: %v, %v; want the 429", resp, err)
	}
}
