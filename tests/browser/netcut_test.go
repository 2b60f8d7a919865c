package browser

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// netCut is the players' network: a TCP relay between the browser and an
// edge that the test can cut for real. A cut resets every connection
// through it and refuses new ones until the network is back, so the page
// sees what a phone sees when its Wi-Fi drops (no close frame, failed
// reconnects), not a hook inside the client.
type netCut struct {
	ln     net.Listener
	target string

	mu    sync.Mutex // guards conns, until
	conns map[net.Conn]struct{}
	until time.Time
}

func startNetCut(t *testing.T, target string) *netCut {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &netCut{ln: ln, target: strings.TrimPrefix(target, "http://"), conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); n.cut(0) })
	go n.accept()
	return n
}

func (n *netCut) URL() string { return "http://" + n.ln.Addr().String() }

func (n *netCut) accept() {
	for {
		c, err := n.ln.Accept()
		if err != nil {
			return
		}
		n.mu.Lock()
		down := time.Now().Before(n.until)
		if !down {
			n.conns[c] = struct{}{}
		}
		n.mu.Unlock()
		if down {
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			continue
		}
		go n.relay(c)
	}
}

func (n *netCut) relay(c net.Conn) {
	defer func() {
		n.mu.Lock()
		delete(n.conns, c)
		n.mu.Unlock()
		c.Close()
	}()
	up, err := net.Dial("tcp", n.target)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// cut resets every connection and keeps the network down for d.
func (n *netCut) cut(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.until = time.Now().Add(d)
	for c := range n.conns {
		c.(*net.TCPConn).SetLinger(0) // a reset, as a dropped network gives
		c.Close()
	}
}

// ServeHTTP is the test's control: POST /cut?ms=3000.
func (n *netCut) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if r.Method != http.MethodPost || err != nil || ms < 0 || ms > 60000 {
		http.Error(w, "POST /cut?ms=N (0-60000)", http.StatusBadRequest)
		return
	}
	n.cut(time.Duration(ms) * time.Millisecond)
}
