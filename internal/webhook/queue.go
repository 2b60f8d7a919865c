package webhook

import (
	"container/heap"
	"slices"
	"time"
)

// roomQueue is one room's events, in order. Guarded by Sender.mu.
type roomQueue struct {
	code   string
	events []*job // events[0] is the head: the next to send, never dropped
	busy   bool   // the head is in flight or waiting to retry
	ready  bool   // in Sender.ready
}

// owner is who caused player events that wait behind their rooms' heads,
// the ones that may be dropped, kept by room. It lives only while it has
// one: what owners cost is bounded by the queue. Guarded by Sender.mu.
type owner struct {
	tally // in Sender.hogs
	key   string
	rooms map[*roomQueue]*share
	big   hogHeap[*share] // every share of rooms, most player events first
}

// share is an owner's droppable player events in one room, newest last.
// It lives only while it has one. Guarded by Sender.mu.
type share struct {
	tally  // in owner.big
	by     *owner
	room   *roomQueue
	newest *job
}

// tally is what a hogHeap orders by.
type tally struct {
	players int // player events that may be dropped
	heapAt  int // index in the heap that holds it
}

func (t *tally) counts() *tally { return t }

type job struct {
	id     string
	body   []byte
	player bool          // a player event: dropped before room events
	tries  int           // attempts made (the worker's)
	wait   time.Duration // backoff before the next attempt (the worker's)

	// Guarded by Sender.mu: set while the job may be dropped (a player
	// event behind its room's head), in its share's list.
	in           *share
	older, newer *job
}

// enqueue adds j, caused by owner key who, to room's queue, making space
// or refusing it.
func (s *Sender) enqueue(room, who string, j *job) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.rooms[room]
	if q == nil {
		q = &roomQueue{code: room}
		s.rooms[room] = q
	}
	if !s.makeSpaceLocked(q, who, j.player) {
		s.dropped.Add(1)
		if len(q.events) == 0 {
			delete(s.rooms, room)
		}
		return false
	}
	q.events = append(q.events, j)
	s.queued++
	if j.player && len(q.events) > 1 {
		s.linkLocked(who, q, j)
	}
	s.scheduleLocked(q)
	return true
}

// makeSpaceLocked reports whether an event (a player event when player)
// caused by who may join q, dropping another to make space when the
// bounds are reached:
//   - a room at its own bound pays for itself: a room event takes the
//     place of the room's newest player event, a player event is refused;
//   - when all rooms together are at the bound, the owner with the most
//     player events waiting, in all its rooms together, loses the newest
//     one of its room with the most. Owners first: one address that
//     spreads its churn over many rooms pays for it itself, not the
//     busiest game. When who is that owner (or has about as many), it
//     pays for its own event: from its room with the most, unless that
//     is q (or q has about as many of who's), whose event is refused.
//     So games behind one address (a NAT) are fair between them.
//
// Room events are refused only when no player event is left to drop.
func (s *Sender) makeSpaceLocked(q *roomQueue, who string, player bool) bool {
	switch {
	case len(q.events) >= s.opts.RoomQueue:
		return !player && s.dropNewestOfRoomLocked(q)
	case s.queued < s.opts.QueueSize:
		return true
	case len(s.hogs) == 0:
		return false
	}
	hog := s.hogs[0]
	if player {
		mine := s.owners[who]
		switch {
		case mine == nil && hog.players <= 1:
			return false
		case mine != nil && hog.players <= mine.players+1:
			hog = mine
			if hog.big[0].players <= mine.playersIn(q)+1 {
				return false
			}
		}
	}
	s.dropLocked(hog.big[0].newest)
	return true
}

// playersIn is how many of o's player events in q may be dropped.
func (o *owner) playersIn(q *roomQueue) int {
	if sh := o.rooms[q]; sh != nil {
		return sh.players
	}
	return 0
}

