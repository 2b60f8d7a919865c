// Package flydns is a fake of Fly's internal DNS (6PN) for one app: a real
// miekg/dns server on a loopback port, UDP and TCP, that cmd/flylocal, the
// attack tools and the tests all run (docs/flylocal.md). It answers the names of Fly's private-network DNS:
//
//	vms.<app>.internal              TXT "<id> <region>,...", started machines
//	all.vms.<app>.internal          TXT, every machine
//	<id>.vm.<app>.internal          A/AAAA of that machine, started or not
//	<region>.<app>.internal         A/AAAA of the region's started machines
//	<app>.internal                  A/AAAA of every started machine
//	top<N>.nearest.of.<app>.internal A/AAAA of the first N started machines
//
// A TXT value over 255 bytes is split into character-strings; an answer
// larger than the client's UDP buffer is truncated so the client retries on
// TCP. Unknown names are NXDOMAIN, a known name asked for another type is
// an empty answer, and every TTL is 5 s, as Fly's one example shows.
// Switches make the resolver go down (it never answers) or slow.
//
// It imports no testing code: commands run it as well as tests.
package flydns

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Machine is one of the app's machines as DNS shows it.
type Machine struct {
	ID     string
	Region string
	// IP is its private address: an IPv4 address answers A questions, an
	// IPv6 one AAAA; empty answers neither.
	IP string
	// Stopped machines are listed only by all.vms and their own id.
	Stopped bool
}

// MaxWaiting bounds the questions a slow resolver holds at once; more are
// dropped unanswered, as an overwhelmed resolver would, so a flood of
// questions cannot pile up goroutines.
const MaxWaiting = 256

// Server is a running fake resolver.
type Server struct {
	// Static after Listen.
	App    string
	Addr   string           // host:port, the same port for UDP and TCP
	source func() []Machine // nil: the table below
	udp    *dns.Server      // serves UDP on Addr
	tcp    *dns.Server      // serves TCP on Addr
	closed chan struct{}    // closed by Close: slow answers give up
	wait   chan struct{}    // a token per question held by the delay
	once   sync.Once        // closes closed

	mu    sync.Mutex // guards table
	table []Machine  // in the order first added

	down  atomic.Bool  // questions are read and never answered
	delay atomic.Int64 // nanoseconds every answer waits

	Queries atomic.Int64 // questions answered
	TXT     atomic.Int64 // TXT questions answered
	TCP     atomic.Int64 // questions answered over TCP
	Dropped atomic.Int64 // questions not answered: down, or too many waiting
}

// Listen serves app's names on a free loopback port until Close. With a
// nil source the server answers from its own table (Add, Put, Remove);
// otherwise source is asked for the machines on every question, in a
// stable order, and must be safe to call from many goroutines.
func Listen(app string, source func() []Machine) (*Server, error) {
	pc, ln, err := listenPair()
	if err != nil {
		return nil, err
	}
	s := &Server{App: app, Addr: pc.LocalAddr().String(), source: source,
		closed: make(chan struct{}), wait: make(chan struct{}, MaxWaiting)}
	s.udp = &dns.Server{PacketConn: pc, Handler: s}
	s.tcp = &dns.Server{Listener: ln, Handler: s}
	// Wait until both serve, so that a Close right away stops them.
	started := make(chan error, 4)
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		srv.NotifyStartedFunc = func() { started <- nil }
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				started <- err
			}
		}()
	}
	for range 2 {
		if err := <-started; err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// listenPair opens UDP and TCP on the same loopback port, retrying when
// the TCP side of a free UDP port is taken.
func listenPair() (net.PacketConn, net.Listener, error) {
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
	}
	return nil, nil, errors.New("flydns: no loopback port free for both UDP and TCP")
}

// Close stops serving; answers still waiting on a delay are dropped.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closed)
		s.udp.Shutdown()
		s.tcp.Shutdown()
	})
}

// SetDown makes the resolver ignore every question (true) or answer again.
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// Down reports whether the resolver ignores every question.
func (s *Server) Down() bool { return s.down.Load() }

// SetDelay makes every answer wait d (0: answer at once).
func (s *Server) SetDelay(d time.Duration) { s.delay.Store(int64(max(d, 0))) }

// Delay is how long every answer waits.
func (s *Server) Delay() time.Duration { return time.Duration(s.delay.Load()) }

// Add lists a started machine, or replaces (and starts) the one with its id.
func (s *Server) Add(id, region, ip string) { s.Put(Machine{ID: id, Region: region, IP: ip}) }

// Put lists m, or replaces the machine with its id where it stands.
func (s *Server) Put(m Machine) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.table {
		if s.table[i].ID == m.ID {
			s.table[i] = m
			return
		}
	}
	s.table = append(s.table, m)
}

// Remove takes the machine with id out of every answer.
func (s *Server) Remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.table {
		if s.table[i].ID == id {
			s.table = append(s.table[:i], s.table[i+1:]...)
			return
		}
	}
}

// machines is what DNS lists now: the source's, or a copy of the table.
func (s *Server) machines() []Machine {
	if s.source != nil {
		return s.source()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Machine(nil), s.table...)
}

// Waiting is how many questions the delay holds now.
func (s *Server) Waiting() int { return len(s.wait) }
