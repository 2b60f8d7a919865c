package server

import (
	"net/http"

	"github.com/party-sockets/party-sockets/internal/peerauth"
)

// The operator's trust check (docs/limits.md "What we trust of Fly, checked"):
// with TRUST_CHECK=on and HANDOFF_SECRET set, a GET of TrustCheckPath
// signed with the key derived for it (peerauth.LabelDebug, never the
// siblings' key) is answered with what this machine saw of the request:
// the headers Fly's proxy sets or might pass on from a client, the
// socket address it came from and whether TRUSTED_PROXIES holds it, and
// what the server concluded from them.
// tests/live/trustcheck_test.go sends it through the proxy with forged
// headers. Any other request of the path gets 404, as if there were no
// such thing: with the switch off (the default), without a secret,
// unsigned, signed with another key or for another path, stale or
// replayed. It is not under /.internal/, which refuses proxied requests.

// TrustCheckPath is the trust check's endpoint.
const TrustCheckPath = "/.trust-check"

// trustHeaders are the request headers the answer echoes.
var trustHeaders = []string{"Fly-Region", "Fly-Client-Ip", "X-Forwarded-For", "Fly-Replay-Src", "Fly-Replay-Failed",
	"Fly-Request-Id", "Fly-Forwarded-Port", "X-Forwarded-Proto", "X-Forwarded-Port", "Via"}

// Bounds of the answer: at most 10 headers × 8 values × 256 bytes, about
// 21 KB, whatever the request held (its headers are bounded by
// MAX_HEADER_BYTES before this runs).
const (
	maxTrustValues     = 8
	maxTrustValueBytes = 256
)

// trustEcho is the answer.
type trustEcho struct {
	Instance  string              `json:"instance"`
	Region    string              `json:"region"`
	Remote    string              `json:"remote"`              // the socket address the request came from
	Headers   map[string][]string `json:"headers"`             // trustHeaders present, as received, in order
	Truncated bool                `json:"truncated,omitempty"` // a value or a list was cut to its bound
	ViaProxy  bool                `json:"viaProxy"`            // proxied(r): taken as having come through Fly's proxy
	CountedAs string              `json:"countedAs"`           // the address the per-address limits count it against
	// ProxyHeaders: it carries a header of Fly's proxy (viaProxy), whether
	// or not its socket is trusted.
	ProxyHeaders bool `json:"proxyHeaders"`
	// TrustedProxies is TRUSTED_PROXIES as this machine reads it, and
	// InTrustedProxies whether the socket address is in it; both absent
	// while it is unset (every socket may then send the proxy's headers).
	TrustedProxies   []string `json:"trustedProxies,omitempty"`
	InTrustedProxies *bool    `json:"inTrustedProxies,omitempty"`
}

// trustCheck verifies the operator's signed calls; nil when it is off.
type trustCheck struct{ verifier *peerauth.Verifier }

func newTrustCheck(on bool, secret string) *trustCheck {
	if !on || secret == "" {
		return nil
	}
	key := peerauth.DeriveKey([]byte(secret), peerauth.LabelDebug)
	// Through the proxy the caller cannot name a machine: any may answer.
	return &trustCheck{verifier: peerauth.NewVerifier(key, peerauth.AnyTarget, 0, 0, nil)}
}

// serveTrustCheck answers TrustCheckPath. A refusal costs one HMAC at
// most, and nothing at all while the check is off; the body is never read.
func (s *Server) serveTrustCheck(w http.ResponseWriter, r *http.Request) {
	if s.trust == nil || r.Method != http.MethodGet {
		s.apiError(w, http.StatusNotFound, errNoSuchPath)
		return
	}
	id, err := s.trust.verifier.Verify(r.Header.Get(peerauth.Header), r.Method, r.URL.RequestURI(), nil)
	if err != nil {
		s.log.Debug("trust check refused", "remote", r.RemoteAddr, "error", err)
		s.apiError(w, http.StatusNotFound, errNoSuchPath)
		return
	}
	s.log.Info("trust check answered", "caller", id, "remote", r.RemoteAddr)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, s.trustEcho(r))
}

func (s *Server) trustEcho(r *http.Request) trustEcho {
	e := trustEcho{Instance: s.cfg.Instance, Region: s.cfg.Region, Remote: r.RemoteAddr, Headers: map[string][]string{},
		ViaProxy: s.proxied(r), CountedAs: s.clientIP(r), ProxyHeaders: viaProxy(r)}
	if len(s.cfg.TrustedProxies) > 0 {
		in := s.trustedSocket(r.RemoteAddr)
		e.InTrustedProxies = &in
		for _, p := range s.cfg.TrustedProxies {
			e.TrustedProxies = append(e.TrustedProxies, p.String())
		}
	}
	for _, h := range trustHeaders {
		vs, ok := r.Header[h]
		if !ok {
			continue
		}
		if len(vs) > maxTrustValues {
			vs, e.Truncated = vs[:maxTrustValues], true
		}
		out := make([]string, len(vs))
		for i, v := range vs {
			if len(v) > maxTrustValueBytes {
				v, e.Truncated = v[:maxTrustValueBytes], true
			}
			out[i] = v
		}
		e.Headers[h] = out
	}
	return e
}
