package server

import (
	"crypto/subtle"
	"io"
	"net/http"
	"strings"

	"github.com/party-sockets/party-sockets/internal/wire"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/routing"
	"github.com/party-sockets/party-sockets/tokens"
)

// The server API: the game's backend speaks into a room by its code, from
// anywhere (requests are routed like GET /room/<code>):
//
//	POST /room/<code>/send  {"data": <json>, "to": <index>?} → {"delivered": n}
//	POST /room/<code>/state {"data": <json>}
//	POST /room/<code>/close
//
// Authorised by "Authorization: Bearer <SERVER_API_KEY>"; off without it.

// MaxAPIBody bounds a server API request body (a state is at most 16 KiB).
const MaxAPIBody = 64 << 10

var (
	errAPIOff       = wire.Define("Server API is off")
	errBodyTooLarge = wire.Define("Body too large")
	errDataRequired = wire.Define("data is required")
)

// isAPI reports whether r is a server API call.
func isAPI(r *http.Request) bool {
	_, _, ok := routing.APIPath(r.URL.EscapedPath())
	return ok && r.Method == http.MethodPost
}

// apiAuthorized compares the bearer key in constant time.
func (s *Server) apiAuthorized(r *http.Request) bool {
	return s.cfg.APIKey != "" && bearer(r, s.cfg.APIKey)
}

// bearer reports, in constant time, whether r carries "Authorization:
// Bearer <key>".
func bearer(r *http.Request, key string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(key)) == 1
}

// apiRefusal answers a call that may not run, before any routing or probe:
// the API is off (404) or the key is wrong (401). It reports whether it
// answered.
func (s *Server) apiRefusal(w http.ResponseWriter, r *http.Request) bool {
	switch {
	case s.cfg.APIKey == "":
		s.apiError(w, http.StatusNotFound, errAPIOff)
	case !s.apiAuthorized(r):
		s.lookupMissed(r)
		s.apiError(w, http.StatusUnauthorized, tokens.ErrUnauthorized)
	default:
		return false
	}
	return true
}

// apiError answers an HTTP request with err as {"error": "..."} and
// counts it: every HTTP error of the server, the API's and others'.
func (s *Server) apiError(w http.ResponseWriter, status int, err error) {
	s.metrics.errorSent(err)
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// serveAPI runs an authorised call on the room held here.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Instance-Id", s.cfg.Instance)
	code, action, _ := routing.APIPath(r.URL.EscapedPath())
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxAPIBody))
	if err != nil {
		s.apiError(w, http.StatusRequestEntityTooLarge, errBodyTooLarge)
		return
	}
	room := s.rooms.Room(code)
	if room == nil {
		s.lookupMissed(r)
		s.apiError(w, http.StatusNotFound, rooms.ErrRoomNotFound)
		return
	}
	var m wire.Message
	if action != "close" || len(body) > 0 {
		if m, err = wire.DecodeObject(body); err != nil {
			s.apiError(w, http.StatusBadRequest, err)
			return
		}
	}
	act, err := apiAction(action, &m)
	if err != nil {
		s.apiError(w, http.StatusBadRequest, err)
		return
	}
	n, err := s.apply(room, rooms.AsBackend(), act)
	switch {
	case err != nil:
		s.apiError(w, statusOf(err), err)
	case act.kind == actSend:
		writeJSON(w, http.StatusOK, map[string]int{"delivered": n})
	default:
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	}
}

// apiAction reads a call's body for its verb (send, state or close).
func apiAction(verb string, m *wire.Message) (action, error) {
	switch verb {
	case "send":
		return sendAction(m)
	case "state":
		if m.Data == nil {
			return action{}, errDataRequired
		}
		return action{kind: actState, data: wire.Compact(m.Data)}, nil
	case "close":
		return action{kind: actClose}, nil
	}
	return action{}, errNoSuchPath // routing.APIPath knows no other
}

func statusOf(err error) int {
	switch err {
	case rooms.ErrRoomNotFound, rooms.ErrTargetNotFound:
		return http.StatusNotFound
	case rooms.ErrOverBudget:
		// The machine's memory, not the call, is the problem: try later.
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}
