package testutil

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// NetCut is a network a test can cut for real: a TCP relay on loopback in
// front of target. A cut resets every connection through it and refuses
// new ones until the network is back, so a client sees what a phone sees
// when its Wi-Fi drops (no close frame, failed reconnects), not a hook
// inside the client. It records the first line of every connection (an
// HTTP request line). A black hole (Blackhole) is the other failure: the
// network stops carrying anything and ends nothing, as a phone on a dead
// Wi-Fi sees for as long as TCP keeps retrying.
type NetCut struct {
	ln     net.Listener
	target string

	mu     sync.Mutex // guards conns, until, lines, holeTo; open waits on it
	conns  map[net.Conn]struct{}
	until  time.Time
	lines  []string
	holeTo time.Time             // nothing is forwarded, and nothing closed, until then
	lost   map[net.Conn]struct{} // client sides a black hole swallowed: reset when it ends
	open   *sync.Cond            // broadcast when a black hole ends
}

// StartNetCut relays to target (host:port, or an http:// URL) until the
// test ends.
func StartNetCut(t testing.TB, target string) *NetCut {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &NetCut{ln: ln, target: strings.TrimPrefix(target, "http://"), conns: map[net.Conn]struct{}{},
		lost: map[net.Conn]struct{}{}}
	n.open = sync.NewCond(&n.mu)
	t.Cleanup(func() { ln.Close(); n.Blackhole(0); n.Cut(0) })
	go n.accept()
	return n
}

// Addr is the relay's host:port; URL is it as http://.
func (n *NetCut) Addr() string { return n.ln.Addr().String() }
func (n *NetCut) URL() string  { return "http://" + n.Addr() }

func (n *NetCut) accept() {
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

func (n *NetCut) relay(c net.Conn) {
	defer func() {
		n.mu.Lock()
		delete(n.conns, c)
		delete(n.lost, c)
		n.mu.Unlock()
		c.Close()
	}()
	up, err := net.Dial("tcp", n.target)
	if err != nil {
		return
	}
	defer up.Close()
	n.mu.Lock()
	n.conns[up] = struct{}{}
	n.mu.Unlock()
	defer func() { n.mu.Lock(); delete(n.conns, up); delete(n.lost, up); n.mu.Unlock() }()
	br := bufio.NewReader(c)
	line, _ := br.ReadString('\n')
	n.mu.Lock()
	n.lines = append(n.lines, strings.TrimSpace(line))
	n.mu.Unlock()
	n.waitOpen()
	if _, err := io.WriteString(up, line); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { n.forward(c, up, br); done <- struct{}{} }()
	go func() { n.forward(c, c, up); done <- struct{}{} }()
	<-done
	n.waitOpen() // a black hole carries no FIN either
	if n.swallowed(c) {
		c.(*net.TCPConn).SetLinger(0)
		up.(*net.TCPConn).SetLinger(0)
	}
}

// forward copies src to dst as io.Copy does for client c's connection,
// holding each chunk while the network is a black hole; what a black hole
// swallowed is lost, and the connection with it.
func (n *NetCut) forward(c net.Conn, dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			n.waitOpen()
			if n.swallowed(c) {
				return
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (n *NetCut) swallowed(c net.Conn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.lost[c]
	return ok
}

// waitOpen returns once no black hole is on.
func (n *NetCut) waitOpen() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for time.Now().Before(n.holeTo) {
		n.open.Wait()
	}
}

// Blackhole stops the network for d without ending anything: no byte is
// forwarded and no connection closed (no RST, no FIN) while it lasts. The
// connections open when it began are lost: what they sent is dropped, and
// when it ends they are reset (the far side has long given up on them).
// Connections made during it hang, then go through. Blackhole(0) ends one
// at once.
func (n *NetCut) Blackhole(d time.Duration) {
	n.mu.Lock()
	n.holeTo = time.Now().Add(d)
	if d > 0 {
		for c := range n.conns {
			n.lost[c] = struct{}{}
		}
	}
	n.mu.Unlock()
	n.open.Broadcast()
	time.AfterFunc(d, n.open.Broadcast)
}

// Cut resets every connection and keeps the network down for d.
func (n *NetCut) Cut(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.until = time.Now().Add(d)
	for c := range n.conns {
		c.(*net.TCPConn).SetLinger(0) // a reset, as a dropped network gives
		c.Close()
	}
}

// RequestLines is the first line of every connection so far.
func (n *NetCut) RequestLines() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.lines...)
}

// ServeHTTP is a control for a test in another process: POST /cut?ms=3000,
// or POST /blackhole?ms=8000 (ms=0 ends a black hole).
func (n *NetCut) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if r.Method != http.MethodPost || err != nil || ms < 0 || ms > 60000 {
		http.Error(w, "POST /cut?ms=N or /blackhole?ms=N (0-60000)", http.StatusBadRequest)
		return
	}
	d := time.Duration(ms) * time.Millisecond
	if strings.HasSuffix(r.URL.Path, "/blackhole") {
		n.Blackhole(d)
		return
	}
	n.Cut(d)
}
