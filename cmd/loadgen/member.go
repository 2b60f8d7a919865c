package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// member is one simulated player.
type member struct {
	ws         *rawConn
	index      int   // slot in the room
	sent       int64 // messages sent (the sender goroutine's own count)
	sentAtomic atomic.Int64
	room       *room
	// received[sender] is the next sequence number expected from sender.
	received []int64
	got      atomic.Int64 // messages received in order
	lost     atomic.Int64 // gaps seen
	reorder  atomic.Int64 // messages older than expected
	witness  atomic.Int64 // messages of the previous member seen (closed loop window)
	dead     atomic.Bool
	stalled  bool // never reads nor sends: a receiver that stopped reading
}

type room struct {
	code    string
	members []*member
}

func dialMember(ctx context.Context, url string) (*rawConn, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return dialRaw(ctx, url)
}

type reply struct {
	Type    string `json:"type"`
	Room    string `json:"room"`
	Index   int    `json:"index"`
	Message string `json:"message"`
}

// call sends one message and reads frames until one of type want arrives.
func call(ws *rawConn, msg string, want string) (reply, error) {
	b, err := ws.call(msg, want)
	if err != nil {
		return reply{}, err
	}
	var r reply
	err = json.Unmarshal(b, &r)
	return r, err
}

// recoverFields is added to every create and join: `,"recover":true` with
// -recover (message recovery on), else nothing.
var recoverFields = ""

// makeRoom connects size members and puts them in one room.
func makeRoom(ctx context.Context, url string, size int, tag string) (*room, error) {
	rm := &room{}
	for i := range size {
		ws, err := dialMember(ctx, url)
		if err != nil {
			rm.close()
			return nil, err
		}
		m := &member{ws: ws, room: rm, received: make([]int64, size)}
		rm.members = append(rm.members, m)
		var r reply
		if i == 0 {
			r, err = call(ws, fmt.Sprintf(`{"type":"create","clientId":"%s-h","maxClients":%d%s}`, tag, size, recoverFields), "created")
			rm.code = r.Room
		} else {
			r, err = call(ws, fmt.Sprintf(`{"type":"join","clientId":"%s-%d","room":%q%s}`, tag, i, rm.code, recoverFields), "joined")
		}
		if err != nil {
			rm.close()
			return nil, err
		}
		m.index = r.Index
	}
	return rm, nil
}

func (rm *room) close() {
	for _, m := range rm.members {
		m.ws.Close()
	}
}

// payload is data of about size bytes (at least ~64): sequence, scheduled
// send time, padding.
func payload(buf []byte, seq int64, sched time.Time, size int) []byte {
	buf = append(buf[:0], `{"type":"send","data":{"q":`...)
	buf = strconv.AppendInt(buf, seq, 10)
	buf = append(buf, `,"t":`...)
	buf = strconv.AppendInt(buf, sched.UnixNano(), 10)
	buf = append(buf, `,"p":"`...)
	for pad := max(32, size-32); pad > 0; pad-- {
		buf = append(buf, byte('a'+pad%26))
	}
	return append(buf, `"}}`...)
}

var (
	keyFrom = []byte(`"from":`)
	keyQ    = []byte(`"q":`)
	keyT    = []byte(`"t":`)
)

func intAfter(b, key []byte) (int64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	n, j := int64(0), 0
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		n = n*10 + int64(b[j]-'0')
	}
	return n, j > 0
}

// readLoop counts and times every message until the socket ends.
func (m *member) readLoop(ctx context.Context, lat *latencies) {
	batch := make([]time.Duration, 0, 256)
	defer func() { lat.add(batch) }()
	prev := m.room.prevHealthy(m.index)
	for {
		b, err := m.ws.read()
		if err != nil {
			if ctx.Err() == nil {
				m.dead.Store(true)
			}
			return
		}
		from, ok1 := intAfter(b, keyFrom)
		seq, ok2 := intAfter(b, keyQ)
		sched, ok3 := intAfter(b, keyT)
		if !ok1 || !ok2 || !ok3 || int(from) >= len(m.received) {
			continue
		}
		now := time.Now()
		switch want := m.received[from]; {
		case seq == want:
			m.got.Add(1)
		case seq > want:
			m.got.Add(1)
			m.lost.Add(seq - want)
		default:
			m.reorder.Add(1)
			continue
		}
		m.received[from] = seq + 1
		if int(from) == prev {
			m.witness.Store(seq + 1)
		}
		batch = append(batch, now.Sub(time.Unix(0, sched)))
		if len(batch) == cap(batch) {
			lat.add(batch)
			batch = batch[:0]
		}
	}
}

// prevHealthy is the healthy member before index (whose messages this one
// witnesses in the closed loop); nextHealthy the one after.
func (rm *room) prevHealthy(index int) int {
	n := len(rm.members)
	for i := 1; i < n; i++ {
		if j := (index - i + n) % n; !rm.members[j].stalled {
			return j
		}
	}
	return index
}

func (rm *room) nextHealthy(index int) *member {
	n := len(rm.members)
	for i := 1; i < n; i++ {
		if m := rm.members[(index+i)%n]; !m.stalled {
			return m
		}
	}
	return rm.members[index]
}

func (rm *room) healthy() int {
	n := 0
	for _, m := range rm.members {
		if !m.stalled {
			n++
		}
	}
	return n
}
