// Package tokens mints and checks create tokens: short-lived JWTs that a
// game's backend gives a browser so it may create a room on a relay that
// requires them (CREATE_TOKEN_SECRET, or CREATE_TOKEN_PUBLIC_KEY for
// EdDSA). JWT itself is github.com/golang-jwt/jwt/v5's.
package tokens

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims of a create token. Exp is required; the others are optional.
type Claims struct {
	// MaxClients caps the maxClients a create may ask for (0: no cap).
	MaxClients float64 `json:"maxClients,omitempty"`
	// Origin must equal the socket's Origin header when set.
	Origin string `json:"origin,omitempty"`
	jwt.RegisteredClaims
}

// MaxLifetime is how far in the future a token's exp may be: create tokens
// are minted for one create, moments before it.
const MaxLifetime = time.Hour

// Mint signs claims with HS256 and secret, expiring after ttl.
func Mint(secret []byte, ttl time.Duration, c Claims) (string, error) {
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(ttl))
	c.IssuedAt = jwt.NewNumericDate(time.Now())
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// MintEd25519 signs claims with EdDSA, so the relay needs only the public
// key.
func MintEd25519(key ed25519.PrivateKey, ttl time.Duration, c Claims) (string, error) {
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(ttl))
	c.IssuedAt = jwt.NewNumericDate(time.Now())
	return jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(key)
}

// Verifier checks create tokens. The zero Verifier accepts none.
type Verifier struct {
	Secret    []byte            // HS256 key, or nil
	PublicKey ed25519.PublicKey // EdDSA key, or nil
	now       func() time.Time
}

// Enabled reports whether creates need a token.
func (v *Verifier) Enabled() bool { return v != nil && (len(v.Secret) > 0 || len(v.PublicKey) > 0) }

// ErrUnauthorized is every failure, as the client sees it.
var ErrUnauthorized = errors.New("Unauthorized")

// Check verifies token for a create asking for maxClients from a socket
// with this Origin, and returns its claims. The error says why (for logs);
// clients only ever see ErrUnauthorized.
func (v *Verifier) Check(token string, maxClients float64, origin string) (*Claims, error) {
	if token == "" {
		return nil, errors.New("no token")
	}
	if len(token) > 4096 {
		return nil, errors.New("token over 4096 bytes")
	}
	now := time.Now
	if v.now != nil {
		now = v.now
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
	}, jwt.WithValidMethods([]string{"HS256", "EdDSA"}), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(now), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return nil, err
	}
	switch {
	case c.ExpiresAt.Time.After(now().Add(MaxLifetime + 5*time.Second)):
		return nil, fmt.Errorf("exp more than %v ahead", MaxLifetime)
	case c.MaxClients > 0 && maxClients > c.MaxClients:
		return nil, fmt.Errorf("maxClients %v over the token's %v", maxClients, c.MaxClients)
	case c.Origin != "" && c.Origin != origin:
		return nil, fmt.Errorf("origin %q is not the token's %q", origin, c.Origin)
	}
	return &c, nil
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
