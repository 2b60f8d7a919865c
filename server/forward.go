package server

import (
	"context"
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

// relayKinds is relayCall's kind for each action, both ways.
var (
	relayKinds     = map[string]actionKind{"send": actSend, "state": actState, "close": actClose}
	relayKindNames = map[actionKind]string{actSend: "send", actState: "state", actClose: "close"}
)

// forward hands what slot sent, in the room with code that moved to a
// sibling, to that sibling. It runs on the member's reader: bounded by one
// internal call. Any failure is Room not found, as if the room had ended.
func (s *Server) forward(code string, slot int, act action) error {
	holder := s.movedTo(code)
	if holder == "" || s.cfg.Prober == nil {
		return rooms.ErrRoomNotFound
	}
	ctx, cancel := context.WithTimeout(context.Background(), handoffTry)
	defer cancel()
	addr, err := s.siblingAddr(ctx, holder)
	if err != nil {
		return rooms.ErrRoomNotFound
	}
	rc := relayCall{Code: code, From: slot, Kind: relayKindNames[act.kind], Data: act.data}
	if act.targeted {
		rc.To = &act.to
	}
	body, _ := json.Marshal(rc)
	if err := s.internalCall(ctx, http.MethodPost, holder, addr, relayPath, body, nil); err != nil {
		s.log.Warn("forward after hand-off failed", "room", code, "to", holder, "kind", rc.Kind, "error", err)
		return rooms.ErrRoomNotFound
	}
	return nil
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
	kind, ok := relayKinds[rc.Kind]
	if !ok {
		s.apiError(w, http.StatusBadRequest, wire.ErrUnknownType)
		return
	}
	act := action{kind: kind}
	if len(rc.Data) > 0 {
		act.data = wire.Compact(rc.Data)
	}
	if rc.To != nil {
		act.to, act.targeted = *rc.To, true
	}
	_, err = s.apply(room, rooms.AsForward(call.sender, rc.From), act)
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
