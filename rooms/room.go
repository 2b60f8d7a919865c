package rooms

import (
	"crypto/sha256"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/party-sockets/party-sockets/closecode"
	"github.com/party-sockets/party-sockets/internal/wire"
)

// clientKey is what a room keeps of a clientId: its SHA-256. The secret
// itself is never stored, and every key costs the same 32 bytes whatever
// the client sent.
type clientKey [sha256.Size]byte

func keyOf(clientID string) clientKey { return sha256.Sum256([]byte(clientID)) }

type slot struct {
	index   int
	key     clientKey
	member  Member    // nil while the slot is vacant
	left    uint64    // the room's leave counter when the slot went vacant
	leftAt  time.Time // when it went vacant
	recover bool      // the owner opted in to recovery: frames are numbered and kept
	lapsed  bool      // vacant, and no longer numbered (recover.go) until the owner is back
	seq     uint64    // the last number handed out (recover.go)
	win     window
	// Tickets (ticket.go): the owner opted in; it was told its room is
	// too large for one; the slot came from a ticket and its owner has
	// not been back (key is then the ticket's prefix, partialKey).
	tickets, toldLarge, restored bool
}

// numbering reports whether frames for s are numbered and kept.
func (s *slot) numbering() bool { return s.recover && !s.lapsed }

// SlotBytes is what one remembered slot costs, roughly: the slot, its map
// entry and its share of the slice. The memory budget counts it.
const SlotBytes = 128

// Room is one game room.
type Room struct {
	// Static after construction.
	m          *Manager
	Code       string
	MaxClients float64
	Origin     string
	URL        string
	history    int    // clientIds remembered at most (see slotHistory)
	epoch      uint64 // random, set when made, kept across hand-offs, new on restore (ticket.go)
	fromEpoch  uint64 // the epoch of the ticket it was restored from; 0 when not restored

	// Atomic, written with mu held: what Info reads without it (a room
	// being moved holds mu across its hand-off's calls to a sibling).
	clients atomic.Int64  // live, as last changed (addLiveLocked)
	ended   atomic.Bool   // closed
	version atomic.Uint64 // grows with every change and every ticket issued (ticket.go)

	// Guarded by mu.
	mu        sync.Mutex
	slots     []slot            // remembered slots, ascending index
	byKey     map[clientKey]int // clientKey → slot index
	next      int               // the next index to hand out; indices are never reused
	leaves    uint64            // bumped whenever a slot goes vacant
	live      int               // live members, changed only by addLiveLocked
	state     []byte            // the retained state frame, nil until the host sets one
	closed    bool
	grace     Timer
	graceAt   time.Time // when grace fires, while it is armed
	graceTurn int       // bumped on every arm and cancel; a stale timer sees a different turn
	transfer  string    // the hand-off that brought the room here, "" when created here
	sender    string    // the machine that handed it here, "" when created here (handoff.go)
	moved     bool      // closed because a hand-off took it: members stay recorded (handoff.go)
	// Recovery windows (recover.go, reclaim.go): bytes held by all, and by
	// vacant slots'; the age sweep's timer, as grace's.
	winCost, vacantCost int
	ageTimer            Timer
	ageAt               time.Time
	ageTurn             int
	emptied             bool // on the manager's list of empty rooms (evict.go)
	// Play (evict.go): time two or more members were live together,
	// before pairedAt; pairedAt, when the second was live, while two are.
	played   time.Duration
	pairedAt time.Time

	// Guarded by the manager's empties.mu, written with mu held too: the
	// room's tier and neighbours on the list of empty rooms, while it is
	// on it.
	emptyPrev, emptyNext *Room
	emptyTier            int
	tk                   ticketIssue // the ticket's issue schedule (ticket.go)
	fromVersion          uint64      // the highest version of fromEpoch's tickets taken in (restore.go)
}

// slotHistory is how many clientIds a room remembers: four per member it
// may hold, at least 16. Past that the key of the slot that has been vacant
// longest is forgotten (its index stays retired), so a stranger who knows
// the code can churn keys but never lock the room or grow its memory.
func slotHistory(maxClients float64) int {
	n := 4 * int(min(maxClients, 1<<20)+1)
	return max(16, n)
}

func (r *Room) full() bool { return float64(r.live) >= r.MaxClients }

// slotLocked returns the remembered slot with this index, or nil.
func (r *Room) slotLocked(index int) *slot {
	i := sort.Search(len(r.slots), func(i int) bool { return r.slots[i].index >= index })
	if i < len(r.slots) && r.slots[i].index == index {
		return &r.slots[i]
	}
	return nil
}

