package server

import (
	"container/list"
	"net"
	"net/http"
	"sync"

	"github.com/party-sockets/party-sockets/internal/wire"
)

// pending counts HTTP connections that have not (yet) become WebSockets:
// the ones still sending request headers are what a slow-header attack
// holds, and keep-alive connections between requests.
//
// The machine holds at most total of them. When it is full, the oldest is
// closed to admit the newest, never the other way round: an honest
// handshake (on Fly, the proxy's, which has read the request's headers
// before it connects) completes in milliseconds, so connections that hold
// the table by never finishing starve it only if they arrive faster than
// total per handshake time: with 1000 and 5 ms, 200,000 new connections a
// second (docs/limits.md).
//
// Off Fly they also count per socket address (IPv6 by /64): an address at
// perAddr has its new connection refused, and evicts nobody. On Fly every
// socket address is the proxy's, so there is only the machine-wide bound.
type pending struct {
	perAddr int // 0: unlimited
	total   int // 0: unlimited

	mu     sync.Mutex // guards order, byConn, byAddr
	order  list.List  // of *pendingConn, oldest first
	byConn map[net.Conn]*list.Element
	byAddr map[string]int
}

// pendingConn is one connection of the table, with the address key it
// counts against ("" when not counted per address).
type pendingConn struct {
	c   net.Conn
	key string
}

func newPending(total, perAddr int) *pending {
	return &pending{total: total, perAddr: perAddr, byConn: map[net.Conn]*list.Element{}, byAddr: map[string]int{}}
}

// admit takes c into the table. It reports false when c's address is at
// its bound (the caller closes c); evicted is the oldest connection, taken
// out of the table to make room for c, which the caller closes.
func (p *pending) admit(c net.Conn) (ok bool, evicted net.Conn) {
	key := ""
	if p.perAddr > 0 {
		key = socketKey(c.RemoteAddr().String())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if key != "" && p.byAddr[key] >= p.perAddr {
		return false, nil
	}
	if p.total > 0 && p.order.Len() >= p.total {
		evicted = p.removeLocked(p.order.Front())
	}
	p.byConn[c] = p.order.PushBack(&pendingConn{c: c, key: key})
	if key != "" {
		p.byAddr[key]++
	}
	return true, evicted
}

// release takes c out of the table, if it is still there.
func (p *pending) release(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.byConn[c]; ok {
		p.removeLocked(e)
	}
}

// removeLocked takes e out of the table and returns its connection.
func (p *pending) removeLocked(e *list.Element) net.Conn {
	pc := p.order.Remove(e).(*pendingConn)
	delete(p.byConn, pc.c)
	if pc.key != "" {
		if p.byAddr[pc.key]--; p.byAddr[pc.key] <= 0 {
			delete(p.byAddr, pc.key)
		}
	}
	return pc.c
}

// len is how many connections the table holds.
func (p *pending) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.order.Len()
}

// errHandshakeEvicted counts (in metrics; nothing is sent) a connection
// closed to make room in a full table of handshakes.
var errHandshakeEvicted = wire.Define("Handshake evicted")

// connState is http.Server.ConnState: a connection over its address's
// bound is closed before a byte of it is read; one that finds the
// machine's table full closes the oldest in it.
func (s *Server) connState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		ok, evicted := s.pending.admit(c)
		if evicted != nil {
			s.metrics.errorSent(errHandshakeEvicted)
			evicted.Close()
		}
		if !ok {
			s.metrics.errorSent(errTooManyConns)
			c.Close()
		}
	case http.StateHijacked, http.StateClosed:
		s.pending.release(c)
	}
}

// HTTPServer is the http.Server for s, with every handshake bound: header
// bytes, header and body time, idle keep-alive time, and connections that
// have not become WebSockets yet.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.HandshakeTimeout,
		ReadTimeout:       s.cfg.HandshakeTimeout,
		IdleTimeout:       s.cfg.HandshakeTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ConnState:         s.connState,
	}
}
