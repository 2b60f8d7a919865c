package server

import (
	"context"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/party-sockets/party-sockets/closecode"
)

// conn is one player's socket as the rooms see it: a bounded queue drained
// by a writer goroutine that runs only while there is something to write
// (an idle connection costs one goroutine, its reader). Send never blocks;
// a receiver whose queue is full is closed rather than stall its room or
// silently skip frames. Frames are written in batches under a cork, one
// syscall per batch. Queued and in-flight bytes count in the machine's
// memory budget until they are written or dropped.
type conn struct {
	// Static after construction.
	ws                  *websocket.Conn
	raw                 *corkConn
	s                   *Server
	maxFrames, maxBytes int
	pingEvery           time.Duration
	ping                *time.Timer
	opened              int64 // the server's tick when the socket opened

	// Guarded by mu.
	mu          sync.Mutex
	queue       [][]byte
	spare       [][]byte // the previous batch's slice, reused
	queuedBytes int
	inflight    int  // bytes of the batch being written
	writing     bool // a flush goroutine is running
	closed      bool // no more frames accepted
	closing     bool // a close to send once the queue is empty: closeEnd
	closeEnd    closecode.End
	finished    bool // the reader has ended

	// Atomic.
	reason   atomic.Uint32 // a closecode.End: why the socket ended; the first set sticks
	joinDone atomic.Bool   // the join deadline is over: a room was created or joined, or it closed the socket
	msgStart atomic.Int64  // tick when the message being read began; 0 between messages
}

func newConn(ws *websocket.Conn, raw *corkConn, s *Server) *conn {
	c := &conn{ws: ws, raw: raw, s: s, maxFrames: s.cfg.QueueFrames, maxBytes: s.cfg.QueueBytes,
		pingEvery: s.cfg.PingInterval, opened: s.tick.Load()}
	c.ping = time.AfterFunc(c.pingEvery, c.heartbeat)
	return c
}

// Send queues a frame without blocking. On overflow we close the player
// rather than drop the frame: a gap in game state is worse than a reconnect.
func (c *conn) Send(frame []byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= c.maxFrames || c.queuedBytes+len(frame) > c.maxBytes {
		c.closed = true
		c.mu.Unlock()
		c.setReason(closecode.EndSlow)
		// The writer may be stuck on this very peer: close from here, and
		// give the close frame a second before cutting the socket so the
		// room learns of the departure promptly.
		go c.closeWithin(closecode.EndSlow, time.Second)
		return
	}
	c.queue = append(c.queue, frame)
	c.queuedBytes += len(frame)
	c.startWriterLocked()
	c.mu.Unlock()
	c.s.budget.Add(int64(len(frame)))
	c.s.maybeShed()
}

// abort closes a connection for abuse, from its reader: what is queued for
// it is dropped and the close frame goes out at once (nothing follows it:
// the socket is sealed). The reader then returns and the socket is cut:
// unlike coder/websocket's Close, nothing waits for the peer's close frame,
// so nothing more of the abuser's is read.
func (c *conn) abort(end closecode.End) {
	c.setReason(end)
	c.mu.Lock()
	c.closed = true
	c.dropQueueLocked()
	c.mu.Unlock()
	c.raw.writeClose(int(end.Code()), end.Text())
}

// dropQueueLocked discards every queued frame and releases its bytes from
// the memory budget. c.mu must be held.
func (c *conn) dropQueueLocked() {
	c.s.budget.Add(-int64(c.queuedBytes))
	c.queue, c.queuedBytes = nil, 0
}

// held is what the connection holds of the memory budget, and whether it
// is already closing (what it holds is on its way out).
func (c *conn) held() (n int, closing bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queuedBytes + c.inflight, c.closed
}

// shed drops the queue and closes the connection with 4002, as if it had
// overflowed: the memory budget is exceeded and this queue is among the
// largest. It reports whether it did anything.
func (c *conn) shed() bool {
	c.mu.Lock()
	if c.finished || (c.closed && c.queuedBytes == 0) {
		c.mu.Unlock()
		return false
	}
	c.closed = true
	c.dropQueueLocked()
	c.mu.Unlock()
	c.setReason(closecode.EndShed)
	go c.closeWithin(closecode.EndShed, time.Second)
	return true
}

// checkDeadlines runs on the sweeper: a socket must create or join within
// the join timeout, and a message must arrive whole within the message
// timeout once its first frame has.
func (c *conn) checkDeadlines(now, joinTicks, msgTicks int64) {
	if start := c.msgStart.Load(); start != 0 && now-start > msgTicks {
		c.setReason(closecode.EndMsgTimeout)
		c.ws.CloseNow()
		return
	}
	if !c.joinDone.Load() && now-c.opened > joinTicks {
		c.setReason(closecode.EndJoinTimeout)
		c.joinDone.Store(true) // closed once
		go c.closeWithin(closecode.EndJoinTimeout, time.Second)
	}
}

