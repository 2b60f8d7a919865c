package main

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/party-sockets/party-sockets/client"
)

// member is one player (or a room's host) on the Go client, through its
// own phone network (netcut.go).
type member struct {
	room    *room
	host    bool
	recover bool   // opted in to message recovery (our client's default); else an old-relay client
	tickets bool   // a recovery member that also holds the room's tickets (our client's default; -tickets)
	edge    string // the region whose edge it connects through
	net     *phoneNet

	// Set once the first created or joined is in; read-only after.
	c        *client.Client
	index    int
	joined   time.Time
	readDone chan struct{} // closed when read has taken the client's last event

	leaving  atomic.Bool // the drill closes it: its Closed is not an end
	finalSet bool        // a host's final state was written (set before the settle's wait)

	mu        sync.Mutex         // guards the fields below
	connected bool               // between a created/joined and the next drop
	dropAt    time.Time          // when the socket was lost (zero while connected)
	rejoins   []rejoin           // every drop and the joined that ended it
	failed    []episode          // outages that rejoined with recovered: false
	recvs     map[int][]delivery // messages by sender slot, in arrival order
	states    []delivery         // states by their k, in arrival order
	notFound  []time.Time        // "Room not found" answers to a rejoin
	slotMoves int                // rejoins that landed in another slot
	ended     *ending            // nil while it plays
	lastDrop  time.Time          // the start of its last outage
}

type delivery struct {
	n  int
	at time.Time
}

type rejoin struct {
	drop time.Time
	took time.Duration
}

type episode struct{ from, to time.Time }

type ending struct {
	at     time.Time
	reason string
	final  bool
}

// options is the member's client configuration: recovery members use our
// client's defaults (recovery on, rooms waited for after a drop); the
// others behave as clients of the relay we replace (no recovery, and a
// rejoin that gets "Room not found" gives up at once).
// Recovery members also hold the room's tickets, as the client does by
// default (-tickets=false: they do not).
func (m *member) options(url string) client.Options {
	o := client.Options{URL: url}
	if !m.recover {
		// An old-relay client: no recovery, no room wait, no tickets.
		o.NoRecover, o.RoomWait = true, -1
	}
	o.NoTickets = !m.tickets
	return o
}

// msgData is what players send: a counter per sender, so receivers see
// gaps, duplicates and reordering; padded to a game message's size.
type msgData struct {
	N   int    `json:"n"`
	Pad string `json:"p,omitempty"`
}

type stateData struct {
	K     int    `json:"k"`
	Round string `json:"round,omitempty"`
}

var pad = strings.Repeat("x", 80)

// connect creates the room (host) or joins it by code, retrying a few
// times: a join through another region's edge may race its room's
// creation across the probe cache.
func (m *member) connect(ctx context.Context) error {
	var err error
	for try := 0; try < 3; try++ {
		var c *client.Client
		opts := m.options(m.net.URL())
		if m.host {
			c, err = client.Create(ctx, opts, len(m.room.members)+2, "")
		} else {
			c, err = client.Join(ctx, opts, m.room.code)
		}
		if err == nil {
			m.c, m.index, m.joined, m.readDone = c, c.Index(), time.Now(), make(chan struct{})
			m.mu.Lock()
			m.connected = true
			m.mu.Unlock()
			if m.host {
				m.room.code = c.Room()
			}
			go m.read()
			return nil
		}
		var se *client.ServerError
		if errors.As(err, &se) && se.Message == "Room not found" {
			m.mu.Lock()
			m.notFound = append(m.notFound, time.Now())
			m.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return err
}

// read records every event of the member's client.
func (m *member) read() {
	defer close(m.readDone)
	for ev := range m.c.Events() {
		now := time.Now()
		m.mu.Lock()
		switch ev := ev.(type) {
		case client.Joined:
			if !m.dropAt.IsZero() {
				m.rejoins = append(m.rejoins, rejoin{drop: m.dropAt, took: now.Sub(m.dropAt)})
			}
			m.connected, m.dropAt = true, time.Time{}
			if ev.Index != m.index {
				m.slotMoves++
			}
		case client.Reconnecting:
			if m.connected {
				m.connected, m.dropAt, m.lastDrop = false, now, now
			}
			var se *client.ServerError
			if errors.As(ev.Err, &se) && se.Message == "Room not found" {
				m.notFound = append(m.notFound, now)
			}
		case client.RecoveryFailed:
			m.failed = append(m.failed, episode{from: m.lastDrop, to: now})
		case client.Message:
			var d msgData
			if json.Unmarshal(ev.Data, &d) == nil {
				m.recvs[ev.From] = append(m.recvs[ev.From], delivery{d.N, now})
			}
		case client.State:
			var d stateData
			if json.Unmarshal(ev.Data, &d) == nil {
				m.states = append(m.states, delivery{d.K, now})
			}
		case client.Closed:
			m.connected = false
			if !m.leaving.Load() {
				m.ended = &ending{at: now, reason: ev.Reason, final: ev.Final}
			}
		}
		m.mu.Unlock()
	}
}

// play sends until ctx ends: a host sets the state every second, a
// player sends every 1 to 3 s (a game's taps and answers).
func (m *member) play(ctx context.Context, msgEvery time.Duration) {
	next := func() time.Duration {
		if m.host {
			return time.Second
		}
		return msgEvery/2 + rand.N(msgEvery)
	}
	for k := 1; ; {
		select {
		case <-ctx.Done():
			return
		case <-m.c.Done():
			return
		case <-time.After(next()):
		}
		var err error
		if m.host {
			err = m.c.SetState(ctx, stateData{K: k, Round: pad[:20]})
		} else {
			err = m.c.Send(ctx, msgData{N: k, Pad: pad})
		}
		if err == nil {
			k++
		}
	}
}

// setFinal sets one last state once play has stopped, retrying while the
// host reconnects, so every member can be held to the room's latest.
func (m *member) setFinal(ctx context.Context, k int) {
	for ctx.Err() == nil {
		if m.c.SetState(ctx, stateData{K: k, Round: "final"}) == nil {
			m.finalSet = true
			return
		}
		select {
		case <-ctx.Done():
		case <-m.c.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (m *member) isConnected() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.connected
}

func (m *member) hasEnded() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ended != nil
}

// latestState is the k of the last state the member got (0: none).
func (m *member) latestState() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.states) == 0 {
		return 0
	}
	return m.states[len(m.states)-1].n
}
