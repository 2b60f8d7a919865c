package main

import (
	"net"
	"sync"
	"time"
)

// phoneNet is one player's network: a TCP relay on 127.0.0.1 in front of
// an edge, which connects to the edge from the player's own loopback
// address (so each player is its own client address to the server's
// per-address limits, as phones are on Fly), and which the drill can cut.
//
// A cut is a phone whose network drops: for its length no byte moves on
// the player's sockets (nor on new ones: a dial hangs), and neither end
// hears of it; when it ends every socket that was open is reset at both
// ends, as when a phone comes back on a new network. The server's window
// then holds what it sent into the void.
type phoneNet struct {
	ln   net.Listener
	edge string       // host:port of the edge
	src  *net.TCPAddr // the player's address

	mu     sync.Mutex // guards the fields below
	conns  map[*net.TCPConn]struct{}
	cutEnd chan struct{} // non-nil while cut: closed when the cut ends
	closed bool
}

func newPhoneNet(edge string, src net.IP) (*phoneNet, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &phoneNet{ln: ln, edge: edge, src: &net.TCPAddr{IP: src}, conns: map[*net.TCPConn]struct{}{}}
	go p.serve()
	return p, nil
}

// URL is the base URL the player's client uses.
func (p *phoneNet) URL() string { return "http://" + p.ln.Addr().String() }

func (p *phoneNet) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.relay(c.(*net.TCPConn))
	}
}

func (p *phoneNet) relay(in *net.TCPConn) {
	if !p.track(in) {
		in.Close()
		return
	}
	defer p.untrack(in)
	p.waitCut()
	d := net.Dialer{LocalAddr: p.src, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", p.edge)
	if err != nil {
		return
	}
	out := c.(*net.TCPConn)
	if !p.track(out) {
		out.Close()
		return
	}
	defer p.untrack(out)
	done := make(chan struct{}, 2)
	go func() { p.pipe(out, in); done <- struct{}{} }()
	go func() { p.pipe(in, out); done <- struct{}{} }()
	<-done
}

// pipe copies src to dst, holding each chunk while the network is cut.
func (p *phoneNet) pipe(dst, src *net.TCPConn) {
	defer dst.CloseWrite()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.waitCut()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *phoneNet) waitCut() {
	p.mu.Lock()
	ch := p.cutEnd
	p.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

func (p *phoneNet) isCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cutEnd != nil
}

func (p *phoneNet) track(c *net.TCPConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *phoneNet) untrack(c *net.TCPConn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.SetLinger(0)
	c.Close()
}

// cut stalls the network for d, then resets every socket that was open.
func (p *phoneNet) cut(d time.Duration) {
	p.mu.Lock()
	if p.cutEnd != nil || p.closed {
		p.mu.Unlock()
		return
	}
	end := make(chan struct{})
	p.cutEnd = end
	p.mu.Unlock()
	time.Sleep(d) // the cut is the scenario: it lasts d
	p.mu.Lock()
	p.cutEnd = nil
	conns := make([]*net.TCPConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.SetLinger(0) // an RST, not a FIN: the socket died
		c.Close()
	}
	close(end)
}

func (p *phoneNet) close() {
	p.mu.Lock()
	p.closed = true
	conns := make([]*net.TCPConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		c.Close()
	}
}
