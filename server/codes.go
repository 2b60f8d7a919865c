package server

import (
	"net/http"

	"github.com/party-sockets/party-sockets/internal/wire"
	"github.com/party-sockets/party-sockets/regions"
	"github.com/party-sockets/party-sockets/routing"
)

// GET /.internal/codes?region=<r>: the codes of region r held here, at
// most routing.MaxListedCodes, for a sibling looking for where r's codes
// went (routing/away.go):
//
//	→ {"codes": ["<code>", ...]}
//
// Codes let anyone join, so it answers only a signed call (serveInternal:
// none without the app's secret, none through Fly's proxy, never the
// previous release's bearer form).

const codesPath = routing.CodesPath

var errUnknownRegion = wire.Define("Unknown region")

func (s *Server) serveCodes(w http.ResponseWriter, r *http.Request, call peerCall) {
	if _, ok := s.readCall(w, r, call, 0); !ok {
		return
	}
	region := r.URL.Query().Get("region")
	if !regions.Known(region) {
		s.apiError(w, http.StatusBadRequest, errUnknownRegion)
		return
	}
	codes := []string{}
	for _, code := range s.rooms.Codes() {
		if home, ok := regions.HomeOf(code); ok && home == region {
			if codes = append(codes, code); len(codes) == routing.MaxListedCodes {
				break
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string][]string{"codes": codes})
}
