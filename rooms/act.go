package rooms

// What a room does for whoever acts in it: relay a message, put a state,
// end the room. Three kinds of actor call the same three methods, and
// differ only in the checks they pass:
//
//   - a member, by its live socket in its slot: the socket must be the
//     slot's (else ErrNotInRoom); when the room was handed to a sibling
//     while the call waited for the lock, ErrRoomMoved says to forward it;
//   - the game's backend (the server API): any live room, as the host;
//   - a sibling forwarding for slot n what the member sent it while the
//     room moved here: the room must have come from that sibling (else
//     ErrNotFromSender), and remember slot n.
//
// Only the host (slot 0) and the backend may put a state or end the room.

// ServerFrom is the slot a message from the game's backend comes from.
const ServerFrom = -1

type actorKind uint8

const (
	actorNone    actorKind = iota // the zero Actor: refused
	actorMember                   // a member's socket
	actorBackend                  // the game's backend
	actorForward                  // a sibling forwarding after a hand-off
)

// An Actor is who acts in a room. The zero Actor may do nothing.
type Actor struct {
	kind   actorKind
	slot   int    // the slot acted for; ServerFrom for the backend
	member Member // a member's socket
	sender string // a forward's machine; "" for one of the previous release, which does not sign
}

// AsMember is the member whose live socket mem holds slot.
func AsMember(slot int, mem Member) Actor { return Actor{kind: actorMember, slot: slot, member: mem} }

// AsBackend is the game's backend.
func AsBackend() Actor { return Actor{kind: actorBackend, slot: ServerFrom} }

// AsForward is machine sender forwarding what slot sent it.
func AsForward(sender string, slot int) Actor {
	return Actor{kind: actorForward, slot: slot, sender: sender}
}

// Slot is the slot a acts for: a relayed message's "from".
func (a Actor) Slot() int { return a.slot }

// host reports whether a may do what the host may.
func (a Actor) host() bool { return a.kind == actorBackend || a.slot == 0 }

// mayActLocked checks that a may act in the room at all.
func (r *Room) mayActLocked(a Actor) error {
	switch a.kind {
	case actorMember:
		_, err := r.memberLocked(a.slot, a.member)
		return err
	case actorBackend:
		if r.closed {
			return ErrRoomNotFound
		}
		return nil
	case actorForward:
		return r.forwardLocked(a.sender, a.slot)
	}
	return ErrNotInRoom
}

// Relay delivers a message frame that a sent: to slot to when to is not
// nil (a vacant slot that recovers keeps it), else to every other slot.
// It returns how many live sockets got it.
func (r *Room) Relay(a Actor, to *uint64, frame []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.mayActLocked(a); err != nil {
		return 0, err
	}
	return r.relayLocked(a.slot, to, frame)
}

// PutState retains a snapshot (compact JSON, nil when absent) and pushes
// it to every other slot.
func (r *Room) PutState(a Actor, data []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.mayActLocked(a); err != nil {
		return err
	}
	if !a.host() {
		return ErrOnlyHostState
	}
	return r.setStateLocked(a.slot, data)
}

// End ends the room at a's request (close_room, or the backend's close):
// every member is closed with 4001.
func (r *Room) End(a Actor) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.mayActLocked(a); err != nil {
		return err
	}
	if !a.host() {
		return ErrOnlyHostClose
	}
	why := EndHostClosed
	if a.kind == actorBackend {
		why = EndServerClosed
	}
	r.endLocked(why)
	return nil
}

// forwardLocked checks a forward from machine sender as slot from: the
// room came here from sender, and from is a slot it remembers.
func (r *Room) forwardLocked(sender string, from int) error {
	switch {
	case r.closed:
		return ErrRoomNotFound
	case r.transfer == "" || (sender != "" && sender != r.sender):
		return ErrNotFromSender
	case r.slotLocked(from) == nil:
		return ErrNotInRoom
	}
	return nil
}
