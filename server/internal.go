package server

import (
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/tokens"
)

// The siblings' internal endpoints (README "Deploys"): a stopping machine
// hands its rooms over with them (handoff.go). They are never reachable through Fly's
// proxy (a request with Fly-Region is refused) and, when HANDOFF_SECRET is
// set, only with it as a bearer token (without it, only from a private or
// loopback address):
//
//	GET  /.internal/load    → {"instance","region","rooms","clients","draining"}
//	POST /.internal/handoff  a rooms.Snapshot → 200, 409 (code taken), 503 (draining, full)
//	POST /.internal/relay    what a member sent to the old machine while its room moved
//	POST /.internal/abort    {"code","transfer"}: drop a copy whose sender kept the room → {"dropped": bool}
//	GET  /.internal/rooms    {"total": n, "clients": n, "rooms": [{"code","clients"}, ...]} (at most 200; the local
//	                         cluster's overview); only with HANDOFF_SECRET set, as codes let anyone join

const (
	internalPrefix = "/.internal/"
	loadPath       = internalPrefix + "load"
	handoffPath    = internalPrefix + "handoff"
	relayPath      = internalPrefix + "relay"
	abortPath      = internalPrefix + "abort"
	roomsPath      = internalPrefix + "rooms"

	// maxListedRooms bounds GET /.internal/rooms.
	maxListedRooms = 200

	// MaxHandoffBytes bounds a snapshot on the wire. A room larger than
	// this with its recovery windows moves without them.
	MaxHandoffBytes = 8 << 20
)

var (
	errInternalOnly = errors.New("Internal endpoint")
	errNoSuchPath   = errors.New("Not found")
)

func isInternal(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, internalPrefix) }

// internalAuthorized: the secret when one is set; else a private or
// loopback socket address.
func (s *Server) internalAuthorized(r *http.Request) bool {
	if s.cfg.HandoffSecret != "" {
		return bearer(r, s.cfg.HandoffSecret)
	}
	return privateSocket(r)
}

// loadInfo is GET /.internal/load.
type loadInfo struct {
	Instance string `json:"instance"`
	Region   string `json:"region"`
	Rooms    int    `json:"rooms"`
	Clients  int    `json:"clients"`
	Draining bool   `json:"draining"`
}

func (s *Server) serveInternal(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == codesPath: // signed lookups, authorised there (codes.go)
		s.serveCodes(w, r)
		return
	case r.Header.Get("Fly-Region") != "":
		s.lookupMissed(r)
		s.apiError(w, http.StatusForbidden, errInternalOnly)
		return
	case !s.internalAuthorized(r):
		s.lookupMissed(r)
		s.apiError(w, http.StatusUnauthorized, tokens.ErrUnauthorized)
		return
	}
	switch {
	case r.URL.Path == loadPath && r.Method == http.MethodGet:
		rooms, clients := s.rooms.Counts()
		writeJSON(w, http.StatusOK, loadInfo{s.cfg.Instance, s.cfg.Region, rooms, clients, s.draining.Load()})
	case r.URL.Path == handoffPath && r.Method == http.MethodPost:
		s.receiveHandoff(w, r)
	case r.URL.Path == relayPath && r.Method == http.MethodPost:
		s.receiveRelay(w, r)
	case r.URL.Path == abortPath && r.Method == http.MethodPost:
		s.receiveAbort(w, r)
	case r.URL.Path == roomsPath && r.Method == http.MethodGet && s.cfg.HandoffSecret != "":
		// Codes let anyone join: listed only to a caller with the secret,
		// never on the strength of a private address alone.
		s.listRooms(w)
	default:
		s.apiError(w, http.StatusNotFound, errNoSuchPath)
	}
}

// DecodeSnapshot reads a hand-off body; Import checks what it says.
func DecodeSnapshot(body []byte) (*rooms.Snapshot, error) {
	var snap rooms.Snapshot
	if err := json.Unmarshal(body, &snap); err != nil {
		return nil, errInvalidJSON
	}
	return &snap, nil
}

