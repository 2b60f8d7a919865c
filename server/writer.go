package server

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Close codes this server adds. 4000 and 4001 (rooms package) are final for
// clients; every code here makes a client reconnect.
const (
	CloseTooSlow       = 4002 // the receiver's queue overflowed
	CloseMessageTooBig = int(websocket.StatusMessageTooBig)
	CloseRestarting    = int(websocket.StatusServiceRestart)
	ClosePolicy        = int(websocket.StatusPolicyViolation)
)

// conn is one player's socket as the rooms see it: a bounded queue drained
// by a single writer goroutine. Send never blocks; a receiver whose queue is
// full is closed rather than stall its room or silently skip frames.
type conn struct {
	ws      *websocket.Conn
	raw     net.Conn // the hijacked socket under ws
	out     chan []byte
	stop    chan struct{} // closed when the reader has finished
	closing chan struct{} // closed once a close is requested
	done    chan struct{} // closed when the writer has exited

	closeOnce   sync.Once
	closeCode   int    // written before closing is closed
	closeReason string // written before closing is closed
	reason      atomic.Value
	pinging     atomic.Bool

	writeTimeout time.Duration
	pingEvery    time.Duration
	onClose      func(reason string)
}

func newConn(ws *websocket.Conn, raw net.Conn, queue int, writeTimeout, pingEvery time.Duration) *conn {
	return &conn{
		ws:           ws,
		raw:          raw,
		out:          make(chan []byte, queue),
		stop:         make(chan struct{}),
		closing:      make(chan struct{}),
		done:         make(chan struct{}),
		writeTimeout: writeTimeout,
		pingEvery:    pingEvery,
	}
}

// Send queues a frame without blocking. On overflow we close the player
// rather than drop the frame: a gap in game state is worse than a reconnect.
func (c *conn) Send(frame []byte) {
	select {
	case c.out <- frame:
	default:
		c.setReason(reasonSlow)
		c.closeOnce.Do(func() {
			c.closeCode, c.closeReason = CloseTooSlow, "too slow"
			close(c.closing)
			// The writer may be stuck on this very peer: close from here,
			// and give the close frame a second before cutting the socket so
			// the room learns of the departure promptly.
			go c.closeWithin(CloseTooSlow, "too slow", time.Second)
		})
	}
}

// Close queues a close after every frame already queued, so nothing sent
// before the close is lost.
func (c *conn) Close(code int, reason string) {
	switch code {
	case 4000:
		c.setReason(reasonReplaced)
	case 4001:
		c.setReason(reasonRoomClosed)
	case CloseRestarting:
		c.setReason(reasonRestart)
	}
	c.closeOnce.Do(func() {
		c.closeCode, c.closeReason = code, reason
		close(c.closing)
	})
}

// setReason records why the socket ended; the first reason sticks.
func (c *conn) setReason(r string) { c.reason.CompareAndSwap(nil, r) }

func (c *conn) closedReason() string {
	if r, ok := c.reason.Load().(string); ok {
		return r
	}
	return reasonClient
}

// writeLoop is the only writer of frames. It returns when the reader is done
// or after sending a requested close.
func (c *conn) writeLoop() {
	defer close(c.done)
	ping := time.NewTicker(c.pingEvery)
	defer ping.Stop()
	for {
		select {
		case f := <-c.out:
			if !c.write(f) {
				return
			}
		case <-c.closing:
			if c.closeCode == CloseTooSlow {
				return // Send already closes the socket
			}
			for drained := false; !drained; {
				select {
				case f := <-c.out:
					if !c.write(f) {
						return
					}
				default:
					drained = true
				}
			}
			c.ws.Close(websocket.StatusCode(c.closeCode), c.closeReason)
			return
		case <-ping.C:
			c.heartbeat()
		case <-c.stop:
			return
		}
	}
}

func (c *conn) write(f []byte) bool {
	ctx, cancel := context.WithTimeout(context.Background(), c.writeTimeout)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, f); err != nil {
		if ctx.Err() != nil {
			c.setReason(reasonWriteTimeout)
		}
		c.ws.CloseNow()
		return false
	}
	return true
}

// heartbeat pings in the background (a ping waits for its pong, which the
// reader receives); a peer that does not answer within one interval is dead.
func (c *conn) heartbeat() {
	if !c.pinging.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.pinging.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), c.pingEvery)
		defer cancel()
		if err := c.ws.Ping(ctx); err != nil && ctx.Err() != nil {
			c.setReason(reasonDeadPeer)
			c.ws.CloseNow()
		}
	}()
}

// closeWithin sends a close frame but cuts the socket if the peer has not
// taken it within d.
func (c *conn) closeWithin(code int, reason string, d time.Duration) {
	t := time.AfterFunc(d, func() { c.raw.Close() })
	defer t.Stop()
	c.ws.Close(websocket.StatusCode(code), reason)
}
