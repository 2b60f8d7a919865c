package server

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/party-sockets/party-sockets/internal/peerauth"
)

// What a machine trusts of a request's path to it (docs/limits.md "Whom the limits
// count, and what we trust of Fly"): a sibling proves itself by a signature
// made with the app's shared secret (peerauth), never by its address; and a
// request that carries any header Fly's proxy adds came through the proxy,
// whatever the header's value, when its socket address is one the proxy
// may connect from: any, unless TRUSTED_PROXIES names them.

// proxyHeaders are the request headers Fly's proxy adds (docs/limits.md "Whom the
// limits count, and what we trust of Fly"). A
// request between machines over the private network carries none.
var proxyHeaders = []string{"Fly-Region", "Fly-Client-Ip", "Fly-Forwarded-Port", "Fly-Request-Id",
	"Fly-Forwarded-Proto", "Fly-Forwarded-Ssl", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Port",
	"X-Forwarded-Ssl", "Via"}

// viaProxy reports whether r carries any header of Fly's proxy, present
// with any value, empty included: present is what counts, so an empty
// first value cannot hide a real one.
func viaProxy(r *http.Request) bool {
	for _, h := range proxyHeaders {
		if _, ok := r.Header[h]; ok {
			return true
		}
	}
	return false
}

// proxied reports whether r is taken as having come through Fly's proxy:
// it carries a proxy header (viaProxy) and its socket address is in
// TRUSTED_PROXIES, when that is set. Anything else is not the proxy's: a
// request with proxy headers from another socket counts against its
// socket address and is answered here, never routed. (The internal API
// refuses every request with a proxy header, trusted or not.)
func (s *Server) proxied(r *http.Request) bool {
	return viaProxy(r) && s.trustedSocket(r.RemoteAddr)
}

// trustedSocket reports whether remote ("host:port") is in
// TRUSTED_PROXIES; every address is while it is unset.
func (s *Server) trustedSocket(remote string) bool {
	if len(s.cfg.TrustedProxies) == 0 {
		return true
	}
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// peerKeys are the keys a machine signs and checks its siblings' calls
// with, derived from HANDOFF_SECRET; nil without one (no call is then
// accepted, and none is signed).
type peerKeys struct {
	internal []byte
	verifier *peerauth.Verifier
	// lookups checks the siblings' read-only lookups (probes, listings)
	// with the same key but its own memory of nonces: probes come at a
	// round's rate from every sibling, and must never fill the memory the
	// hand-off's calls need (a full one refuses them).
	lookups *peerauth.Verifier
}

// self is this machine's id: a call signed for another machine is
// refused here.
func newPeerKeys(secret, self string) *peerKeys {
	if secret == "" {
		return nil
	}
	k := peerauth.DeriveKey([]byte(secret), peerauth.LabelInternal)
	return &peerKeys{internal: k, verifier: peerauth.NewVerifier(k, self, 0, 0, nil),
		lookups: peerauth.NewVerifier(k, self, 0, 0, nil)}
}

// signPeer signs a call this machine makes to sibling to; body is what the
// request will carry, whose hash goes with it (peerauth.BodyHeader) so the
// sibling can check the call before it reads the body. Without a secret
// it does nothing.
func (s *Server) signPeer(req *http.Request, to string, body []byte) {
	if s.peer == nil {
		return
	}
	sig := peerauth.Sign(s.peer.internal, s.selfID(), to, req.Method, req.URL.RequestURI(), body, time.Now())
	req.Header.Set(peerauth.Header, sig)
	if len(body) > 0 {
		req.Header.Set(peerauth.BodyHeader, peerauth.BodyHash(body))
	}
}

// emptyBodyHash is the hash of a call without BodyHeader: no body.
var emptyBodyHash = peerauth.BodyHash(nil)

// verifyPeerHeader checks a sibling's signed call before its body is read,
// by the hash the sender claims for the body; the caller checks the body
// it reads against that hash. It returns the sender's machine id and the
// hash.
func (s *Server) verifyPeerHeader(r *http.Request) (sender, bodyHash string, err error) {
	if s.peer == nil {
		return "", "", peerauth.ErrMissing
	}
	bodyHash = r.Header.Get(peerauth.BodyHeader)
	if bodyHash == "" {
		bodyHash = emptyBodyHash
	}
	sender, err = s.peer.verifier.VerifyHash(r.Header.Get(peerauth.Header), r.Method, r.URL.RequestURI(), bodyHash)
	return sender, bodyHash, err
}

// peerMarker is on every answer of an internal endpoint of this release.
// A sibling's 401 without it comes from a machine of the previous
// release, which knows only the unsigned bearer form (handoff.go's
// internalCall falls back to it, for that call, for one release).
const peerMarker = "X-Party-Peer"

// legacyBearer reports whether r carries the previous release's unsigned
// "Authorization: Bearer <HANDOFF_SECRET>". Accepted on the endpoints the
// previous release calls, for one release (docs/deploys.md).
func (s *Server) legacyBearer(r *http.Request) bool {
	return peerauth.Bearer(r.Header.Get("Authorization"), s.cfg.HandoffSecret)
}

// verifyPeer checks a sibling's signed call, whose body the caller has
// read (bounded) first, and returns the sender's machine id.
func (s *Server) verifyPeer(r *http.Request, body []byte) (string, error) {
	if s.peer == nil {
		return "", peerauth.ErrMissing
	}
	return s.peer.verifier.Verify(r.Header.Get(peerauth.Header), r.Method, r.URL.RequestURI(), body)
}

// verifyLookup checks a sibling's signed lookup (a GET: no body), with
// the lookups' own memory of nonces, and returns the sender's machine id.
func (s *Server) verifyLookup(r *http.Request) (string, error) {
	if s.peer == nil {
		return "", peerauth.ErrMissing
	}
	return s.peer.lookups.Verify(r.Header.Get(peerauth.Header), r.Method, r.URL.RequestURI(), nil)
}

// selfID is the id this machine signs as and takes calls for: its machine
// id, "local" off Fly.
func (s *Server) selfID() string { return or(s.cfg.Instance, "local") }
