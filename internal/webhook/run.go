package webhook

import (
	"context"
	"sync"
)

// Run delivers queued events with Options.Workers workers until ctx ends.
// Call it once.
func (s *Sender) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range s.opts.Workers {
		wg.Go(func() { s.work(ctx) })
	}
	wg.Wait()
}

// work sends the head of one ready room at a time: a room has at most one
// event in flight, so its events stay in order.
func (s *Sender) work(ctx context.Context) {
	for {
		q, j := s.next(ctx)
		if q == nil {
			return
		}
		s.finish(ctx, q, j, s.post(ctx, j))
	}
}

// next waits for a ready room and takes its head.
func (s *Sender) next(ctx context.Context) (*roomQueue, *job) {
	for {
		s.mu.Lock()
		if len(s.ready) > 0 {
			q := s.ready[0]
			s.ready[0] = nil
			s.ready = s.ready[1:]
			q.ready, q.busy = false, true
			j, more := q.events[0], len(s.ready) > 0
			s.mu.Unlock()
			if more { // one wake-up for several rooms: pass it on
				s.signal()
			}
			return q, j
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, nil
		case <-s.wake:
		}
	}
}

// finish records an attempt at q's head. A failed one with tries left
// waits for its backoff off the workers: the room's later events wait
// with it, other rooms' do not.
func (s *Sender) finish(ctx context.Context, q *roomQueue, j *job, ok bool) {
	j.tries++
	if !ok && j.tries < s.opts.Attempts && ctx.Err() == nil {
		s.retried.Add(1)
		wait := j.wait
		j.wait = min(2*j.wait, s.opts.MaxRetry)
		s.opts.Clock.AfterFunc(wait, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			q.busy = false
			s.scheduleLocked(q)
		})
		return
	}
	if ok {
		s.delivered.Add(1)
	} else {
		s.failed.Add(1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.popLocked(q)
}
