package server

import (
	"net"
	"net/http"
	"sync"
)

// pending counts HTTP connections that have not (yet) become WebSockets:
// the ones still sending request headers are what a slow-header attack
// holds. Off Fly they count per socket address (IPv6 by /64); on Fly every
// connection comes from Fly's proxy, which reads a request's headers before
// it connects to a machine, so there is only the machine-wide bound.
type pending struct {
	perAddr int // 0: unlimited
	total   int // 0: unlimited

	mu     sync.Mutex // guards byConn, byAddr, n
	byConn map[net.Conn]string
	byAddr map[string]int
	n      int
}

func (p *pending) admit(c net.Conn) bool {
	key := ""
	if p.perAddr > 0 {
		key = socketKey(c.RemoteAddr().String())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if (p.total > 0 && p.n >= p.total) || (key != "" && p.byAddr[key] >= p.perAddr) {
		return false
	}
	p.byConn[c] = key
	p.n++
	if key != "" {
		p.byAddr[key]++
	}
	return true
}

func (p *pending) release(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key, ok := p.byConn[c]
	if !ok {
		return
	}
	delete(p.byConn, c)
	p.n--
	if key != "" {
		if p.byAddr[key]--; p.byAddr[key] <= 0 {
			delete(p.byAddr, key)
		}
	}
}

// connState is http.Server.ConnState: a connection over its address's or
// the machine's bound is closed before a byte of it is read.
func (s *Server) connState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		if !s.pending.admit(c) {
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
