package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Buffer sizes under coder/websocket. Frames larger than a buffer bypass it,
// so small buffers cost syscalls only for large frames; they are most of
// the memory of an idle connection.
const (
	readBufSize  = 512
	writeBufSize = 256
)

// corkConn is the hijacked socket with write corking: while corked, writes
// collect and uncork sends them in one writev. The writer corks around a
// batch of queued frames, so a busy receiver costs one syscall per batch
// instead of one per frame. Frame headers and small frames are copied into
// one buffer; a large frame is referenced, not copied, so a batch for a
// receiver that stopped reading holds the shared frames and little else.
// Uncorked writes (pings, close frames) go straight through; mu serializes
// all writes to the socket.
type corkConn struct {
	net.Conn
	writeTimeout time.Duration // bounds every socket write (WRITE_TIMEOUT)
	mu           sync.Mutex    // guards corked, sealed, buf, mark, bufs; held during socket writes
	corked       bool
	sealed       bool // a close frame has been written or corked: nothing may follow it

	in   io.Reader   // what the client sends, metered; only the reader goroutine reads
	buf  *[]byte     // headers and small frames
	mark int         // start of the part of buf not yet in bufs
	bufs net.Buffers // what uncork writes, in order
}

// copyMax is the largest frame copied into the cork buffer; larger ones
// are written from the shared frame itself.
const copyMax = 2048

var corkPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// drain discards up to n bytes the client sent, for at most d, straight
// from the socket. Only the reader goroutine, done with reading, calls it.
func (c *corkConn) drain(d time.Duration, n int64) {
	c.Conn.SetReadDeadline(time.Now().Add(d))
	io.CopyN(io.Discard, c.Conn, n)
}

// Read reads what the client sent, through the meter.
func (c *corkConn) Read(p []byte) (int, error) { return c.in.Read(p) }

// Write is how coder/websocket writes its control frames (pings, pongs,
// close), each as one whole frame: it flushes its 256-byte buffer after
// every final frame, and a control frame is at most 129 bytes. So a write
// that starts with 0x88 (FIN, close) is a close frame, and it seals the
// socket: RFC 6455 allows no frame after a close frame, from the library
// or from our writer.
func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sealed {
		return 0, net.ErrClosed
	}
	c.sealed = len(p) > 0 && p[0] == 0x88
	if c.corked {
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	// Every socket write sets its own deadline, so none is ever cleared.
	c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	return c.Conn.Write(p)
}

func (c *corkConn) cork() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = true
	if c.buf == nil {
		c.buf = corkPool.Get().(*[]byte)
	}
	c.mark = len(*c.buf)
}

// appendText adds one complete WebSocket text frame (server frames are
// unmasked: a 2 to 10 byte header, then the bytes). coder/websocket's own
// frames (pings, close) reach the socket through Write as whole frames
// under the same mutex, so frames never interleave.
func (c *corkConn) appendText(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sealed {
		return
	}
	b := append(*c.buf, 0x81) // FIN, text
	switch n := len(p); {
	case n < 126:
		b = append(b, byte(n))
	case n < 1<<16:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if len(p) <= copyMax {
		*c.buf = append(b, p...)
		return
	}
	// Segments of buf already in bufs stay valid if a later append moves
	// buf: the old array lives on until the write.
	c.bufs = append(c.bufs, b[c.mark:], p)
	*c.buf, c.mark = b, len(b)
}

// writeClose writes a close frame straight to the socket (or after what is
// corked) and seals it. Used only when the reader is about to stop.
func (c *corkConn) writeClose(code int, reason string) {
	reason = reason[:min(len(reason), 123)]
	f := []byte{0x88, byte(2 + len(reason)), byte(code >> 8), byte(code)}
	c.Write(append(f, reason...))
}

// uncork sends what collected, bounded by the write timeout.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	b := c.buf
	c.buf = nil
	if b == nil {
		return nil
	}
	if c.mark < len(*b) {
		c.bufs = append(c.bufs, (*b)[c.mark:])
	}
	var err error
	if len(c.bufs) > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
		bufs := c.bufs
		_, err = bufs.WriteTo(c.Conn)
	}
	clear(c.bufs)
	c.bufs, c.mark = c.bufs[:0], 0
	if cap(c.bufs) > 64 {
		c.bufs = nil
	}
	if cap(*b) <= 64<<10 {
		*b = (*b)[:0]
		corkPool.Put(b)
	}
	return err
}

// hijacker hands coder/websocket our corkConn and small buffers in place of
// net/http's, and keeps the corkConn so a peer that stops reading can be cut
// even while a write to it is blocked.
type hijacker struct {
	http.ResponseWriter
	writeTimeout              time.Duration
	framesPerSec, bytesPerSec float64       // what the client may send (meter)
	addrBytes                 *sharedBucket // what its address's sockets together may send (meter); nil: no bound
	conn                      *corkConn
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	raw, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	// The handshake's read deadline (http.Server.ReadTimeout) must not
	// outlive it: a hijacked connection keeps whatever deadlines it had.
	raw.SetDeadline(time.Time{})
	h.conn = &corkConn{Conn: raw, writeTimeout: h.writeTimeout}
	// Every byte the client sends after its upgrade request goes through
	// the meter, those already in net/http's reader first. coder/websocket
	// reads whatever our reader has buffered and then the returned conn:
	// ours buffers nothing, so the meter sees the stream from its start.
	var src io.Reader = raw
	if pending, _ := brw.Reader.Peek(brw.Reader.Buffered()); len(pending) > 0 {
		src = io.MultiReader(bytes.NewReader(bytes.Clone(pending)), raw)
	}
	m := newMeter(src, h.framesPerSec, h.bytesPerSec)
	m.addr = h.addrBytes
	h.conn.in = m
	br := bufio.NewReaderSize(h.conn, readBufSize)
	return h.conn, bufio.NewReadWriter(br, bufio.NewWriterSize(h.conn, writeBufSize)), nil
}
