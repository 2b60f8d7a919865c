package server

import (
	"cmp"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/party-sockets/party-sockets/internal/peerauth"
	"github.com/party-sockets/party-sockets/internal/wire"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/tokens"
)

// The siblings' internal endpoints (docs/deploys.md, "Only siblings"): a
// stopping machine hands its rooms over with them (handoff.go). They are
// served only when HANDOFF_SECRET is set (else every path answers 404),
// never to a request that came through Fly's proxy (403), and only to a
// call signed with a key derived from the secret (peer.go; the previous
// release's bearer form on the endpoints it calls, for one release). The
// signature is checked before a byte of the body is read, and the body
// against it before it is decoded.
//
//	GET  /.internal/load    → {"instance","region","rooms","clients","draining"}
//	POST /.internal/handoff  a rooms.Snapshot → 200, 409 (code taken, transfer done or aborted), 503 (draining, full, busy)
//	POST /.internal/relay    what a member sent to the old machine while its room moved
//	POST /.internal/abort    {"code","transfer"}: drop a copy whose sender kept the room → {"dropped": bool}
//	GET  /.internal/rooms    {"total": n, "clients": n, "rooms": [{"code","clients"}, ...]} (at most 200; the local
//	                         cluster's overview); signed calls only
//	GET  /.internal/codes?region=<r>  {"codes": [...]}: region r's codes held here (codes.go); signed calls only
//	POST /.internal/yield   {"code","epoch","version","from"}: a newer copy of code lives elsewhere → {"yielded": bool}
//	                        (oneowner.go); signed calls only

const (
	internalPrefix = "/.internal/"
	loadPath       = internalPrefix + "load"
	handoffPath    = internalPrefix + "handoff"
	relayPath      = internalPrefix + "relay"
	abortPath      = internalPrefix + "abort"
	roomsPath      = internalPrefix + "rooms"

	// maxListedRooms bounds GET /.internal/rooms.
	maxListedRooms = 200
)

var (
	errInternalOnly = wire.Define("Internal endpoint")
	errNoSuchPath   = wire.Define("Not found")
)

func isInternal(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, internalPrefix) }

// peerCall is an authenticated call to an internal endpoint.
type peerCall struct {
	sender   string // the signing machine's id; "" for the previous release's bearer form
	legacy   bool   // the bearer form: no signature, no body hash
	bodyHash string // the hash the signature covers
}

// internalEndpoint is one internal endpoint: its method, whether the
// previous release's bearer form is taken (this release only), and its
// handler, which reads the body itself (readCall) within its own bound.
type internalEndpoint struct {
	method string
	legacy bool
	serve  func(s *Server, w http.ResponseWriter, r *http.Request, call peerCall)
}

// internalEndpoints is every internal path; one line each.
var internalEndpoints = map[string]internalEndpoint{
	loadPath:    {http.MethodGet, true, (*Server).serveLoad},
	handoffPath: {http.MethodPost, true, (*Server).receiveHandoff},
	relayPath:   {http.MethodPost, true, (*Server).receiveRelay},
	abortPath:   {http.MethodPost, true, (*Server).receiveAbort},
	roomsPath:   {http.MethodGet, false, (*Server).listRooms},     // codes let anyone join: signed calls only
	codesPath:   {http.MethodGet, false, (*Server).serveCodes},    // likewise (codes.go)
	yieldPath:   {http.MethodPost, false, (*Server).receiveYield}, // oneowner.go
}

func (s *Server) serveInternal(w http.ResponseWriter, r *http.Request) {
	if s.peer == nil {
		// No secret: no sibling can prove itself, so nothing is served.
		s.apiError(w, http.StatusNotFound, errNoSuchPath)
		return
	}
	w.Header().Set(peerMarker, "v1")
	if viaProxy(r) {
		s.lookupMissed(r)
		s.apiError(w, http.StatusForbidden, errInternalOnly)
		return
	}
	ep, ok := internalEndpoints[r.URL.Path]
	if !ok || r.Method != ep.method {
		s.apiError(w, http.StatusNotFound, errNoSuchPath)
		return
	}
	call, err := s.authenticate(r, ep.legacy)
	if err != nil {
		s.lookupMissed(r)
		s.log.Debug("internal call refused", "path", r.URL.Path, "error", err)
		s.apiError(w, http.StatusUnauthorized, tokens.ErrUnauthorized)
		return
	}
	ep.serve(s, w, r, call)
}

// authenticate checks a call's header: a signature when there is one,
// else (legacy endpoints only) the previous release's bearer form.
func (s *Server) authenticate(r *http.Request, legacy bool) (peerCall, error) {
	if r.Header.Get(peerauth.Header) == "" && legacy && s.legacyBearer(r) {
		return peerCall{legacy: true}, nil
	}
	sender, hash, err := s.verifyPeerHeader(r)
	return peerCall{sender: sender, bodyHash: hash}, err
}

// readCall reads an authenticated call's body, at most limit bytes, and
// checks it against the hash its signature covers. It answers the call
// itself (413, 400 or 401) when it reports false.
func (s *Server) readCall(w http.ResponseWriter, r *http.Request, call peerCall, limit int64) ([]byte, bool) {
	if r.ContentLength > limit {
		s.apiError(w, http.StatusRequestEntityTooLarge, errBodyTooLarge)
		return nil, false
	}
	var body []byte
	var err error
	if r.ContentLength >= 0 {
		body = make([]byte, r.ContentLength) // net/http ends the body there
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		s.apiError(w, http.StatusRequestEntityTooLarge, errBodyTooLarge)
		return nil, false
	case err != nil:
		s.apiError(w, http.StatusBadRequest, wire.ErrInvalidJSON)
		return nil, false
	case !call.legacy && peerauth.BodyHash(body) != call.bodyHash:
		s.apiError(w, http.StatusUnauthorized, tokens.ErrUnauthorized)
		return nil, false
	}
	return body, true
}

// loadInfo is GET /.internal/load.
type loadInfo struct {
	Instance string `json:"instance"`
	Region   string `json:"region"`
	Rooms    int    `json:"rooms"`
	Clients  int    `json:"clients"`
	Draining bool   `json:"draining"`
}

func (s *Server) serveLoad(w http.ResponseWriter, r *http.Request, call peerCall) {
	if _, ok := s.readCall(w, r, call, 0); !ok {
		return
	}
	rooms, clients := s.rooms.Counts()
	writeJSON(w, http.StatusOK, loadInfo{s.cfg.Instance, s.cfg.Region, rooms, clients, s.draining.Load()})
}

// listRooms answers GET /.internal/rooms: at most maxListedRooms, by code.
func (s *Server) listRooms(w http.ResponseWriter, r *http.Request, call peerCall) {
	if _, ok := s.readCall(w, r, call, 0); !ok {
		return
	}
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
