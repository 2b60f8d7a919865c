package server

import (
	"context"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/coder/websocket"

	"github.com/party-sockets/party-sockets/closecode"
	"github.com/party-sockets/party-sockets/internal/budget"
)

// conn is one player's socket as the rooms see it: a bounded queue drained
// by a writer goroutine that runs only while there is something to write
// (an idle connection costs one goroutine, its reader). Send never blocks;
// a receiver whose queue is full is closed rather than stall its room or
// silently skip frames. Frames are written in batches under a cork, one
// syscall per batch. Queued and in-flight frames count in the machine's
// memory budget until they are written or dropped: a frame of the queue's
// own (a targeted send) with its bytes, a broadcast's frame, which every
// receiver shares, once for all of them (budget.Shared), and every entry
// with what the queue spends on it (queuedEntryBytes).
type conn struct {
	// Static after construction.
	ws                  *websocket.Conn
	raw                 *corkConn
	s                   *Server
	maxFrames, maxBytes int
	pingEvery           time.Duration
	ping                *time.Timer
	opened              int64      // the server's tick when the socket opened
	addr                *addrConns // its address's sockets together; nil when not counted (exempt)
	owner               string     // its address when counted, "" when exempt: who caused its rooms' events

	// Guarded by mu.
	mu             sync.Mutex
	queue          []queued
	spare          []queued // the previous batch's slice, reused
	queuedBytes    int      // bytes of the queued frames (SEND_QUEUE_BYTES)
	queueCharge    int      // what the queue counts in the budget itself: own frames, entries
	queueSince     int64    // the tick the oldest queued frame was queued
	batch          []queued // the batch being written: read only, until the writer releases it
	inflight       int      // bytes of the batch being written
	inflightCharge int      // what that batch counts in the budget itself
	batchSince     int64    // the tick the batch's oldest frame was queued
	writing        bool     // a flush goroutine is running
	closed         bool     // no more frames accepted
	closing        bool     // a close to send once the queue is empty: closeEnd
	closeEnd       closecode.End
	finished       bool // the reader has ended
	crowded        bool // closed to make room for another address (makeRoomFor)

	// Atomic.
	reason   atomic.Uint32 // a closecode.End: why the socket ended; the first set sticks
	joinDone atomic.Bool   // the join deadline is over: a room was created or joined, or it closed the socket
	msgStart atomic.Int64  // tick when the message being read began; 0 between messages
	// reading is what the message being read holds of the budget beyond
	// the connection's own cost (session.read); takenReading once the
	// shedder took it back, which refuses the message.
	reading atomic.Int64
}

// queued is one frame in a send queue, with the broadcast's shared cost
// when other receivers hold the same frame (nil: the frame is this
// queue's own and counts in its charge).
type queued struct {
	frame []byte
	sh    *budget.Shared
}

// queuedEntryBytes is what a queue spends on a frame besides the frame:
// its entry in the queue's array (and again in the batch being written).
const queuedEntryBytes = int(unsafe.Sizeof(queued{}))

func newConn(ws *websocket.Conn, raw *corkConn, s *Server) *conn {
	c := &conn{ws: ws, raw: raw, s: s, maxFrames: s.cfg.QueueFrames, maxBytes: s.cfg.QueueBytes,
		pingEvery: s.cfg.PingInterval, opened: s.tick.Load()}
	c.ping = time.AfterFunc(c.pingEvery, c.heartbeat)
	return c
}

// Owner is the socket's address (rooms' Owned): the webhooks' queue is
// shared fairly between the addresses that cause the events.
func (c *conn) Owner() string { return c.owner }

// Send queues a frame of this queue's own (a targeted send: nobody else
// holds it) without blocking. On overflow we close the player rather than
// drop the frame: a gap in game state is worse than a reconnect.
func (c *conn) Send(frame []byte) { c.enqueue(frame, nil) }

// SendShared queues a broadcast's frame, which other receivers hold too:
// the queue holds sh until the frame is written or dropped (rooms'
// SharedSender).
func (c *conn) SendShared(frame []byte, sh *budget.Shared) { c.enqueue(frame, sh) }

func (c *conn) enqueue(frame []byte, sh *budget.Shared) {
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
	charge := queuedEntryBytes
	if sh == nil {
		charge += len(frame)
	} else {
		sh.Hold()
	}
	if len(c.queue) == 0 {
		c.queueSince = c.s.tick.Load()
	}
	c.queue = append(c.queue, queued{frame, sh})
	c.queuedBytes += len(frame)
	c.queueCharge += charge
	c.s.budget.Add(int64(charge))
	c.startWriterLocked()
	c.mu.Unlock()
	c.s.maybeShed()
}

// release gives back what entries held of the budget: their shared
// frames' holds and charge, the bytes counted for them on their own. It
// clears the entries.
func (c *conn) release(entries []queued, charge int) {
	for i := range entries {
		if sh := entries[i].sh; sh != nil {
			sh.Release()
		}
		entries[i] = queued{}
	}
	c.s.budget.Add(-int64(charge))
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

// dropQueueLocked discards every queued frame and releases what it held of
// the memory budget. c.mu must be held.
func (c *conn) dropQueueLocked() {
	c.release(c.queue, c.queueCharge)
	c.queue, c.queuedBytes, c.queueCharge = nil, 0, 0
}

// isClosed reports whether the connection takes no more frames: it is
// closing, or has ended.
func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// held is what the connection holds of the memory budget, and whether it
// is already closing (what it holds is on its way out).
func (c *conn) held() (n int, closing bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queuedBytes + c.inflight, c.closed
}

// shed drops the queue and closes the connection with 4002, as if it had
// overflowed: the memory budget is short and this queue has gone stale,
// or is among the largest. It reports whether it did anything. The batch
// being written is given back once the socket is cut (within a second).
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
		n, charge := c.queuedBytes, c.queueCharge
		c.queuedBytes, c.queueCharge = 0, 0
		if len(batch) == 0 || c.finished {
			c.release(batch, charge)
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
		c.batch, c.inflight, c.inflightCharge, c.batchSince = batch, n, charge, c.queueSince
		c.mu.Unlock()
		ok := c.writeBatch(batch)
		c.mu.Lock()
		c.batch, c.inflight, c.inflightCharge = nil, 0, 0
		c.mu.Unlock()
		c.release(batch, charge)
		if !ok {
			return
		}
		c.mu.Lock()
		if c.spare == nil {
			c.spare = batch[:0]
		}
		c.mu.Unlock()
	}
}

func (c *conn) writeBatch(batch []queued) bool {
	c.raw.cork()
	for _, q := range batch {
		// Framed straight into the cork buffer: no syscall, no lock of
		// coder/websocket's per frame.
		c.raw.appendText(q.frame)
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
