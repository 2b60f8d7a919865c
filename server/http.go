package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/party-sockets/party-sockets/routing"
)

// ServeHTTP handles a request in the old relay's order (docs/protocol.md, "How a player reaches the right machine (Fly)"),
// after the siblings' internal endpoints (internal.go) and the trust check
// (trustcheck.go): routing, /health, /metrics, the server API (api.go),
// /room/<code>, upgrades, the rest.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isInternal(r) {
		s.serveInternal(w, r) // siblings only: never routed
		return
	}
	if r.URL.Path == TrustCheckPath {
		s.serveTrustCheck(w, r) // the operator's, off by default: never routed (trustcheck.go)
		return
	}
	api := isAPI(r)
	if api && s.apiRefusal(w, r) {
		return // before routing: a refused call costs no probe
	}
	r, answered := s.route(w, r)
	if answered {
		return
	}
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	path := r.URL.Path
	switch {
	case get && path == "/health":
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	case get && path == "/metrics":
		s.metrics.handler.ServeHTTP(w, r)
	case api:
		s.serveAPI(w, r)
	case get && strings.HasPrefix(path, "/room/"):
		s.serveRoom(w, r)
	case isUpgrade(r):
		s.serveWS(w, r)
	case s.cfg.DashboardURL != "":
		http.Redirect(w, r, s.cfg.DashboardURL, http.StatusFound)
	default:
		rooms, clients := s.rooms.Counts()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "rooms: %d\nclients: %d\n", rooms, clients)
	}
}

func (s *Server) serveRoom(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Instance-Id", s.cfg.Instance)
	// Browsers may read it cross-origin: clients pin reconnects with it.
	w.Header().Set("Access-Control-Expose-Headers", "X-Instance-Id")
	s.roomCORS(w, r)
	who, ip := s.lookupCaller(r), s.clientIP(r)
	code, _ := routing.CandidateCode(r.URL.EscapedPath()) // "" (no room) for a bad escape
	// A lookup whose probe ran was let in by probeFor already.
	probed := r.Context().Value(missCharged{}) != nil
	var took newcomer
	if who == callerClient && !probed {
		var admitted bool
		if admitted, took = s.perAddr.admit(ip, code); !admitted {
			s.apiError(w, http.StatusTooManyRequests, errTooManyRequests)
			return
		}
	}
	if who == callerPeer && !s.peerLooks.take(peerKey(r.RemoteAddr), time.Now()) {
		s.apiError(w, http.StatusTooManyRequests, errTooManyRequests)
		return
	}
	info, ok := s.rooms.Lookup(code)
	if ok {
		s.perAddr.found(ip, took)
	}
	if who == callerSibling && s.siblingLookup(w, code, ok) {
		return // the code ended here: a signed probe is told so (restore_probe.go)
	}
	if !ok {
		if who == callerClient && !probed {
			s.perAddr.missCode(ip, code)
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Room not found"})
		return
	}
	body := struct {
		Clients    int     `json:"clients"`
		MaxClients float64 `json:"maxClients"`
		Origin     string  `json:"origin"`
		URL        string  `json:"url,omitempty"`
	}{info.Clients, info.MaxClients, info.Origin, info.URL}
	writeJSON(w, http.StatusOK, body)
}

// roomCORS lets only the allowed origins' pages read GET /room/<code> when
// ALLOWED_ORIGINS is set, so no other site can make its visitors' browsers
// walk the code space; the old relay's "*" otherwise (docs/limits.md "One request
// costs one request").
func (s *Server) roomCORS(w http.ResponseWriter, r *http.Request) {
	if len(s.cfg.AllowedOrigins) == 0 {
		return
	}
	h := w.Header()
	h.Set("Vary", "Origin")
	if o := r.Header.Get("Origin"); o != "" && len(o) <= MaxOriginBytes && originAllowed(o, s.cfg.AllowedOrigins) {
		h.Set("Access-Control-Allow-Origin", o)
		return
	}
	h["Access-Control-Allow-Origin"] = []string{} // present: writeJSON leaves it out
}

// originAllowed matches an Origin's host against host patterns the way
// coder/websocket does for upgrades (path.Match, case-insensitive).
func originAllowed(origin string, patterns []string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	host := strings.ToLower(u.Host)
	for _, p := range patterns {
		if ok, _ := path.Match(strings.ToLower(p), host); ok {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if _, set := h["Access-Control-Allow-Origin"]; !set {
		h.Set("Access-Control-Allow-Origin", "*")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}