func (s *Server) receiveHandoff(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		s.apiError(w, http.StatusServiceUnavailable, errDraining)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxHandoffBytes))
	if err != nil {
		s.apiError(w, http.StatusRequestEntityTooLarge, errBodyTooLarge)
		return
	}
	snap, err := DecodeSnapshot(body)
	if err == nil {
		err = s.rooms.Import(snap)
	}
	switch {
	case err == nil:
		s.metrics.handoffs.WithLabelValues(handoffReceived).Inc()
		s.log.Info("room received", "room", snap.Code, "from", validCopy(snap.From), "slots", len(snap.Slots))
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	case err == rooms.ErrCodeTaken || err == rooms.ErrTransferAborted:
		s.apiError(w, http.StatusConflict, err)
	case err == rooms.ErrOverBudget || err == rooms.ErrTooManyRooms:
		s.apiError(w, http.StatusServiceUnavailable, err)
	default:
		s.apiError(w, http.StatusBadRequest, err)
	}
}

// maxAbortBody bounds POST /.internal/abort: a code and a transfer id.
const maxAbortBody = 4096

func (s *Server) receiveAbort(w http.ResponseWriter, r *http.Request) {
	var call struct{ Code, Transfer string }
	if err := json.NewDecoder(io.LimitReader(r.Body, maxAbortBody)).Decode(&call); err != nil {
		s.apiError(w, http.StatusBadRequest, errInvalidJSON)
		return
	}
	dropped := s.rooms.Abort(call.Code, call.Transfer)
	if dropped {
		s.log.Warn("hand-off aborted by its sender: copy dropped", "room", validCopy(call.Code))
	}
	writeJSON(w, http.StatusOK, map[string]bool{"dropped": dropped})
}

// listRooms answers GET /.internal/rooms: at most maxListedRooms, by code.
func (s *Server) listRooms(w http.ResponseWriter) {
	type room struct {
		Code    string `json:"code"`
		Clients int    `json:"clients"`
	}
	all := s.rooms.Snapshot()
	slices.SortFunc(all, func(a, b rooms.Info) int { return cmp.Compare(a.Code, b.Code) })
	clients := 0
	for _, in := range all {
		clients += in.Clients
	}
	list := make([]room, 0, min(len(all), maxListedRooms))
	for _, in := range all[:min(len(all), maxListedRooms)] {
		list = append(list, room{in.Code, in.Clients})
	}
	writeJSON(w, http.StatusOK, map[string]any{"total": len(all), "clients": clients, "rooms": list})
}

// relayCall is a message, state or close a member sent to the old machine
// while its room was moving: the old machine forwards it to the new one.
type relayCall struct {
	Code string          `json:"code"`
	From int             `json:"from"`
	To   *uint64         `json:"to,omitempty"`
	Kind string          `json:"kind"` // send, state or close
	Data json.RawMessage `json:"data,omitempty"`
}

func (s *Server) receiveRelay(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxFrameBytes+4096))
	if err != nil {
		s.apiError(w, http.StatusRequestEntityTooLarge, errBodyTooLarge)
		return
	}
	var call relayCall
	if json.Unmarshal(body, &call) != nil || call.From < 0 {
		s.apiError(w, http.StatusBadRequest, errInvalidJSON)
		return
	}
	room := s.rooms.Room(call.Code)
	if room == nil {
		s.apiError(w, http.StatusNotFound, rooms.ErrRoomNotFound)
		return
	}
	var data []byte
	if len(call.Data) > 0 {
		data = compactData(call.Data)
	}
	switch call.Kind {
	case "send":
		frame := rooms.MessageFrame(call.From, data)
		n, err := room.Forwarded(call.From, call.To, frame)
		if err == nil {
			s.metrics.relayed(n, len(frame))
		}
	case "state":
		err = room.ForwardedState(data)
	case "close":
		err = room.ForwardedClose()
	default:
		err = errUnknownType
	}
	if err != nil {
		s.apiError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}
