package server

import (
	"errors"
	"net/http"

	"github.com/party-sockets/party-sockets/regions"
	"github.com/party-sockets/party-sockets/routing"
	"github.com/party-sockets/party-sockets/tokens"
)

// GET /.internal/codes?region=<r>: the codes of region r held here, at
// most routing.MaxListedCodes, for a sibling looking for where r's codes
// went (routing/away.go):
//
//	→ {"codes": ["<code>", ...]}
//
// Codes let anyone join, so it answers only a signed call (the app's
// secret; none set, it answers nobody), never one through Fly's proxy. It
// checks the signature itself, with the lookups' memory of nonces, so it
// stands however the other internal endpoints are authorised.

const codesPath = routing.CodesPath

var errUnknownRegion = errors.New("Unknown region")

func (s *Server) serveCodes(w http.ResponseWriter, r *http.Request) {
	switch {
	case viaProxy(r):
		s.apiError(w, http.StatusForbidden, errInternalOnly)
		return
	case r.Method != http.MethodGet:
		s.apiError(w, http.StatusNotFound, errNoSuchPath)
		return
	}
	if _, err := s.verifyLookup(r); err != nil {
		s.log.Debug("listing refused", "error", err)
		s.apiError(w, http.StatusUnauthorized, tokens.ErrUnauthorized)
		return
	}
	region := r.URL.Query().Get("region")
	if !regions.Known(region) {
		s.apiError(w, http.StatusBadRequest, errUnknownRegion)
		return
	}
	codes := []string{}
	for _, code := range s.rooms.Codes() {
		if home, ok := regions.RegionOf(code); ok && home == region {
			if codes = append(codes, code); len(codes) == routing.MaxListedCodes {
				break
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string][]string{"codes": codes})
}
