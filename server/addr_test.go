package server

import (
	"net"
	"net/http"
	"net/netip"
	"testing"
)

func TestAddrKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"203.0.113.7", "203.0.113.7"},
		{"::ffff:203.0.113.7", "203.0.113.7"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
	}
	for _, tt := range tests {
		if got := addrKey(netip.MustParseAddr(tt.in)); got != tt.want {
			t.Errorf("addrKey(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestExemptOnlyForPeerProbes(t *testing.T) {
	s := &Server{cfg: Config{AppName: "app"}}
	tests := []struct {
		name   string
		method string
		path   string
		remote string
		region string
		want   bool
	}{
		{"probe over 6PN", "GET", "/room/abc", "[fdaa:0:1::3]:5000", "", true},
		{"probe on loopback (flylocal)", "GET", "/room/abc", "127.0.0.3:5000", "", true},
		{"through the proxy", "GET", "/room/abc", "[fdaa:0:1::3]:5000", "fra", false},
		{"an upgrade is no probe", "GET", "/", "[fdaa:0:1::3]:5000", "", false},
		{"a POST is no probe", "POST", "/room/abc", "[fdaa:0:1::3]:5000", "", false},
		{"public address", "GET", "/room/abc", "203.0.113.9:5000", "", false},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest(tt.method, "http://x"+tt.path, nil)
		r.RemoteAddr = tt.remote
		if tt.region != "" {
			r.Header.Set("Fly-Region", tt.region)
		}
		if got := s.exempt(r); got != tt.want {
			t.Errorf("%s: exempt = %v, want %v", tt.name, got, tt.want)
		}
	}
	off := &Server{}
	r, _ := http.NewRequest("GET", "http://x/room/abc", nil)
	r.RemoteAddr = "127.0.0.1:1"
	if off.exempt(r) {
		t.Error("off Fly nothing is exempt")
	}
}

type fakeAddrConn struct {
	net.Conn
	addr string
}

func (c fakeAddrConn) RemoteAddr() net.Addr {
	ap := netip.MustParseAddrPort(c.addr)
	return net.TCPAddrFromAddrPort(ap)
}

func TestPendingPerAddressAndTotal(t *testing.T) {
	p := pending{perAddr: 2, total: 3, byConn: map[net.Conn]string{}, byAddr: map[string]int{}}
	a1, a2, a3 := &fakeAddrConn{addr: "[2001:db8::1]:1"}, &fakeAddrConn{addr: "[2001:db8::2]:1"}, &fakeAddrConn{addr: "[2001:db8::3]:1"}
	b1, b2 := &fakeAddrConn{addr: "10.0.0.1:1"}, &fakeAddrConn{addr: "10.0.0.2:1"}
	if !p.admit(a1) || !p.admit(a2) {
		t.Fatal("two from one /64 are within the limit")
	}
	if p.admit(a3) {
		t.Fatal("a third from the same /64 was admitted")
	}
	if !p.admit(b1) {
		t.Fatal("another address was refused")
	}
	if p.admit(b2) {
		t.Fatal("the machine-wide bound was not enforced")
	}
	p.release(a1)
	p.release(a1) // twice is harmless
	p.release(a3) // never admitted: harmless
	if !p.admit(a3) {
		t.Fatal("a released slot was not reusable")
	}
	if p.n != 3 || len(p.byAddr) != 2 {
		t.Fatalf("counts n=%d byAddr=%v", p.n, p.byAddr)
	}
}
