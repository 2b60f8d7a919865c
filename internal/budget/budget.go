// Package budget is the machine's memory budget: one counter of the bytes
// that clients can make the server hold (send queues, partial messages,
// slot history, retained state, recovery windows), and its limit, sized
// from GOMEMLIMIT or the machine's memory. A cost that can be refused is
// reserved with TryAdd; one that cannot (a frame already owed to a live
// member) is counted with Add, and the server sheds when it is over.
package budget

import (
	"bufio"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
)

// Budget counts held bytes against a limit. A nil *Budget counts nothing
// and is never over, so packages can take one optionally.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// New returns a budget of limit bytes; limit <= 0 means unlimited.
func New(limit int64) *Budget {
	if limit <= 0 {
		limit = math.MaxInt64
	}
	return &Budget{limit: limit}
}

// Add changes the held bytes by n (negative to release) and returns the
// new total.
func (b *Budget) Add(n int64) int64 {
	if b == nil {
		return 0
	}
	return b.used.Add(n)
}

// TryAdd reserves n more bytes if the total stays within the ceiling, and
// reports whether it did: the way to refuse a new cost rather than count
// it and shed later. n <= 0 always succeeds (it releases). A nil budget
// always succeeds.
func (b *Budget) TryAdd(n int64) bool {
	if b == nil {
		return true
	}
	if n <= 0 {
		b.used.Add(n)
		return true
	}
	ceiling := b.Ceiling()
	for {
		u := b.used.Load()
		if n > ceiling-u {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// Ceiling is how far TryAdd fills the budget: four fifths of the limit.
// The last fifth is headroom for what can only be counted (frames owed to
// live members, the message being read), so that a budget full of what
// could have been refused does not shed a healthy member's queue.
func (b *Budget) Ceiling() int64 {
	if b == nil {
		return math.MaxInt64
	}
	return b.limit / 5 * 4
}

// Used returns the bytes held now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Limit returns the limit in bytes.
func (b *Budget) Limit() int64 {
	if b == nil {
		return math.MaxInt64
	}
	return b.limit
}

// Over reports whether the held bytes exceed the limit.
func (b *Budget) Over() bool { return b != nil && b.used.Load() > b.limit }

// Fraction of the memory limit that client-held bytes may use. The rest is
// the runtime, goroutine stacks, socket buffers, GC headroom and garbage.
const Fraction = 4

// DefaultLimit is the budget when none is configured: a quarter of
// GOMEMLIMIT when it is set, else a quarter of the memory this process may
// use (the cgroup's limit, or the machine's memory).
func DefaultLimit() int64 {
	if l := debug.SetMemoryLimit(-1); l > 0 && l < math.MaxInt64 {
		return l / Fraction
	}
	if m := machineMemory(); m > 0 {
		return m / Fraction
	}
	return 256 << 20 / Fraction
}

// machineMemory is the cgroup v2 memory limit if there is one, else
// MemTotal from /proc/meminfo; 0 when neither can be read.
func machineMemory() int64 {
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				if kb, err := strconv.ParseInt(fields[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}
