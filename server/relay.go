package server

import (
	"github.com/party-sockets/party-sockets/internal/wire"
	"github.com/party-sockets/party-sockets/rooms"
)

// The one path of what is done in a room: a member's send, set_state and
// close_room (session.go), the backend's calls (api.go) and a sibling's
// forwards after a hand-off (forward.go) all end in apply. Who acts
// (rooms.Actor) decides the checks; the room makes them.

// actionKind is what an action does.
type actionKind uint8

const (
	actSend  actionKind = iota + 1 // relay data to one slot or to all
	actState                       // put a retained state
	actClose                       // end the room
)

// action is one thing done in a room.
type action struct {
	kind     actionKind
	data     []byte // compact JSON; nil when absent
	to       uint64 // with targeted: the one slot a send goes to
	targeted bool
}

// sendAction reads a send's "data" and "to" (a member's message or the
// backend's body): "to" must be a slot index.
func sendAction(m *wire.Message) (action, error) {
	act := action{kind: actSend, data: wire.Compact(m.Data)}
	if m.To != nil {
		i, ok := wire.Index(m.To)
		if !ok {
			return act, rooms.ErrTargetNotFound
		}
		act.to, act.targeted = i, true
	}
	return act, nil
}

// apply does act in room as a. It returns how many live sockets got a
// relayed frame. A member's call that waited for the room while a
// hand-off took it is forwarded to the room's new machine: not lost.
func (s *Server) apply(room *rooms.Room, a rooms.Actor, act action) (int, error) {
	var n int
	var err error
	switch act.kind {
	case actSend:
		var to *uint64
		if act.targeted {
			to = &act.to
		}
		frame := wire.MessageFrame(a.Slot(), act.data)
		if n, err = room.Relay(a, to, frame); err == nil {
			s.metrics.relayed(n, len(frame))
		}
	case actState:
		err = room.PutState(a, act.data)
	case actClose:
		err = room.End(a)
	default:
		err = wire.ErrUnknownType
	}
	if err == rooms.ErrRoomMoved {
		return 0, s.forward(room.Code, a.Slot(), act)
	}
	return n, err
}
