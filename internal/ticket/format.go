// Package ticket is a room's sealed ticket (docs/protocol.md "Crash-proof rooms"):
// what a room needs to exist again, encrypted and authenticated with a key
// derived from the app's shared secret for tickets alone, and handed to
// its members so that they can rebuild it after the machine that held it
// is gone. This file is the plaintext's binary format; seal.go the AEAD.
//
// The plaintext, version 1, is a sequence of fields, each bounded:
//
//	byte     format version (1)
//	string   code, origin, url, holder (uvarint length, bytes)
//	8 bytes  maxClients (IEEE 754, big-endian)
//	8 bytes  epoch, 8 bytes from-epoch (0: made here, not restored)
//	uvarint  version, issued-at (unix ms), next index
//	uvarint  slot count, then per slot: index (uvarint, ascending, below
//	         next), flags (bit 0: vacant), key (16 bytes)
//	byte     digest present (0 or 1), then 16 bytes when present
//
// Nothing may follow. Parse refuses anything else, and its work is bounded
// by the input's length, itself bounded (MaxPlainBytes).
package ticket

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"time"
	"unicode/utf8"
)

// FormatVersion is the first byte of every plaintext.
const FormatVersion = 1

// KeyBytes is what a ticket keeps of a clientId: the first 16 bytes of its
// SHA-256. Enough to tell apart the slots of one room, and never readable
// by a member: the ticket is encrypted.
const KeyBytes = 16

// Bounds of the fields.
const (
	maxCodeBytes   = 64
	maxOriginBytes = 300  // server.MaxOriginBytes
	maxURLBytes    = 2048 // a resolved url template (rooms.MaxURLBytes)
	maxHolderBytes = 64
	// MaxSlots bounds a ticket's slots; the size bound (MaxBytes) comes
	// first in practice.
	MaxSlots = 4096
)

// Key is what a ticket keeps of a clientId.
type Key [KeyBytes]byte

// KeyOf is the ticket's key for clientID.
func KeyOf(clientID string) Key {
	sum := sha256.Sum256([]byte(clientID))
	return Key(sum[:KeyBytes])
}

// Digest is a state's digest: the first 16 bytes of the SHA-256 of its
// compact JSON.
type Digest [16]byte

// DigestOf is state's digest.
func DigestOf(state []byte) Digest {
	sum := sha256.Sum256(state)
	return Digest(sum[:16])
}

// Slot is one remembered slot of the room.
type Slot struct {
	Index  uint64
	Vacant bool
	Key    Key
}

// Plain is a ticket's plaintext.
type Plain struct {
	Code, Origin, URL string
	Holder            string // the machine that issued it
	MaxClients        float64
	Epoch             uint64 // the room's, random, new on every restore
	FromEpoch         uint64 // the epoch it was restored from; 0 when made here
	Version           uint64 // grows with every change and every issue
	IssuedAt          int64  // unix ms
	Next              uint64 // the next index the room hands out
	Slots             []Slot
	HasDigest         bool
	Digest            Digest // the retained state's, when HasDigest
}

// Issued is when p was issued.
func (p *Plain) Issued() time.Time { return time.UnixMilli(p.IssuedAt) }

// ErrFormat refuses a plaintext this package could not have written.
var ErrFormat = errors.New("ticket: malformed plaintext")

// Marshal encodes p. Its fields must be within the bounds Parse checks
// (the room's own are).
func (p *Plain) Marshal() []byte {
	b := make([]byte, 0, 64+len(p.Code)+len(p.Origin)+len(p.URL)+len(p.Holder)+len(p.Slots)*(KeyBytes+4))
	b = append(b, FormatVersion)
	for _, s := range []string{p.Code, p.Origin, p.URL, p.Holder} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(p.MaxClients))
	b = binary.BigEndian.AppendUint64(b, p.Epoch)
	b = binary.BigEndian.AppendUint64(b, p.FromEpoch)
	b = binary.AppendUvarint(b, p.Version)
	b = binary.AppendUvarint(b, uint64(p.IssuedAt))
	b = binary.AppendUvarint(b, p.Next)
	b = binary.AppendUvarint(b, uint64(len(p.Slots)))
	for _, s := range p.Slots {
		b = binary.AppendUvarint(b, s.Index)
		var flags byte
		if s.Vacant {
			flags = 1
		}
		b = append(b, flags)
		b = append(b, s.Key[:]...)
	}
	if !p.HasDigest {
		return append(b, 0)
	}
	b = append(b, 1)
	return append(b, p.Digest[:]...)
}

// reader reads fields off a plaintext; the first error sticks.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) take(n uint64) []byte {
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) str(limit uint64) string {
	n := r.uvarint()
	if n > limit {
		r.bad = true
		return ""
	}
	s := r.take(n)
	if !utf8.Valid(s) {
		r.bad = true
	}
	return string(s)
}

func (r *reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// Parse decodes a plaintext Marshal wrote, checking every bound: lengths,
// slot count, indices ascending and below next, flags, no trailing bytes.
func Parse(b []byte) (*Plain, error) {
	if len(b) == 0 || b[0] != FormatVersion || len(b) > MaxPlainBytes {
		return nil, ErrFormat
	}
	r := &reader{b: b[1:]}
	p := &Plain{Code: r.str(maxCodeBytes), Origin: r.str(maxOriginBytes), URL: r.str(maxURLBytes),
		Holder: r.str(maxHolderBytes)}
	p.MaxClients = math.Float64frombits(r.u64())
	p.Epoch, p.FromEpoch = r.u64(), r.u64()
	p.Version = r.uvarint()
	p.IssuedAt = int64(r.uvarint())
	p.Next = r.uvarint()
	if n := r.uvarint(); !r.bad && n <= MaxSlots && n <= uint64(len(r.b))/(KeyBytes+2) {
		p.Slots = make([]Slot, 0, n)
		for i := uint64(0); i < n && !r.bad; i++ {
			p.Slots = append(p.Slots, r.slot(p))
		}
	} else {
		r.bad = true
	}
	switch d := r.take(1); {
	case d == nil:
	case d[0] == 1:
		p.HasDigest = true
		copy(p.Digest[:], r.take(16))
	case d[0] != 0:
		r.bad = true
	}
	if r.bad || len(r.b) != 0 || !p.valid() {
		return nil, ErrFormat
	}
	return p, nil
}

func (r *reader) slot(p *Plain) Slot {
	s := Slot{Index: r.uvarint()}
	flags := r.take(1)
	key := r.take(KeyBytes)
	if r.bad || flags[0] > 1 || s.Index >= p.Next || (len(p.Slots) > 0 && s.Index <= p.Slots[len(p.Slots)-1].Index) {
		r.bad = true
		return s
	}
	s.Vacant = flags[0] == 1
	copy(s.Key[:], key)
	return s
}

// valid checks what the fields mean together.
func (p *Plain) valid() bool {
	return p.Code != "" && p.MaxClients >= 1 && !math.IsInf(p.MaxClients, 0) && p.IssuedAt >= 0 &&
		p.Epoch != 0 && p.Next <= math.MaxInt32
}
