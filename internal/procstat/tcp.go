package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// tcpTimeWait is the state column's value for TIME-WAIT in /proc/net/tcp.
const tcpTimeWait = "06"

// TimeWait counts IPv4 sockets in TIME-WAIT (/proc/net/tcp) with an
// endpoint whose address, written 127.0.9.11, starts with prefix and whose
// port is port; -1 when the table cannot be read. A socket closed first by
// this side waits there for a minute, holding its address and port pair:
// the figure tells whether connections were reused or churned.
func TimeWait(prefix, port string) int {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return -1
	}
	n := 0
	lines := strings.Split(string(b), "\n")
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != tcpTimeWait {
			continue
		}
		for _, ep := range f[1:3] {
			if ip, p, ok := endpoint(ep); ok && strings.HasPrefix(ip, prefix) && p == port {
				n++
				break
			}
		}
	}
	return n
}

// endpoint reads "0B09007F:1F90" (a little-endian IPv4 address and a port,
// in hex) as "127.0.9.11" and "8080".
func endpoint(ep string) (ip, port string, ok bool) {
	addr, p, found := strings.Cut(ep, ":")
	a, err1 := strconv.ParseUint(addr, 16, 32)
	pn, err2 := strconv.ParseUint(p, 16, 16)
	if !found || len(addr) != 8 || err1 != nil || err2 != nil {
		return "", "", false
	}
	return fmt.Sprintf("%d.%d.%d.%d", byte(a), byte(a>>8), byte(a>>16), byte(a>>24)), strconv.FormatUint(pn, 10), true
}