// Close queues the close of end once the queue is empty: after every
// frame already queued when end flushes (so nothing sent before the close
// is lost), at once when it drops them. An end that sends no close frame
// cuts the socket.
func (c *conn) Close(end closecode.End) {
	c.setReason(end)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	if !end.Flush() {
		c.dropQueueLocked()
	}
	c.closing, c.closeEnd = true, end
	c.startWriterLocked()
}

func (c *conn) startWriterLocked() {
	if !c.writing && !c.finished {
		c.writing = true
		go c.flush()
	}
}

// flush writes queued frames in batches until the queue is empty, then
// sends a requested close, and exits.
func (c *conn) flush() {
	for {
		// Let every goroutine that is already runnable (readers handling
		// other players' messages) queue its frames first: they join this
		// batch and share its syscall, as an event loop flushes corked
		// sockets once per iteration. It costs one scheduling round.
		runtime.Gosched()
		c.mu.Lock()
		batch := c.queue
		c.queue, c.spare = c.spare[:0], nil
		n := c.queuedBytes
		c.queuedBytes = 0
		if len(batch) == 0 || c.finished {
			c.s.budget.Add(-int64(n))
			closing, end := c.closing, c.closeEnd
			c.closing = false
			c.writing = false
			if cap(batch) <= 16 {
				c.spare = batch[:0] // small: keep for the next burst
			}
			c.queue = nil
			c.mu.Unlock()
			if closing && !c.isFinished() {
				c.closeNow(end)
			}
			return
		}
		c.inflight = n
		c.mu.Unlock()
		ok := c.writeBatch(batch)
		c.mu.Lock()
		c.s.budget.Add(-int64(c.inflight))
		c.inflight = 0
		c.mu.Unlock()
		if !ok {
			return
		}
		clear(batch)
		c.mu.Lock()
		if c.spare == nil {
			c.spare = batch[:0]
		}
		c.mu.Unlock()
	}
}

func (c *conn) writeBatch(batch [][]byte) bool {
	c.raw.cork()
	for _, f := range batch {
		// Framed straight into the cork buffer: no syscall, no lock of
		// coder/websocket's per frame.
		c.raw.appendText(f)
	}
	if err := c.raw.uncork(); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			c.setReason(closecode.EndWriteTimeout)
		}
		c.fail()
		return false
	}
	return true
}

// fail ends a connection whose socket write failed.
func (c *conn) fail() {
	c.mu.Lock()
	c.writing = false
	c.closed = true
	c.dropQueueLocked() // nothing more will be written
	c.mu.Unlock()
	c.ws.CloseNow()
}

func (c *conn) isFinished() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.finished
}

// finish is called once the reader has ended: no more writes or pings.
func (c *conn) finish() {
	c.mu.Lock()
	c.finished, c.closed = true, true
	if !c.writing {
		c.dropQueueLocked() // no writer will take it any more
	}
	c.mu.Unlock()
	c.ping.Stop()
	c.ws.CloseNow()
}

// setReason records why the socket ended; the first reason sticks.
// Until one is set it is EndClient: the client ended it.
func (c *conn) setReason(end closecode.End) {
	c.reason.CompareAndSwap(uint32(closecode.EndClient), uint32(end))
}

func (c *conn) closedReason() closecode.End { return closecode.End(c.reason.Load()) }

// heartbeat pings (a ping waits for its pong, which the reader receives); a
// peer that does not answer within one interval is dead. It runs on the
// timer's goroutine, so idle connections need no goroutine of their own.
func (c *conn) heartbeat() {
	ctx, cancel := context.WithTimeout(context.Background(), c.pingEvery)
	defer cancel()
	if err := c.ws.Ping(ctx); err != nil {
		if ctx.Err() != nil && !c.isFinished() {
			c.setReason(closecode.EndDeadPeer)
		}
		c.ws.CloseNow()
		return
	}
	if !c.isFinished() {
		c.ping.Reset(c.pingEvery)
	}
}

// closeWithin sends end's close frame but cuts the socket if the peer has
// not taken it within d.
func (c *conn) closeWithin(end closecode.End, d time.Duration) {
	t := time.AfterFunc(d, func() { c.raw.Close() })
	defer t.Stop()
	c.closeNow(end)
}

// closeNow sends end's close frame, through coder/websocket, which waits
// for the peer's; an end without one cuts the socket.
func (c *conn) closeNow(end closecode.End) {
	if end.Code() == 0 {
		c.ws.CloseNow()
		return
	}
	c.ws.Close(websocket.StatusCode(end.Code()), end.Text())
}
