package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"party-sockets/routing"
)

// ServeHTTP handles a request in the order of the wire contract (§9).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.route(w, r) {
		return
	}
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	path := r.URL.Path
	switch {
	case get && path == "/health":
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	case get && path == "/metrics":
		s.metrics.handler.ServeHTTP(w, r)
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
	ip, counted := s.clientIP(r), !s.exempt(r)
	if counted && s.ipl.blocked(ip) {
		s.metrics.errorSent(errTooManyRequests)
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": errTooManyRequests.Error()})
		return
	}
	code, _ := routing.CandidateCode(r.URL.EscapedPath()) // "" (no room) for a bad escape
	info, ok := s.rooms.Lookup(code)
	if !ok {
		if counted {
			s.ipl.miss(ip)
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}