func (r *Room) join(key clientKey, mem Member, opt JoinOptions) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, ErrRoomNotFound
	}
	idx, owned := r.byKey[key]
	if !owned {
		idx, owned = r.claimLocked(key) // a slot of a restored room
	}
	var s *slot
	if owned {
		s = r.slotLocked(idx)
	}
	since := opt.Since
	if !opt.Recover {
		since = nil
	}
	// A slot restored from a ticket has no window: a recovering member
	// resyncs from the state.
	resync := s != nil && s.restored && opt.Recover
	rebuilt := s != nil && s.restored && !opt.Restored // back in a room another member rebuilt
	if s != nil && s.restored {
		s.restored, since = false, nil
	}
	if since != nil {
		latest := uint64(0)
		if s != nil && s.recover {
			latest = s.seq
		}
		if *since > latest {
			return 0, ErrSinceAhead
		}
	}
	switch {
	case s != nil && s.member != nil:
		// Reconnect: the new socket takes the slot silently.
		old := s.member
		s.member = mem
		old.Close(closecode.EndReplaced)
	case s != nil:
		if r.full() {
			return 0, ErrRoomFull
		}
		r.occupyLocked(s, mem)
		r.addLiveLocked(1)
		if idx == 0 {
			r.cancelGraceLocked()
		}
		r.m.event(Event{Type: EventPlayerJoined, Room: r.Code, Index: idx, Owner: ownerOf(mem)})
		r.broadcastLocked(idx, wire.PeerFrame(wire.PeerJoined, idx))
	default:
		if r.full() {
			return 0, ErrRoomFull
		}
		// A forgotten slot's bytes go to the new one; else they are
		// reserved, and refused when the budget is spent.
		if !(len(r.slots) >= r.history && r.forgetOldestVacantLocked()) && !r.reserveLocked(SlotBytes) {
			return 0, ErrOverBudget
		}
		idx = r.next
		r.next++
		r.slots = append(r.slots, slot{index: idx, key: key})
		s = &r.slots[len(r.slots)-1]
		s.member = mem
		r.byKey[key] = idx
		r.addLiveLocked(1)
		r.m.event(Event{Type: EventPlayerJoined, Room: r.Code, Index: idx, Owner: ownerOf(mem)})
		r.broadcastLocked(idx, wire.PeerFrame(wire.PeerJoined, idx))
	}
	if s.recover && !opt.Recover {
		r.dropWindowLocked(s)
		s.seq = 0
	}
	s.recover, s.lapsed = opt.Recover, false
	s.tickets = opt.Tickets
	defer r.changedLocked()
	joined := wire.JoinedFrame(r.Code, idx, r.peersLocked(idx), r.URL)
	switch {
	case opt.Restored:
		joined = wire.WithRestored(joined)
	case rebuilt:
		joined = wire.WithRebuilt(joined)
	}
	if !opt.Recover {
		mem.Send(joined)
		if r.state != nil {
			mem.Send(r.state)
		}
		return idx, nil
	}
	// Recovery: joined, then every frame the slot missed, then live
	// traffic (all under the room's lock: no gap, no duplicate). The
	// retained state follows joined only when the client has to resync:
	// a fresh join, or frames that are no longer in the window.
	var missed [][]byte
	complete := false
	if since != nil || resync {
		if since != nil {
			missed, complete = r.missedLocked(s, *since)
		}
		mem.Send(wire.WithRecovery(joined, s.seq, &complete))
	} else {
		mem.Send(wire.WithRecovery(joined, s.seq, nil))
	}
	for _, f := range missed {
		mem.Send(f)
	}
	if !complete && r.state != nil {
		mem.Send(r.state)
	}
	return idx, nil
}

// forgetOldestVacantLocked drops the key of the slot that has been vacant
// longest, and reports whether there was one. The host's slot is never
// forgotten: it may be reclaimed until the grace ends. A full room has a
// vacant slot to forget: live members never exceed maxClients, which is
// below the history.
func (r *Room) forgetOldestVacantLocked() bool {
	victim := -1
	for i := range r.slots {
		s := &r.slots[i]
		if s.member == nil && s.index != 0 && (victim < 0 || s.left < r.slots[victim].left) {
			victim = i
		}
	}
	if victim < 0 {
		return false
	}
	delete(r.byKey, r.slots[victim].key)
	r.dropWindowLocked(&r.slots[victim])
	r.slots = append(r.slots[:victim], r.slots[victim+1:]...)
	return true
}

func (r *Room) peersLocked(self int) []int {
	peers := make([]int, 0, r.live)
	for i := range r.slots {
		if s := &r.slots[i]; s.index != self && s.member != nil {
			peers = append(peers, s.index)
		}
	}
	return peers
}

// broadcastLocked delivers frame to every slot but the one at skip: live
// members get it, and so do the windows of slots that recover, live or
// away. It returns how many live sockets got it. The frame is one
// allocation that every receiver's queue holds: the budget counts it once
// (budget.Shared), while any of them does.
func (r *Room) broadcastLocked(skip int, frame []byte) int {
	sh := r.m.cfg.Budget.Share(int64(len(frame)))
	n := 0
	for i := range r.slots {
		if s := &r.slots[i]; s.index != skip && (s.member != nil || s.recover) && r.deliverLocked(s, frame, sh) {
			n++
		}
	}
	sh.Release() // the broadcast's own hold: the queues keep theirs
	return n
}

