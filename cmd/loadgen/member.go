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
			r, err = call(ws, fmt.Sprintf(`{"type":"create","clientId":"%s-h","maxClients":%d}`, tag, size), "created")
			rm.code = r.Room
		} else {
			r, err = call(ws, fmt.Sprintf(`{"type":"join","clientId":"%s-%d","room":%q}`, tag, i, rm.code), "joined")
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

// payload is ~64 bytes of data: sequence, scheduled send time, padding.
func payload(buf []byte, seq int64, sched time.Time) []byte {
	buf = append(buf[:0], `{"type":"send","data":{"q":`...)
	buf = strconv.AppendInt(buf, seq, 10)
	buf = append(buf, `,"t":`...)
	buf = strconv.AppendInt(buf, sched.UnixNano(), 10)
	buf = append(buf, `,"p":"abcdefghijklmnopqrstuvwxyz0123"}}`...)
	return buf
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
	prev := (m.index + len(m.room.members) - 1) % len(m.room.members)
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
