// Package tokens mints and checks create tokens: short-lived JWTs that a
// game's backend gives a browser so it may create a room on a relay that
// requires them (CREATE_TOKEN_SECRET, or CREATE_TOKEN_PUBLIC_KEY for
// EdDSA). A token is good for one create on each machine it reaches
// (spent.go). JWT itself is github.com/golang-jwt/jwt/v5's.
package tokens

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/party-sockets/party-sockets/internal/wire"
)

// Claims of a create token. Exp is required; the others are optional.
type Claims struct {
	// MaxClients caps the maxClients a create may ask for (0: no cap).
	MaxClients float64 `json:"maxClients,omitempty"`
	// Origin must equal the socket's Origin header when set.
	Origin string `json:"origin,omitempty"`
	// Instance, when set, is the one machine that accepts the token: a
	// backend that wants strictly one create pins the browser there with
	// ?instance= (docs/backend.md).
	Instance string `json:"instance,omitempty"`
	jwt.RegisteredClaims

	spent spentKey // what Check remembered, for Refund
}

// MaxLifetime is how far in the future a token's exp may be: create tokens
// are minted for one create, moments before it.
const MaxLifetime = time.Hour

// leeway is how far past exp a token is still taken (clock skew).
const leeway = 5 * time.Second

// Mint signs claims with HS256 and secret, expiring after ttl. A token
// without a jti (c.ID) gets a fresh random one.
func Mint(secret []byte, ttl time.Duration, c Claims) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, stamp(c, ttl)).SignedString(secret)
}

// MintEd25519 signs claims with EdDSA, so the relay needs only the public
// key.
func MintEd25519(key ed25519.PrivateKey, ttl time.Duration, c Claims) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodEdDSA, stamp(c, ttl)).SignedString(key)
}

func stamp(c Claims, ttl time.Duration) Claims {
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(ttl))
	c.IssuedAt = jwt.NewNumericDate(time.Now())
	if c.ID == "" {
		c.ID = NewID()
	}
	return c
}

// NewID is a fresh random jti: 16 bytes, base64url.
func NewID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Verifier checks create tokens. The zero Verifier accepts none.
type Verifier struct {
	Secret    []byte            // HS256 key, or nil
	PublicKey ed25519.PublicKey // EdDSA key, or nil
	// Audience, when set, must be one of a token's aud.
	Audience string
	// Instance is this machine's id, for tokens that name one.
	Instance string
	// Remember bounds the spent tokens kept until they expire
	// (0: DefaultRemember); when it is reached, creates are refused.
	Remember int

	now func() time.Time // nil: time.Now

	mu    sync.Mutex // guards spent, swept
	spent map[spentKey]int64
	swept time.Time // when expired entries were last removed
}

// Enabled reports whether creates need a token.
func (v *Verifier) Enabled() bool { return v != nil && (len(v.Secret) > 0 || len(v.PublicKey) > 0) }

// ErrUnauthorized is every failure, as the client sees it.
var ErrUnauthorized error = wire.Define("Unauthorized")

// Check verifies token for a create asking for maxClients from a socket
// with this Origin, spends it, and returns its claims. The error says why
// (for logs); clients only ever see ErrUnauthorized, except for
// ErrTooManyTokens, which is no fault of the token.
func (v *Verifier) Check(token string, maxClients float64, origin string) (*Claims, error) {
	c, err := v.verify(token, maxClients, origin)
	if err != nil {
		return nil, err
	}
	if err := v.spend(c, token); err != nil {
		return nil, err
	}
	return c, nil
}

// verify checks the token's signature and claims.
func (v *Verifier) verify(token string, maxClients float64, origin string) (*Claims, error) {
	if token == "" {
		return nil, errors.New("no token")
	}
	if len(token) > 4096 {
		return nil, errors.New("token over 4096 bytes")
	}
	now := v.clock()
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{"HS256", "EdDSA"}), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(now), jwt.WithLeeway(leeway),
		// One signature, one spelling: without it a signature's unused
		// trailing bits give each token 4 (HS256) or 16 (EdDSA) spellings.
		jwt.WithStrictDecoding()}
	if v.Audience != "" {
		opts = append(opts, jwt.WithAudience(v.Audience))
	}
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		switch t.Method.Alg() {
		case jwt.SigningMethodHS256.Alg():
			if len(v.Secret) > 0 {
				return v.Secret, nil
			}
		case jwt.SigningMethodEdDSA.Alg():
			if len(v.PublicKey) > 0 {
				return v.PublicKey, nil
			}
		}
		return nil, fmt.Errorf("no key for %s", t.Method.Alg())
	}, opts...)
	if err != nil {
		return nil, err
	}
	switch {
	case c.ExpiresAt.Time.After(now().Add(MaxLifetime + leeway)):
		return nil, fmt.Errorf("exp more than %v ahead", MaxLifetime)
	case c.MaxClients > 0 && maxClients > c.MaxClients:
		return nil, fmt.Errorf("maxClients %v over the token's %v", maxClients, c.MaxClients)
	case c.Origin != "" && c.Origin != origin:
		return nil, fmt.Errorf("origin %q is not the token's %q", origin, c.Origin)
	case c.Instance != "" && c.Instance != v.Instance:
		return nil, fmt.Errorf("token for machine %q, not this one", c.Instance)
	}
	return &c, nil
}

func (v *Verifier) clock() func() time.Time {
	if v.now != nil {
		return v.now
	}
	return time.Now
}

// ParsePublicKey reads a PEM "PUBLIC KEY" holding an Ed25519 key.
func ParsePublicKey(pemText string) (ed25519.PublicKey, error) {
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return nil, errors.New("not PEM")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 key", k)
	}
	return pub, nil
}
