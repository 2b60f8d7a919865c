package client

import (
	"context"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// The app-level heartbeat: a browser cannot send WebSocket pings, so the
// protocol has {"type":"ping"}, answered with {"type":"pong"} (the old
// relay answers "Unknown message type", which proves life as well). This
// client uses it too, so both clients behave the same on either relay.

var pingFrame = []byte(`{"type":"ping"}`)

// watchdog is one socket's heartbeat goroutine.
type watchdog struct {
	done chan struct{} // closed by stop
	wg   sync.WaitGroup

	mu     sync.Mutex // guards killed
	killed bool       // the socket was ended for silence
}

func (w *watchdog) stop() { close(w.done); w.wg.Wait() }

func (w *watchdog) fired() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.killed }

// watch pings ws while the link is quiet, at most once a heartbeat, and
// ends it when a ping has had no answer, nor any other frame, for a
// heartbeat (about two of silence): readAll's Read then fails, and the
// client reconnects as after any drop. Dead is judged from the ping, not
// the silence alone, so a ticker held back (a suspended laptop) does not
// end a live link.
func (c *Client) watch(ws *websocket.Conn) *watchdog {
	w := &watchdog{done: make(chan struct{})}
	every := c.opts.Heartbeat
	if every < 0 {
		return w
	}
	c.heard.Store(time.Now().UnixNano())
	c.pending.Store(0)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		tick := time.NewTicker(every / 4)
		defer tick.Stop()
		var pinged time.Time
		for {
			select {
			case <-w.done:
				return
			case now := <-tick.C:
				heard := time.Unix(0, c.heard.Load())
				quiet := now.Sub(heard)
				switch {
				case !pinged.IsZero() && heard.Before(pinged) && now.Sub(pinged) >= every:
					w.mu.Lock()
					w.killed = true
					w.mu.Unlock()
					ws.CloseNow()
					return
				case quiet >= every && now.Sub(pinged) >= every:
					pinged = now
					c.pending.Add(1)
					ctx, cancel := context.WithTimeout(c.ctx, every)
					ws.Write(ctx, websocket.MessageText, pingFrame) // a failed write ends the socket: Read says so
					cancel()
				}
			}
		}
	}()
	return w
}

// heartbeatAnswer reports whether f answers a ping: a pong, or the old
// relay's "Unknown message type" while a ping is unanswered. Neither is an
// event for the game.
func (c *Client) heartbeatAnswer(f *frame) bool {
	switch {
	case f.Type == "pong":
		c.pending.Store(0)
		return true
	case f.Type == "error" && f.Message == "Unknown message type" && c.pending.Load() > 0:
		c.pending.Add(-1)
		return true
	}
	return false
}
