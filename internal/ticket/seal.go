package ticket

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"time"

	"github.com/party-sockets/party-sockets/internal/peerauth"
)

// MaxBytes bounds a sealed ticket: its base64url text, as a member holds
// it and presents it. A room whose ticket would be larger gets none
// (about 150 slots with a short url).
const MaxBytes = 4096

// MaxPlainBytes is the largest plaintext that seals within MaxBytes.
const MaxPlainBytes = MaxBytes/4*3 - nonceBytes - tagBytes

const (
	nonceBytes = 12 // AES-GCM's standard nonce, random per seal
	tagBytes   = 16
)

// Window is how long a ticket opens after it was issued. A room reissues
// its ticket every ReissueEvery, so a quiet room's newest never expires.
const Window = 10 * time.Minute

// ReissueEvery is the period of a room's reissue while nothing changes.
const ReissueEvery = 60 * time.Second

// Errors of Seal and Open.
var (
	// ErrTooLarge: the room's ticket would pass MaxBytes.
	ErrTooLarge = errors.New("ticket: too large")
	// ErrInvalid: the ticket does not open (forged, altered, sealed with
	// another key, malformed, oversize).
	ErrInvalid = errors.New("ticket: invalid")
)

// Sealer seals and opens tickets with one key. Safe for concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer is the sealer for the app's shared secret, nil without one:
// no secret, no tickets.
func NewSealer(secret string) *Sealer {
	if secret == "" {
		return nil
	}
	block, err := aes.NewCipher(peerauth.DeriveKey([]byte(secret), peerauth.LabelTickets))
	if err != nil {
		panic(err) // a 32-byte key always makes a cipher
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &Sealer{aead: aead}
}

// aad binds a sealed ticket to its format: a sealed box of another use of
// the same key (none today) could never open as a ticket.
var aad = []byte("party-sockets ticket v1")

// Seal encrypts p: base64url (no padding) of nonce and ciphertext.
func (s *Sealer) Seal(p *Plain) (string, error) {
	plain := p.Marshal()
	if len(plain) > MaxPlainBytes {
		return "", ErrTooLarge
	}
	out := make([]byte, nonceBytes, nonceBytes+len(plain)+tagBytes)
	rand.Read(out)
	out = s.aead.Seal(out, out[:nonceBytes], plain, aad)
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// Open checks and decrypts a ticket; the size is checked before any work.
func (s *Sealer) Open(t string) (*Plain, error) {
	if len(t) > MaxBytes || len(t) < base64.RawURLEncoding.EncodedLen(nonceBytes+tagBytes+1) {
		return nil, ErrInvalid
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(t)
	if err != nil {
		return nil, ErrInvalid
	}
	plain, err := s.aead.Open(nil, raw[:nonceBytes], raw[nonceBytes:], aad)
	if err != nil {
		return nil, ErrInvalid
	}
	p, err := Parse(plain)
	if err != nil {
		return nil, ErrInvalid
	}
	return p, nil
}
