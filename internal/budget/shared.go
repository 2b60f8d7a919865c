package budget

import (
	"sync"
	"sync/atomic"
)

// Shared is one cost held by several holders at once: a broadcast frame,
// one allocation that every receiver's send queue points at. It is
// counted once, when it is made, and given back when its last holder lets
// go, however many queues held it meanwhile.
//
// A Shared is reused once released (a pool, so that a broadcast costs no
// allocation of its own): a holder must call Release exactly once for
// each hold, and never touch the Shared after.
type Shared struct {
	b     *Budget
	cost  int64
	holds atomic.Int32
}

var sharedPool = sync.Pool{New: func() any { return new(Shared) }}

// Share counts cost once in b and returns it held once, by the caller. A
// nil budget counts nothing, and the Shared still tracks its holders.
func (b *Budget) Share(cost int64) *Shared {
	s := sharedPool.Get().(*Shared)
	s.b, s.cost = b, cost
	s.holds.Store(1)
	b.Add(cost)
	return s
}

// Share is one holder's part of the cost: the cost over the holders now.
// Only a holder may ask.
func (s *Shared) Share() int64 { return s.cost / int64(max(1, s.holds.Load())) }

// Hold adds a holder. Only a holder may add another: the caller holds s.
func (s *Shared) Hold() { s.holds.Add(1) }

// Release lets go of one hold; the last gives the cost back to the budget.
func (s *Shared) Release() {
	switch n := s.holds.Add(-1); {
	case n == 0:
		s.b.Add(-s.cost)
		s.b, s.cost = nil, 0
		sharedPool.Put(s)
	case n < 0:
		panic("budget: Shared released more often than held")
	}
}
