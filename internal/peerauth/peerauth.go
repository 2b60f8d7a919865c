// Package peerauth authenticates calls between the machines of one app
// (docs/deploys.md, "Whom the limits count"). Every key is derived from
// the secret all machines share (HANDOFF_SECRET) with HKDF-SHA256 and a
// label of its own, so a key for one use never serves another. A call
// carries one header that signs its method, path and query, the sender's
// machine id, the time, a fresh nonce and the SHA-256 of its body. A
// receiver refuses a signature that is wrong, older or newer than MaxAge,
// or whose nonce it has already seen: a captured call cannot be replayed,
// and a call cannot be moved to another path or given another body.
package peerauth

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header carries the signature:
//
//	v1;id=<machine id>;to=<machine id>;t=<unix ms>;n=<32 hex digits>;s=<base64url HMAC-SHA256>
//
// "to" names the machine the call is meant for (AnyTarget, "*", when the
// caller cannot know it: the operator's trust check through the proxy), so
// a call captured on its way to one machine is refused by every other,
// each of which keeps only its own memory of nonces.
const Header = "X-Party-Auth"

// Labels of the keys derived from the shared secret. Append only: a label
// that changes is a new key, which every machine of a mixed fleet must know.
const (
	LabelInternal = "party-sockets internal calls v1" // siblings' /.internal/ calls and peer probes
	LabelDebug    = "party-sockets trust check v1"    // the operator's trust check (server/trustcheck.go)
	LabelTickets  = "party-sockets tickets v1"        // rooms' sealed tickets (internal/ticket)
)

// BodyHeader carries the hex SHA-256 of a call's body, which the
// signature covers: a receiver can check the signature before it reads a
// byte of the body (VerifyHash), then the body against it. A call without
// it has an empty body.
const BodyHeader = "X-Party-Body-Sha256"

// MaxHeaderBytes bounds the header a receiver parses.
const MaxHeaderBytes = 256

// DefaultMaxAge is how far a call's time may be from the receiver's
// clock. Fly's machines keep their clocks with NTP; a call takes at most
// seconds.
const DefaultMaxAge = 30 * time.Second

// maxIDBytes bounds the sender's id: a Fly machine id is 14 hex digits.
const maxIDBytes = 64

// DeriveKey is the key for one label, derived from the shared secret.
func DeriveKey(secret []byte, label string) []byte {
	k, err := hkdf.Key(sha256.New, secret, nil, label, sha256.Size)
	if err != nil {
		panic(err) // only for a length over 255 hashes
	}
	return k
}

// Errors of Verify; every one is a refusal, told apart only in logs.
var (
	ErrMissing   = errors.New("peerauth: no signature")
	ErrMalformed = errors.New("peerauth: malformed signature")
	ErrStale     = errors.New("peerauth: signature too old or too new")
	ErrBadMAC    = errors.New("peerauth: bad signature")
	ErrReplayed  = errors.New("peerauth: nonce seen before")
	ErrNotForMe  = errors.New("peerauth: signed for another machine")
	ErrBusy      = errors.New("peerauth: too many calls to remember")
)

// AnyTarget is the "to" of a call that any machine may take.
const AnyTarget = "*"

// Sign returns the header value for a call from machine id to machine to
// (or AnyTarget) at now.
func Sign(key []byte, id, to, method, requestURI string, body []byte, now time.Time) string {
	var nonce [16]byte
	rand.Read(nonce[:])
	t := strconv.FormatInt(now.UnixMilli(), 10)
	n := hex.EncodeToString(nonce[:])
	mac := macHash(key, id, to, method, requestURI, t, n, BodyHash(body))
	return "v1;id=" + id + ";to=" + to + ";t=" + t + ";n=" + n + ";s=" + mac
}

// BodyHash is the hex SHA-256 of body, as BodyHeader carries it.
func BodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

