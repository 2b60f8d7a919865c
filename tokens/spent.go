package tokens

import (
	"crypto/sha256"
	"errors"
	"strings"
	"time"
)

// DefaultRemember is how many spent, unexpired tokens a machine keeps by
// default: 100,000 (a map of 16-byte keys and expiries, about 3.5 MB; it
// never grows past that). A token is kept until its exp, at most
// MaxLifetime, so that is 27 token creates a second for an hour.
const DefaultRemember = 100_000

// ErrTooManyTokens refuses a create when the machine already remembers
// Remember unexpired tokens: forgetting one would let it be used again.
var ErrTooManyTokens = errors.New("too many unexpired spent tokens to remember another")

// spentKey names a spent token: a hash of its jti when it has one, else of
// its signed part (header and claims: with HS256 one signed part has one
// signature, and an EdDSA key holder who signs the same claims twice still
// names one token).
type spentKey [16]byte

func keyOf(c *Claims, token string) spentKey {
	h := sha256.New()
	if c.ID != "" {
		h.Write([]byte("jti\x00"))
		h.Write([]byte(c.ID))
	} else {
		h.Write([]byte("jwt\x00"))
		h.Write([]byte(token[:max(strings.LastIndexByte(token, '.'), 0)]))
	}
	var k spentKey
	copy(k[:], h.Sum(nil))
	return k
}

// spend remembers c's token until it expires, or refuses it if it was
// spent already on this machine (or the memory is full).
func (v *Verifier) spend(c *Claims, token string) error {
	now := v.clock()()
	k := keyOf(c, token)
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.spent == nil {
		v.spent = map[spentKey]int64{}
		v.swept = now
	}
	if exp, ok := v.spent[k]; ok && now.Unix() <= exp {
		return errors.New("token already spent")
	}
	limit := v.Remember
	if limit <= 0 {
		limit = DefaultRemember
	}
	// Expired entries go once a minute, or at most once a second when
	// full: a sweep reads the whole map.
	if since := now.Sub(v.swept); since >= time.Minute || (len(v.spent) >= limit && since >= time.Second) {
		v.sweepLocked(now)
	}
	if len(v.spent) >= limit {
		return ErrTooManyTokens
	}
	v.spent[k] = c.ExpiresAt.Add(leeway).Unix()
	c.spent = k
	return nil
}

func (v *Verifier) sweepLocked(now time.Time) {
	for k, exp := range v.spent {
		if now.Unix() > exp {
			delete(v.spent, k)
		}
	}
	v.swept = now
}

// Refund forgets a token that Check spent on a create that then failed
// for another reason (the machine was full, say), so it may be used again.
func (v *Verifier) Refund(c *Claims) {
	if c == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.spent, c.spent)
}
