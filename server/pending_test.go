package server

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
)

type fakeAddrConn struct {
	net.Conn
	addr string
}

func (c *fakeAddrConn) RemoteAddr() net.Addr {
	return net.TCPAddrFromAddrPort(netip.MustParseAddrPort(c.addr))
}

// An address at its bound is refused and evicts nobody; a full machine
// evicts its oldest handshake for the newest (review finding 2: refusing
// the newest let 1000 half-open requests starve every honest one).
func TestPendingPerAddressAndEviction(t *testing.T) {
	p := newPending(3, 2)
	a1, a2, a3 := &fakeAddrConn{
		addr: "[2001:db8::1]:1",
	}, &fakeAddrConn{
		addr: "[2001:db8::2]:1",
	}, &fakeAddrConn{
		addr: "[2001:db8::3]:1",
	}
	b1, b2, b3 := &fakeAddrConn{addr: "10.0.0.1:1"}, &fakeAddrConn{addr: "10.0.0.2:1"}, &fakeAddrConn{addr: "10.0.0.3:1"}
	admit := func(c net.Conn, wantOK bool, wantEvicted net.Conn) {
		t.Helper()
		ok, ev := p.admit(c)
		if ok != wantOK || ev != wantEvicted {
			t.Fatalf("admit(%v) = %v, evicted %v; want %v, %v", c.RemoteAddr(), ok, ev, wantOK, wantEvicted)
		}
	}
	admit(a1, true, nil)
	admit(a2, true, nil)
	admit(a3, false, nil) // a third from the same /64
	admit(b1, true, nil)  // the table is full now
	admit(b2, true, a1)   // the oldest goes
	if p.byAddr["2001:db8::/64"] != 1 {
		t.Fatalf("the evicted connection still counts against its address: %v", p.byAddr)
	}
	admit(a3, true, a2) // its /64 has room again
	p.release(a2)       // evicted already: harmless
	p.release(b1)
	p.release(b1) // twice is harmless
	admit(b3, true, nil)
	if p.len() != 3 || len(p.byConn) != 3 || p.byAddr["2001:db8::/64"] != 1 || len(p.byAddr) != 3 {
		t.Fatalf("counts: len %d byConn %d byAddr %v", p.len(), len(p.byConn), p.byAddr)
	}
}

// Without a per-address bound (on Fly), one address may fill the table,
// and the newest still gets in: the machine-wide bound evicts, in order
// of arrival.
func TestPendingEvictsInOrderOfArrival(t *testing.T) {
	p := newPending(100, 0)
	var conns []net.Conn
	for i := range 250 {
		c := &fakeAddrConn{addr: fmt.Sprintf("10.0.0.1:%d", i+1)}
		conns = append(conns, c)
		ok, ev := p.admit(c)
		if !ok {
			t.Fatalf("connection %d refused", i)
		}
		if i < 100 && ev != nil {
			t.Fatalf("connection %d evicted %v with the table not full", i, ev.RemoteAddr())
		}
		if i >= 100 && ev != conns[i-100] {
			t.Fatalf("connection %d evicted %v, want the oldest, %v", i, ev, conns[i-100].RemoteAddr())
		}
	}
	if p.len() != 100 {
		t.Fatalf("the table holds %d, want 100", p.len())
	}
}
