package server

import (
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/party-sockets/party-sockets/internal/peerauth"
)

// Who a room lookup (GET /room/<code>) counts against (docs/limits.md "Whom the
// limits count, and what we trust of Fly"):
//   - a sibling's probe, signed with the app's secret: nobody;
//   - on Fly, one that did not come through the proxy, from a private or
//     loopback socket address, unsigned: its socket address's budget for
//     peers' lookups, sized for a peer's probe rate. Machines of the old
//     relay, and of this server without a secret, probe this way;
//   - anything else: the client's address and its miss budget.
type caller int

const (
	callerClient  caller = iota
	callerSibling        // a verified signature
	callerPeer           // unsigned, from the private network
)

// isLookup reports whether r is GET (or HEAD) /room/<...>.
func isLookup(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(r.URL.Path, "/room/")
}

// lookupCaller classifies a lookup. A signature is checked here, which
// spends its nonce: call it once per request (serveRoom does).
func (s *Server) lookupCaller(r *http.Request) caller {
	if s.cfg.AppName == "" || viaProxy(r) || !isLookup(r) {
		return callerClient
	}
	if r.Header.Get(peerauth.Header) != "" {
		if _, err := s.verifyLookup(r); err == nil {
			return callerSibling
		}
		// A bad, old or replayed signature earns nothing more than none.
	}
	if privateSocket(r) {
		return callerPeer
	}
	return callerClient
}

// exempt reports whether r counts against no address: a sibling's signed
// lookup. Any other request (an upgrade, the internal API) is answered
// without a signature check; a lookup's is checked, once, by serveRoom.
func (s *Server) exempt(r *http.Request) bool { return s.lookupCaller(r) == callerSibling }

// peerKey is the key of a peer's budget: its whole socket address (not a
// /64: the machines of one organisation may share one on the private
// network, and each probes at its own rate).
func peerKey(remote string) string {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return remote
	}
	return ap.Addr().Unmap().String()
}

// privateSocket reports whether r's socket address is private or loopback
// (on Fly: another machine of the organisation, over 6PN).
func privateSocket(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	return ip.IsPrivate() || ip.IsLoopback()
}

// lightProbeRounds is how many rounds an address may have spent of its
// probe allowance and still be light (routing.Allowance): a household's
// rejoin of one room after a deploy needs 6 at most (README).
const lightProbeRounds = 8

// probeAllowance is one client address's share of probe rounds.
type probeAllowance struct {
	rate addrRate
	ip   string
	now  time.Time
}

// Light implements routing.Allowance.
func (a probeAllowance) Light() bool {
	return a.rate.level(a.ip, a.now) >= a.rate.burst-lightProbeRounds
}

// Spend implements routing.Allowance.
func (a probeAllowance) Spend() bool { return a.rate.take(a.ip, a.now) }