func macHash(key []byte, id, to, method, requestURI, t, n, bodyHash string) string {
	m := hmac.New(sha256.New, key)
	for _, part := range []string{"v1", method, requestURI, id, to, t, n, bodyHash} {
		m.Write([]byte(part))
		m.Write([]byte{'\n'})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Signature is a parsed header.
type Signature struct {
	ID, To, T, N, S string
	At              time.Time
}

// Parse reads a header value without checking its MAC.
func Parse(v string) (Signature, error) {
	var sig Signature
	if v == "" {
		return sig, ErrMissing
	}
	if len(v) > MaxHeaderBytes {
		return sig, ErrMalformed
	}
	rest, ok := strings.CutPrefix(v, "v1;")
	if !ok {
		return sig, ErrMalformed
	}
	for _, kv := range strings.Split(rest, ";") {
		k, val, _ := strings.Cut(kv, "=")
		switch k {
		case "id":
			sig.ID = val
		case "to":
			sig.To = val
		case "t":
			sig.T = val
		case "n":
			sig.N = val
		case "s":
			sig.S = val
		default:
			return sig, ErrMalformed
		}
	}
	ms, err := strconv.ParseInt(sig.T, 10, 64)
	switch {
	case sig.ID == "" || len(sig.ID) > maxIDBytes || !printable(sig.ID):
		return sig, ErrMalformed
	case sig.To == "" || len(sig.To) > maxIDBytes || !printable(sig.To):
		return sig, ErrMalformed
	case err != nil || ms <= 0 || strconv.FormatInt(ms, 10) != sig.T:
		return sig, ErrMalformed
	case len(sig.N) != 32 || !isHex(sig.N):
		return sig, ErrMalformed
	case len(sig.S) != base64.RawURLEncoding.EncodedLen(sha256.Size):
		return sig, ErrMalformed
	}
	sig.At = time.UnixMilli(ms)
	return sig, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' || s[i] == ';' || s[i] == '=' {
			return false
		}
	}
	return true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Verifier checks signed calls with one key and remembers the nonces it
// accepted for twice MaxAge, at most MaxNonces of them. The zero value is
// not usable: make one with NewVerifier.
type Verifier struct {
	key       []byte
	self      string // the "to" a call must name
	maxAge    time.Duration
	maxNonces int
	now       func() time.Time

	mu    sync.Mutex // guards seen, order
	seen  map[string]time.Time
	order []nonceAt // accepted nonces, oldest first
}

type nonceAt struct {
	n     string
	until time.Time
}

// DefaultMaxNonces bounds the nonces a verifier remembers: about 100 bytes
// each, so 6.5 MB at most. Only a holder of the key can add one, and only
// a flood of over 1,000 signed calls a second for a minute reaches it;
// calls past it are refused (ErrBusy), never accepted unremembered.
const DefaultMaxNonces = 65536

// NewVerifier returns a verifier of key for the machine self: it takes
// only calls signed for self (self AnyTarget: for any machine, and only
// those). maxAge 0 means DefaultMaxAge, maxNonces 0 DefaultMaxNonces, now
// nil time.Now.
func NewVerifier(key []byte, self string, maxAge time.Duration, maxNonces int, now func() time.Time) *Verifier {
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	if maxNonces <= 0 {
		maxNonces = DefaultMaxNonces
	}
	if now == nil {
		now = time.Now
	}
	return &Verifier{key: key, self: self, maxAge: maxAge, maxNonces: maxNonces, now: now, seen: map[string]time.Time{}}
}

// Verify checks the header value v of a call and returns the sender's
// machine id. requestURI is the path and query as sent (r.URL.RequestURI()).
func (v *Verifier) Verify(header, method, requestURI string, body []byte) (string, error) {
	return v.VerifyHash(header, method, requestURI, BodyHash(body))
}

// VerifyHash is Verify for a body not read yet, known by the hash its
// sender claims (BodyHeader): the caller must then check the body it reads
// against bodyHash. A bodyHash that is not 64 lower-case hex digits is
// refused.
func (v *Verifier) VerifyHash(header, method, requestURI, bodyHash string) (string, error) {
	if len(bodyHash) != 2*sha256.Size || !isHex(bodyHash) {
		return "", ErrMalformed
	}
	sig, err := Parse(header)
	if err != nil {
		return "", err
	}
	now := v.now()
	if d := now.Sub(sig.At); d > v.maxAge || d < -v.maxAge {
		return "", ErrStale
	}
	want := macHash(v.key, sig.ID, sig.To, method, requestURI, sig.T, sig.N, bodyHash)
	if subtle.ConstantTimeCompare([]byte(want), []byte(sig.S)) != 1 {
		return "", ErrBadMAC
	}
	if sig.To != v.self {
		return "", ErrNotForMe
	}
	if err := v.remember(sig.N, now); err != nil {
		return "", err
	}
	return sig.ID, nil
}

// remember records an accepted nonce; a nonce seen before, or one past
// the bound while every remembered nonce is still in its window, is
// refused.
func (v *Verifier) remember(n string, now time.Time) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	drop := 0
	for drop < len(v.order) && now.After(v.order[drop].until) {
		delete(v.seen, v.order[drop].n)
		drop++
	}
	if drop > 0 {
		clear(v.order[:drop])
		v.order = v.order[drop:]
	}
	if _, dup := v.seen[n]; dup {
		return ErrReplayed
	}
	if len(v.seen) >= v.maxNonces {
		return ErrBusy
	}
	// A nonce is refused for as long as its time can pass the age check.
	until := now.Add(2 * v.maxAge)
	v.seen[n] = until
	v.order = append(v.order, nonceAt{n, until})
	return nil
}

// Bearer reports, in constant time, whether an Authorization header value
// is "Bearer <secret>": the unsigned form machines of the previous release
// send (docs/deploys.md: accepted for one release).
func Bearer(authorization, secret string) bool {
	got, ok := strings.CutPrefix(authorization, "Bearer ")
	return ok && secret != "" && subtle.ConstantTimeCompare([]byte(got), []byte(secret)) == 1
}
