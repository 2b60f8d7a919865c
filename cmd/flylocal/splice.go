package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
)

// splice joins a client and a machine after a 101. The machine→client
// direction is copied a whole frame at a time so the proxy can put a close
// frame between two frames when the machine is stopped.
type splice struct {
	client, machine net.Conn
	mu              sync.Mutex // guards writes to client, done
	done            bool
}

func (e *edge) splice(w http.ResponseWriter, m *machine, mconn net.Conn, mbuf *bufio.Reader, resp *http.Response) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		mconn.Close()
		m.load.Add(-1)
		return
	}
	cconn, cbuf, err := hj.Hijack()
	if err != nil {
		mconn.Close()
		m.load.Add(-1)
		return
	}
	head := fmt.Sprintf("HTTP/1.1 101 Switching Protocols\r\n")
	for k, vs := range resp.Header {
		for _, v := range vs {
			head += k + ": " + v + "\r\n"
		}
	}
	if _, err := io.WriteString(cconn, head+"\r\n"); err != nil {
		cconn.Close()
		mconn.Close()
		m.load.Add(-1)
		return
	}
	s := &splice{client: cconn, machine: mconn}
	m.addSplice(s)
	e.c.websockets.Add(1)
	go func() {
		io.Copy(mconn, cbuf.Reader) // client → machine, raw
		s.end()
	}()
	s.copyFrames(mbuf)
	s.end()
	m.removeSplice(s)
	m.load.Add(-1)
	e.c.websockets.Add(-1)
}

func (s *splice) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	s.client.Close()
	s.machine.Close()
}

// copyFrames forwards whole WebSocket frames from the machine to the client.
func (s *splice) copyFrames(r *bufio.Reader) {
	var hdr [14]byte
	for {
		if _, err := io.ReadFull(r, hdr[:2]); err != nil {
			return
		}
		n := 2
		length := uint64(hdr[1] & 0x7f)
		switch length {
		case 126:
			if _, err := io.ReadFull(r, hdr[2:4]); err != nil {
				return
			}
			length, n = uint64(binary.BigEndian.Uint16(hdr[2:4])), 4
		case 127:
			if _, err := io.ReadFull(r, hdr[2:10]); err != nil {
				return
			}
			length, n = binary.BigEndian.Uint64(hdr[2:10]), 10
		}
		if hdr[1]&0x80 != 0 { // masked (never from a server, but be exact)
			if _, err := io.ReadFull(r, hdr[n:n+4]); err != nil {
				return
			}
			n += 4
		}
		if length > 64<<20 {
			return
		}
		frame := make([]byte, n+int(length))
		copy(frame, hdr[:n])
		if _, err := io.ReadFull(r, frame[n:]); err != nil {
			return
		}
		s.mu.Lock()
		if s.done {
			s.mu.Unlock()
			return
		}
		_, err := s.client.Write(frame)
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// goingAway sends the client a close frame (1001) between two frames and
// ends the splice, as Fly's proxy does before stopping a machine.
func (s *splice) goingAway() {
	s.mu.Lock()
	if !s.done {
		payload := append([]byte{0x03, 0xe9}, "machine stopping"...) // 1001
		s.client.Write(append([]byte{0x88, byte(len(payload))}, payload...))
	}
	s.mu.Unlock()
	s.end()
}