// memberLocked returns slot idx when mem is its live socket.
func (r *Room) memberLocked(idx int, mem Member) (*slot, error) {
	if r.closed {
		if r.moved {
			// The room went to a sibling while mem's call waited for its
			// lock: the caller forwards what mem sent (handoff.go).
			if s := r.slotLocked(idx); s != nil && s.member == mem {
				return nil, ErrRoomMoved
			}
		}
		return nil, ErrRoomNotFound
	}
	s := r.slotLocked(idx)
	if s == nil || s.member != mem {
		return nil, ErrNotInRoom
	}
	return s, nil
}

// Leave is called when mem's socket is gone; clean is true when it closed
// with 1000. A socket that was replaced, or whose room was closed, causes
// nothing. A room whose last member left cleanly ends at once; one whose
// last member blipped (any other end) is kept for the host grace, so a
// lone host on a flaky network keeps its room and code.
func (r *Room) Leave(idx int, mem Member, clean bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, err := r.memberLocked(idx, mem)
	if err != nil {
		return
	}
	r.vacateLocked(s)
	r.addLiveLocked(-1)
	r.changedLocked()
	r.m.event(Event{Type: EventPlayerLeft, Room: r.Code, Index: idx, Owner: ownerOf(mem)})
	if r.live == 0 && clean {
		r.endLocked(EndEmpty)
		return
	}
	r.broadcastLocked(idx, wire.PeerFrame(wire.PeerLeft, idx))
	if idx == 0 || (r.live == 0 && r.grace == nil) {
		r.armGraceLocked(r.m.cfg.HostGrace)
	}
}

// relayLocked delivers frame to slot to, or (to nil) to every slot but
// skip. A vacant slot that recovers takes a targeted frame into its window.
func (r *Room) relayLocked(skip int, to *uint64, frame []byte) (int, error) {
	if to == nil {
		return r.broadcastLocked(skip, frame), nil
	}
	if *to >= uint64(r.next) {
		return 0, ErrTargetNotFound
	}
	s := r.slotLocked(int(*to))
	if s == nil || (s.member == nil && !s.numbering()) {
		return 0, ErrTargetNotFound
	}
	if r.deliverLocked(s, frame, nil) {
		return 1, nil
	}
	return 0, nil
}

// setStateLocked checks and retains a snapshot and pushes it to every slot
// but skip.
func (r *Room) setStateLocked(skip int, data []byte) error {
	switch {
	case data == nil:
		return ErrStateRequired
	case len(data) > MaxStateBytes:
		return ErrStateTooLarge
	}
	state := wire.StateFrame(data)
	if !r.reserveLocked(int64(len(state) - len(r.state))) {
		return ErrOverBudget
	}
	r.state = state
	r.broadcastLocked(skip, r.state)
	r.changedLocked()
	return nil
}

// endLocked removes the room and closes every live member with 4001
// (EndRoomClosed). No other frame is sent. why is the reason webhooks see.
func (r *Room) endLocked(why string) {
	r.m.event(Event{Type: EventRoomClosed, Room: r.Code, Reason: why})
	for i := range r.slots {
		if mem := r.slots[i].member; mem != nil {
			r.slots[i].member = nil
			mem.Close(closecode.EndRoomClosed)
		}
	}
	r.m.noteEnded(r.Code) // before the code is given back: never neither held nor ended
	r.releaseLocked()
}

// releaseLocked closes the room and gives back what it held: its grace
// timer, windows, slots and state in the budget, and its code.
func (r *Room) releaseLocked() {
	r.closed = true
	r.ended.Store(true)
	r.cancelGraceLocked()
	r.cancelAgeLocked()
	r.cancelTicketLocked()
	r.addLiveLocked(-r.live)
	for i := range r.slots {
		r.slots[i].win = window{}
	}
	r.m.vacant.Add(-int64(r.vacantCost))
	r.m.cfg.Budget.Add(-int64(RoomBytes + len(r.slots)*SlotBytes + len(r.state) + r.winCost))
	r.winCost, r.vacantCost = 0, 0
	r.m.remove(r)
}

// armGraceLocked starts the host grace: the room ends after d unless the
// host's slot is live again.
func (r *Room) armGraceLocked(d time.Duration) {
	r.cancelGraceLocked()
	turn := r.graceTurn
	r.graceAt = r.m.cfg.Clock.Now().Add(d)
	r.grace = r.m.cfg.Clock.AfterFunc(d, func() { r.graceExpired(turn) })
}

func (r *Room) cancelGraceLocked() {
	r.graceTurn++
	if r.grace != nil {
		r.grace.Stop()
		r.grace = nil
	}
}

func (r *Room) graceExpired(turn int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || turn != r.graceTurn {
		return
	}
	if s := r.slotLocked(0); s != nil && s.member != nil {
		return
	}
	r.endLocked(EndGraceExpired)
}
