package rooms

import "sync"

type slot struct {
	clientID string
	member   Member // nil while the slot is vacant
}

// Room is one game room. Its exported fields are fixed at creation.
type Room struct {
	m          *Manager
	Code       string
	MaxClients float64
	Origin     string
	URL        string

	mu        sync.Mutex // guards everything below
	slots     []slot     // index = slot number, never reused for another clientID
	byClient  map[string]int
	live      int
	state     []byte // the retained state frame, nil until the host sets one
	closed    bool
	grace     Timer
	graceTurn int // bumped on every arm and cancel; a stale timer sees a different turn
}

// Info returns the room's public facts, or false once it has ended.
func (r *Room) Info() (Info, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return Info{}, false
	}
	return Info{Code: r.Code, Clients: r.live, MaxClients: r.MaxClients, Origin: r.Origin, URL: r.URL}, true
}

func (r *Room) full() bool { return float64(r.live) >= r.MaxClients }

func (r *Room) join(clientID string, mem Member) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, ErrRoomNotFound
	}
	idx, owned := r.byClient[clientID]
	switch {
	case owned && r.slots[idx].member != nil:
		// Reconnect: the new socket takes the slot silently.
		old := r.slots[idx].member
		r.slots[idx].member = mem
		old.Close(CloseReplaced, "replaced")
	case owned:
		if r.full() {
			return 0, ErrRoomFull
		}
		r.slots[idx].member = mem
		r.live++
		if idx == 0 {
			r.cancelGraceLocked()
		}
		r.broadcastLocked(idx, peerFrame("peer_joined", idx))
	default:
		if r.full() {
			return 0, ErrRoomFull
		}
		if r.m.cfg.MaxSlots > 0 && len(r.slots) >= r.m.cfg.MaxSlots {
			return 0, ErrRoomSlotsExhaust
		}
		idx = len(r.slots)
		r.slots = append(r.slots, slot{clientID: clientID, member: mem})
		r.byClient[clientID] = idx
		r.live++
		r.broadcastLocked(idx, peerFrame("peer_joined", idx))
	}
	mem.Send(joinedFrame(r.Code, idx, r.peersLocked(idx), r.URL))
	if r.state != nil {
		mem.Send(r.state)
	}
	return idx, nil
}

func (r *Room) peersLocked(self int) []int {
	peers := make([]int, 0, r.live)
	for i := range r.slots {
		if i != self && r.slots[i].member != nil {
			peers = append(peers, i)
		}
	}
	return peers
}

// broadcastLocked queues frame for every live member but the one at skip.
func (r *Room) broadcastLocked(skip int, frame []byte) int {
	n := 0
	for i := range r.slots {
		if i != skip && r.slots[i].member != nil {
			r.slots[i].member.Send(frame)
			n++
		}
	}
	return n
}

// memberLocked checks that mem is the live socket of slot idx.
func (r *Room) memberLocked(idx int, mem Member) error {
	if r.closed {
		return ErrRoomNotFound
	}
	if idx < 0 || idx >= len(r.slots) || r.slots[idx].member != mem {
		return ErrNotInRoom
	}
	return nil
}

// Leave is called when mem's socket is gone. A socket that was replaced, or
// whose room was closed, causes nothing.
func (r *Room) Leave(idx int, mem Member) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.memberLocked(idx, mem) != nil {
		return
	}
	r.slots[idx].member = nil
	r.live--
	if r.live == 0 {
		r.endLocked(0, "")
		return
	}
	r.broadcastLocked(idx, peerFrame("peer_left", idx))
	if idx == 0 {
		r.armGraceLocked()
	}
}

// Send relays a message frame from slot idx: to one slot when to is not
// nil, else to every other live member. It returns how many got the frame.
func (r *Room) Send(idx int, mem Member, to *uint64, frame []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.memberLocked(idx, mem); err != nil {
		return 0, err
	}
	if to == nil {
		return r.broadcastLocked(idx, frame), nil
	}
	if *to >= uint64(len(r.slots)) || r.slots[*to].member == nil {
		return 0, ErrTargetNotFound
	}
	r.slots[*to].member.Send(frame)
	return 1, nil
}

// SetState retains a snapshot (compact JSON, nil when absent) and pushes it
// to every other live member.
func (r *Room) SetState(idx int, mem Member, data []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.memberLocked(idx, mem); err != nil {
		return err
	}
	switch {
	case idx != 0:
		return ErrOnlyHostState
	case data == nil:
		return ErrStateRequired
	case len(data) > MaxStateBytes:
		return ErrStateTooLarge
	}
	r.state = StateFrame(data)
	r.broadcastLocked(idx, r.state)
	return nil
}

// CloseRoom ends the room at the host's request.
func (r *Room) CloseRoom(idx int, mem Member) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.memberLocked(idx, mem); err != nil {
		return err
	}
	if idx != 0 {
		return ErrOnlyHostClose
	}
	r.endLocked(CloseRoomClosed, "room closed")
	return nil
}

// endLocked removes the room and closes every live member with code (when
// not zero). No other frame is sent.
func (r *Room) endLocked(code int, reason string) {
	r.closed = true
	r.cancelGraceLocked()
	for i := range r.slots {
		if mem := r.slots[i].member; mem != nil {
			r.slots[i].member = nil
			mem.Close(code, reason)
		}
	}
	r.live = 0
	r.m.remove(r)
}

func (r *Room) armGraceLocked() {
	r.cancelGraceLocked()
	turn := r.graceTurn
	r.grace = r.m.cfg.Clock.AfterFunc(r.m.cfg.HostGrace, func() { r.graceExpired(turn) })
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
	if r.closed || turn != r.graceTurn || r.slots[0].member != nil {
		return
	}
	r.endLocked(CloseRoomClosed, "room closed")
}
