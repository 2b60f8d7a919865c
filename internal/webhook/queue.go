package webhook

import (
	"container/heap"
	"slices"
	"time"
)

// roomQueue is one room's events, in order. Guarded by Sender.mu.
type roomQueue struct {
	code    string
	events  []*job // events[0] is the head: the next to send, never dropped
	players int    // player events in events[1:], the ones that may be dropped
	busy    bool   // the head is in flight or waiting to retry
	ready   bool   // in Sender.ready
	heapAt  int    // index in Sender.hogs
}

type job struct {
	id     string
	body   []byte
	player bool          // a player event: dropped before room events
	tries  int           // attempts made (the worker's)
	wait   time.Duration // backoff before the next attempt (the worker's)
}

// enqueue adds j to room's queue, making space or refusing it.
func (s *Sender) enqueue(room string, j *job) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.rooms[room]
	if q == nil {
		q = &roomQueue{code: room}
		s.rooms[room] = q
		heap.Push(&s.hogs, q)
	}
	if !s.makeSpaceLocked(q, j.player) {
		s.dropped.Add(1)
		if len(q.events) == 0 {
			s.forgetLocked(q)
		}
		return false
	}
	if len(q.events) > 0 && j.player {
		q.players++
		heap.Fix(&s.hogs, q.heapAt)
	}
	q.events = append(q.events, j)
	s.queued++
	s.scheduleLocked(q)
	return true
}

// makeSpaceLocked reports whether an event (a player event when player)
// may join q, dropping another to make space when the bounds are reached:
//   - a room at its own bound pays for itself: a room event takes the
//     place of the room's newest player event, a player event is refused;
//   - when all rooms together are at the bound, the room with the most
//     player events waiting loses its newest one, unless that is q (or q
//     has about as many), whose player event is then refused.
//
// Room events are refused only when no player event is left to drop.
func (s *Sender) makeSpaceLocked(q *roomQueue, player bool) bool {
	switch {
	case len(q.events) >= s.opts.RoomQueue:
		return !player && s.dropNewestPlayerLocked(q)
	case s.queued < s.opts.QueueSize:
		return true
	}
	hog := s.hogs[0]
	if hog.players == 0 || (player && hog.players <= q.players+1) {
		return false
	}
	return s.dropNewestPlayerLocked(hog)
}

// dropNewestPlayerLocked drops q's newest player event that is not its
// head, if it has one.
func (s *Sender) dropNewestPlayerLocked(q *roomQueue) bool {
	for i := len(q.events) - 1; i >= 1; i-- {
		if q.events[i].player {
			q.events = slices.Delete(q.events, i, i+1)
			q.players--
			s.queued--
			s.dropped.Add(1)
			heap.Fix(&s.hogs, q.heapAt)
			return true
		}
	}
	return false
}

// popLocked removes q's head once it is delivered or given up on, and
// forgets q when nothing of it is left.
func (s *Sender) popLocked(q *roomQueue) {
	q.events[0] = nil
	q.events = q.events[1:]
	s.queued--
	q.busy = false
	if len(q.events) == 0 {
		s.forgetLocked(q)
		return
	}
	if q.events[0].player { // the new head can no longer be dropped
		q.players--
		heap.Fix(&s.hogs, q.heapAt)
	}
	s.scheduleLocked(q)
}

func (s *Sender) forgetLocked(q *roomQueue) {
	delete(s.rooms, q.code)
	heap.Remove(&s.hogs, q.heapAt)
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

// hogHeap orders rooms by the player events they could drop, most first.
type hogHeap []*roomQueue

func (h hogHeap) Len() int           { return len(h) }
func (h hogHeap) Less(i, j int) bool { return h[i].players > h[j].players }
func (h hogHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapAt, h[j].heapAt = i, j
}
func (h *hogHeap) Push(x any) {
	q := x.(*roomQueue)
	q.heapAt = len(*h)
	*h = append(*h, q)
}
func (h *hogHeap) Pop() any {
	old := *h
	q := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return q
}
