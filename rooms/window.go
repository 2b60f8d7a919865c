package rooms

import (
	"time"
	"unsafe"
)

// A recovery window and what it holds. Its cost is what the memory budget
// and the room's bound count: each frame's allocation (rounded as the
// allocator rounds it, roughly) and the array of entries, whole, with the
// room it has to grow; not only the payload.

// entry is one frame in a window, as it was sent: with its seq.
type entry struct {
	seq   uint64
	frame []byte
	at    time.Time
}

// entryBytes is what one entry of a window's array costs.
const entryBytes = int(unsafe.Sizeof(entry{}))

// window is a slot's recovery buffer, oldest first. Its frames are always
// the slot's latest, numbered without a hole up to the slot's seq: a frame
// that cannot be kept empties the window, so a gap shows as a window that
// starts too late (missedLocked), never in the middle.
type window struct {
	entries []entry // a view of the array, from its oldest live entry
	arr     int     // entries the array was made for: what it holds
	frames  int     // bytes of the frames, for RECOVER_BYTES
	cost    int     // bytes held: frames as allocated, plus the array
}

// allocBytes is an upper bound on what the allocator hands out for an
// n-byte object: small objects in 16-byte steps, larger ones in size
// classes at most an eighth apart, objects past 32 KiB in 8 KiB pages.
func allocBytes(n int) int {
	switch {
	case n <= 0:
		return 0
	case n <= 128:
		return (n + 15) &^ 15
	case n <= 32<<10:
		return n + n/8
	default:
		return (n + 8191) &^ 8191
	}
}

// pushCost is what push(f) would add to the window's cost.
func (w *window) pushCost(f []byte) int {
	c := allocBytes(cap(f))
	if len(w.entries) == cap(w.entries) {
		c += (grownArray(len(w.entries)) - w.arr) * entryBytes
	}
	return c
}

// grownArray is the size of the array a full window of n entries moves to.
func grownArray(n int) int { return max(4, 2*n) }

// push appends a frame and returns the change in cost (pushCost(f)). A
// full array is copied to one twice the live entries: the dead head of
// the old one is freed with it.
func (w *window) push(e entry) int {
	c := w.pushCost(e.frame)
	if len(w.entries) == cap(w.entries) {
		n := grownArray(len(w.entries))
		grown := make([]entry, len(w.entries), n)
		copy(grown, w.entries)
		w.entries, w.arr = grown, n
	}
	w.entries = append(w.entries, e)
	w.frames += len(e.frame)
	w.cost += c
	return c
}

// popOldest drops the oldest frame and returns the change in cost (not
// positive). An emptied window lets go of its array.
func (w *window) popOldest() int {
	e := w.entries[0]
	w.entries[0] = entry{}
	w.entries = w.entries[1:]
	w.frames -= len(e.frame)
	c := allocBytes(cap(e.frame))
	if len(w.entries) == 0 {
		c += w.arr * entryBytes
		w.entries, w.arr = nil, 0
	}
	w.cost -= c
	return -c
}

// first is the seq of the oldest frame held; 0 when empty.
func (w *window) first() uint64 {
	if len(w.entries) == 0 {
		return 0
	}
	return w.entries[0].seq
}
