package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/party-sockets/party-sockets/internal/wire"
	"github.com/party-sockets/party-sockets/rooms"
)

// The internal endpoints for what follows a hand-off: a forward of what a
// member sent to the old machine while its room moved, and an abort of a
// transfer whose sender kept the room.

// relayCall is a message, state or close a member sent to the old machine
// while its room was moving: the old machine forwards it to the new one.
type relayCall struct {
	Code string          `json:"code"`
	From int             `json:"from"`
	To   *uint64         `json:"to,omitempty"`
	Kind string          `json:"kind"` // send, state or close
	Data json.RawMessage `json:"data,omitempty"`
}

// maxRelayOverhead is what a relay body adds to the member's frame.
const maxRelayOverhead = 4096

// receiveRelay takes a forward into a room that the forwarding machine
// handed here, holding it to a client message's rules: valid JSON and
// UTF-8, the same bound on keys and depth, the frame and state size
// bounds, a slot the room remembers, state and close from the host only.
func (s *Server) receiveRelay(w http.ResponseWriter, r *http.Request, call peerCall) {
	body, ok := s.readCall(w, r, call, s.cfg.MaxFrameBytes+maxRelayOverhead)
	if !ok {
		return
	}
	var rc relayCall
	_, err := wire.DecodeObject(body) // JSON, UTF-8, keys and depth, as a client's message
	if err == nil && json.Unmarshal(body, &rc) != nil {
		err = wire.ErrInvalidJSON
	}
	if err != nil {
		s.apiError(w, http.StatusBadRequest, err)
		return
	}
	room := s.rooms.Room(rc.Code)
	if room == nil {
		s.apiError(w, http.StatusNotFound, rooms.ErrRoomNotFound)
		return
	}
	var data []byte
	if len(rc.Data) > 0 {
		data = wire.Compact(rc.Data)
	}
	switch rc.Kind {
	case "send":
		frame := wire.MessageFrame(rc.From, data)
		n, ferr := room.Forwarded(call.sender, rc.From, rc.To, frame)
		if ferr == nil {
			s.metrics.relayed(n, len(frame))
		}
		err = ferr
	case "state":
		err = room.ForwardedState(call.sender, rc.From, data)
	case "close":
		err = room.ForwardedClose(call.sender, rc.From)
	default:
		err = wire.ErrUnknownType
	}
	switch {
	case err == rooms.ErrNotFromSender:
		s.apiError(w, http.StatusForbidden, err)
	case err != nil:
		s.apiError(w, statusOf(err), err)
	default:
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	}
}

// maxAbortBody bounds POST /.internal/abort: a code and a transfer id.
const maxAbortBody = 4096

func (s *Server) receiveAbort(w http.ResponseWriter, r *http.Request, call peerCall) {
	body, ok := s.readCall(w, r, call, maxAbortBody)
	if !ok {
		return
	}
	var ac struct{ Code, Transfer string }
	if json.Unmarshal(body, &ac) != nil {
		s.apiError(w, http.StatusBadRequest, wire.ErrInvalidJSON)
		return
	}
	dropped, err := s.rooms.Abort(ac.Code, ac.Transfer, call.sender)
	if dropped {
		s.log.Warn("hand-off aborted by its sender: copy dropped", "room", validCopy(ac.Code), "from", call.sender)
	}
	if !dropped && errors.Is(err, rooms.ErrTooManyTransfers) {
		s.log.Warn("hand-off abort not remembered: too many transfers", "room", validCopy(ac.Code), "from", call.sender)
		s.apiError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"dropped": dropped})
}
