package procstat

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

func TestEndpoint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in       string
		ip, port string
		ok       bool
	}{
		{"0B09007F:1F90", "127.0.9.11", "8080", true},
		{"0100007F:0035", "127.0.0.1", "53", true},
		{"00000000:0000", "0.0.0.0", "0", true},
		{"0100007F", "", "", false},
		{"0100007:0035", "", "", false},
		{"XX00007F:0035", "", "", false},
		{"0100007F:10000", "", "", false},
	}
	for _, tt := range tests {
		ip, port, ok := endpoint(tt.in)
		if ip != tt.ip || port != tt.port || ok != tt.ok {
			t.Errorf("endpoint(%q) = %q, %q, %v; want %q, %q, %v", tt.in, ip, port, ok, tt.ip, tt.port, tt.ok)
		}
	}
}

// A connection this side closes first waits in TIME-WAIT, and is counted
// by its peer's address and port; others are not.
func TestTimeWaitCountsAClosedConnection(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.77.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	if n := TimeWait("127.0.77.", port); n != 0 {
		t.Fatalf("TimeWait before any connection = %d, want 0", n)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close() // the active close: the client's socket will wait
	s.Read(make([]byte, 1))
	s.Close()
	testutil.Eventually(t, 5*time.Second, "one socket in TIME-WAIT", func() bool {
		return TimeWait("127.0.77.", port) == 1
	})
	if n := TimeWait("127.0.78.", port); n != 0 {
		t.Errorf("TimeWait of another prefix = %d, want 0", n)
	}
	if n := TimeWait("127.0.77.", "1"); n != 0 {
		t.Errorf("TimeWait of another port = %d, want 0", n)
	}
}
