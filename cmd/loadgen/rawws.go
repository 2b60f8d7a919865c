package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// rawConn is a minimal WebSocket client for the load tool: one handshake,
// then frames read into a reused buffer and written from the caller's bytes,
// so the tool, not the server, stays cheap per message. Client frames carry
// an all-zero mask key (the protocol requires the mask bit; any key is valid
// for a server), so payloads need no XOR.
type rawConn struct {
	c   net.Conn
	br  *bufio.Reader
	buf []byte // last frame's payload, reused

	wmu  sync.Mutex
	wbuf []byte
}

func dialRaw(ctx context.Context, rawURL string) (*rawConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 16)
	rand.Read(key)
	path := u.RequestURI()
	req := "GET " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\nSec-WebSocket-Version: 13\r\n" +
		"Origin: https://loadgen.local\r\n\r\n"
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(c, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("handshake: %s", resp.Status)
	}
	c.SetDeadline(time.Time{})
	return &rawConn{c: c, br: br, buf: make([]byte, 0, 4096)}, nil
}

var errClosed = errors.New("websocket closed")

// read returns the next data frame's payload (valid until the next read).
// Pings are answered; a close frame ends the connection.
func (r *rawConn) read() ([]byte, error) {
	for {
		var h [2]byte
		if _, err := io.ReadFull(r.br, h[:]); err != nil {
			return nil, err
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(r.br, e[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(r.br, e[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(e[:])
		}
		if n > 16<<20 {
			return nil, errors.New("frame too large")
		}
		if uint64(cap(r.buf)) < n {
			r.buf = make([]byte, n)
		}
		p := r.buf[:n]
		if _, err := io.ReadFull(r.br, p); err != nil {
			return nil, err
		}
		switch op := h[0] & 0x0f; op {
		case 0x1, 0x2, 0x0:
			return p, nil
		case 0x8:
			r.writeFrame(0x8, p)
			r.c.Close()
			return nil, errClosed
		case 0x9:
			if err := r.writeFrame(0xA, p); err != nil {
				return nil, err
			}
		}
	}
}

func (r *rawConn) write(p []byte) error { return r.writeFrame(0x1, p) }

func (r *rawConn) writeFrame(op byte, p []byte) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	b := append(r.wbuf[:0], 0x80|op)
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, 0, 0, 0, 0) // mask key: zero
	b = append(b, p...)
	r.wbuf = b
	_, err := r.c.Write(b)
	return err
}

func (r *rawConn) Close() error { return r.c.Close() }

// call sends msg and reads until a frame containing `"type":"<want>"`.
func (r *rawConn) call(msg, want string) ([]byte, error) {
	r.c.SetDeadline(time.Now().Add(20 * time.Second))
	defer r.c.SetDeadline(time.Time{})
	if err := r.write([]byte(msg)); err != nil {
		return nil, err
	}
	marker := `"type":"` + want + `"`
	for {
		p, err := r.read()
		if err != nil {
			return nil, err
		}
		s := string(p)
		if strings.Contains(s, marker) {
			return p, nil
		}
		if strings.Contains(s, `"type":"error"`) {
			return nil, fmt.Errorf("server error: %s", s)
		}
	}
}
