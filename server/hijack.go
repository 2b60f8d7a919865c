package server

import (
	"bufio"
	"errors"
	"net"
	"net/http"
)

// hijackRecorder keeps the raw connection that websocket.Accept hijacks, so
// a peer that stops reading can be cut even while a write to it is blocked
// (coder/websocket's Close waits for that write first).
type hijackRecorder struct {
	http.ResponseWriter
	conn net.Conn
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	c, rw, err := hj.Hijack()
	h.conn = c
	return c, rw, err
}
