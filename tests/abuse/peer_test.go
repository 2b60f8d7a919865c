package abuse

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/party-sockets/party-sockets/internal/wsframe"
)

// peer is a raw WebSocket client from a loopback address of its choice.
// It has no goroutine of its own until something reads it, so a test can
// hold thousands of them; it answers pings while it reads.
type peer struct {
	c  net.Conn
	r  *bufio.Reader
	mu sync.Mutex // guards writes to c
}

// errRefused is an upgrade answered with an HTTP status other than 101.
type errRefused struct {
	status int
	body   string
}

func (e errRefused) Error() string { return fmt.Sprintf("upgrade refused: %d %s", e.status, e.body) }

// dialPeer upgrades a TCP connection from src to addr. rcvbuf > 0 makes
// its receive buffer that small: a reader that stops holds little in the
// kernel, and the server's queue for it fills.
func dialPeer(addr, src string, rcvbuf int) (*peer, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf) })
		}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 16)
	rand.Read(key)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n", addr, base64.StdEncoding.EncodeToString(key))
	r := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		c.Close()
		return nil, errRefused{resp.StatusCode, strings.TrimSpace(string(body))}
	}
	c.SetDeadline(time.Time{})
	return &peer{c: c, r: r}, nil
}

// write writes raw bytes (frames built by wsframe.Client).
func (p *peer) write(b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := p.c.Write(b)
	return err
}

// send writes one whole text message.
func (p *peer) send(msg string) error {
	return p.write(wsframe.Client(true, wsframe.OpText, []byte(msg)))
}

// next reads one frame within d, answering pings on the way.
func (p *peer) next(d time.Duration) (op byte, payload []byte, err error) {
	for {
		if d > 0 {
			p.c.SetReadDeadline(time.Now().Add(d))
		} else {
			p.c.SetReadDeadline(time.Time{})
		}
		var h [2]byte
		if _, err := io.ReadFull(p.r, h[:]); err != nil {
			return 0, nil, err
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(p.r, e[:]); err != nil {
				return 0, nil, err
			}
			n = uint64(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(p.r, e[:]); err != nil {
				return 0, nil, err
			}
			n = binary.BigEndian.Uint64(e[:])
		}
		if n > 1<<20 {
			return 0, nil, errors.New("frame over 1 MiB")
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(p.r, b); err != nil {
			return 0, nil, err
		}
		op = h[0] & 0x0f
		if op == wsframe.OpPing {
			p.write(wsframe.Client(true, wsframe.OpPong, b))
			continue
		}
		return op, b, nil
	}
}

// expect reads until a text frame of type typ; it returns what came
// instead when a frame of another type "error" does, or the close.
func (p *peer) expect(typ string, d time.Duration) (string, error) {
	for {
		op, b, err := p.next(d)
		if err != nil {
			return "", err
		}
		switch {
		case op == wsframe.OpClose:
			return "", fmt.Errorf("closed with %d", closeCodeOf(b))
		case strings.Contains(string(b), `"type":"`+typ+`"`):
			return string(b), nil
		case strings.Contains(string(b), `"type":"error"`):
			return "", errors.New(string(b))
		}
	}
}

func closeCodeOf(b []byte) int {
	if len(b) < 2 {
		return 1005
	}
	return int(binary.BigEndian.Uint16(b))
}

// readAll reads p until its socket ends, on a goroutine, counting the
// relayed messages it gets in frames; it reports the close code (-1: no
// close frame) to closed, once.
func (p *peer) readAll(frames *atomic.Int64, closed func(code int)) {
	go func() {
		for {
			op, b, err := p.next(0)
			if err != nil {
				closed(-1)
				return
			}
			if op == wsframe.OpClose {
				closed(closeCodeOf(b))
				return
			}
			if frames != nil && strings.HasPrefix(string(b), `{"type":"message"`) {
				frames.Add(1)
			}
		}
	}()
}

func (p *peer) close() { p.c.Close() }

// reset ends p's socket with a TCP reset: no TIME_WAIT is left, so
// thousands of short sockets do not use up the loopback's ports.
func (p *peer) reset() {
	p.c.(*net.TCPConn).SetLinger(0)
	p.c.Close()
}

// patiently calls f until it succeeds or is refused for anything but
// the per-address upgrade rate (429), within 40 tries.
func patiently(f func() error) error {
	var err error
	for range 40 {
		var r errRefused
		if err = f(); !errors.As(err, &r) || r.status != http.StatusTooManyRequests {
			return err
		}
		time.Sleep(250 * time.Millisecond)
	}
	return err
}

// roomOf is the room code in a created frame.
func roomOf(created string) string {
	_, rest, _ := strings.Cut(created, `"room":"`)
	code, _, _ := strings.Cut(rest, `"`)
	return code
}

// peerCreate dials from src and creates a room of max members.
func peerCreate(addr, src, clientID string, max int) (*peer, string, error) {
	p, err := dialPeer(addr, src, 0)
	if err != nil {
		return nil, "", err
	}
	p.send(fmt.Sprintf(`{"type":"create","clientId":%q,"maxClients":%d}`, clientID, max))
	f, err := p.expect("created", 5*time.Second)
	if err != nil {
		p.close()
		return nil, "", err
	}
	return p, roomOf(f), nil
}

// peerJoin dials from src and joins code as clientID.
func peerJoin(addr, src, code, clientID string, rcvbuf int) (*peer, error) {
	p, err := dialPeer(addr, src, rcvbuf)
	if err != nil {
		return nil, err
	}
	p.send(fmt.Sprintf(`{"type":"join","clientId":%q,"room":%q}`, clientID, code))
	if _, err := p.expect("joined", 5*time.Second); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// addr16 is the loopback address 127.<a>.<b>.<c> for the n-th of a range
// of attackers or players: block names the range (1-255), n up to 65,000.
func addr16(block, n int) string { return fmt.Sprintf("127.%d.%d.%d", block, n/250, 1+n%250) }