// dropNewestOfRoomLocked drops q's newest player event that is not its
// head, if it has one.
func (s *Sender) dropNewestOfRoomLocked(q *roomQueue) bool {
	for _, j := range slices.Backward(q.events[1:]) {
		if j.player {
			s.dropLocked(j)
			return true
		}
	}
	return false
}

// dropLocked drops j, a player event behind its room's head.
func (s *Sender) dropLocked(j *job) {
	q := j.in.room
	s.unlinkLocked(j)
	q.events = slices.DeleteFunc(q.events, func(e *job) bool { return e == j })
	s.queued--
	s.dropped.Add(1)
}

// linkLocked makes j, in q, the newest of who's player events that may
// be dropped.
func (s *Sender) linkLocked(who string, q *roomQueue, j *job) {
	o := s.owners[who]
	if o == nil {
		o = &owner{key: who, rooms: map[*roomQueue]*share{}}
		s.owners[who] = o
		heap.Push(&s.hogs, o)
	}
	sh := o.rooms[q]
	if sh == nil {
		sh = &share{by: o, room: q}
		o.rooms[q] = sh
		heap.Push(&o.big, sh)
	}
	j.in, j.older = sh, sh.newest
	if sh.newest != nil {
		sh.newest.newer = j
	}
	sh.newest = j
	sh.players++
	o.players++
	heap.Fix(&o.big, sh.heapAt)
	heap.Fix(&s.hogs, o.heapAt)
}

// unlinkLocked takes j out of its share's list, once it is dropped or
// becomes its room's head, and forgets the share and the owner when they
// have no player event left.
func (s *Sender) unlinkLocked(j *job) {
	sh := j.in
	if sh == nil {
		return
	}
	if j.older != nil {
		j.older.newer = j.newer
	}
	if j.newer != nil {
		j.newer.older = j.older
	} else {
		sh.newest = j.older
	}
	j.in, j.older, j.newer = nil, nil, nil
	o := sh.by
	sh.players--
	o.players--
	if sh.players == 0 {
		delete(o.rooms, sh.room)
		heap.Remove(&o.big, sh.heapAt)
	} else {
		heap.Fix(&o.big, sh.heapAt)
	}
	if o.players == 0 {
		delete(s.owners, o.key)
		heap.Remove(&s.hogs, o.heapAt)
	} else {
		heap.Fix(&s.hogs, o.heapAt)
	}
}

// popLocked removes q's head once it is delivered or given up on, and
// forgets q when nothing of it is left.
func (s *Sender) popLocked(q *roomQueue) {
	q.events[0] = nil
	q.events = q.events[1:]
	s.queued--
	q.busy = false
	if len(q.events) == 0 {
		delete(s.rooms, q.code)
		return
	}
	s.unlinkLocked(q.events[0]) // the new head can no longer be dropped
	s.scheduleLocked(q)
}

// scheduleLocked puts q in line for a worker when its head may be sent.
func (s *Sender) scheduleLocked(q *roomQueue) {
	if q.busy || q.ready || len(q.events) == 0 {
		return
	}
	q.ready = true
	s.ready = append(s.ready, q)
	s.signal()
}

func (s *Sender) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// hogHeap orders owners, or one owner's shares, by the player events
// they could drop, most first.
type hogHeap[T interface{ counts() *tally }] []T

func (h hogHeap[T]) Len() int           { return len(h) }
func (h hogHeap[T]) Less(i, j int) bool { return h[i].counts().players > h[j].counts().players }
func (h hogHeap[T]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].counts().heapAt, h[j].counts().heapAt = i, j
}
func (h *hogHeap[T]) Push(x any) {
	v := x.(T)
	v.counts().heapAt = len(*h)
	*h = append(*h, v)
}
func (h *hogHeap[T]) Pop() any {
	old := *h
	v := old[len(old)-1]
	var zero T
	old[len(old)-1] = zero
	*h = old[:len(old)-1]
	return v
}
