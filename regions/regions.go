// Package regions holds the fixed region table and the room-code format:
// a 35-bit number written as six base58 digits, whose top five bits name
// the home region when the code was made in a region of the table.
package regions

import (
	"crypto/rand"
	"encoding/binary"
	"io"
)

// Table is the region table. Index = position: never reorder, append only,
// at most 32 entries (5 bits).
var Table = [...]string{
	"ams", "arn", "bom", "cdg", "dfw", "ewr", "fra", "gru", "iad",
	"jnb", "lax", "lhr", "nrt", "ord", "sin", "sjc", "syd", "yyz",
}

// Alphabet is the base58 alphabet of room codes.
const Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

const (
	// CodeLen is the length of every room code.
	CodeLen = 6
	// MaxCode is the largest code value (35 bits).
	MaxCode   = 1<<35 - 1
	regionBit = 30
)

// digit maps a byte to its base58 value, or -1.
var digit = func() (d [256]int8) {
	for i := range d {
		d[i] = -1
	}
	for i := 0; i < len(Alphabet); i++ {
		d[Alphabet[i]] = int8(i)
	}
	return d
}()

// Index returns the position of region in Table.
func Index(region string) (int, bool) {
	for i, r := range Table {
		if r == region {
			return i, true
		}
	}
	return 0, false
}

// Known reports whether region is in the table.
func Known(region string) bool {
	_, ok := Index(region)
	return ok
}

// Encode writes v (at most MaxCode) as six base58 digits, most significant
// first, zero-padded with '1'.
func Encode(v uint64) string {
	var b [CodeLen]byte
	for i := CodeLen - 1; i >= 0; i-- {
		b[i] = Alphabet[v%58]
		v /= 58
	}
	return string(b[:])
}

// Decode parses a six-digit code. It fails on a wrong length, a byte outside
// the alphabet, or a value above MaxCode.
func Decode(code string) (uint64, bool) {
	if len(code) != CodeLen {
		return 0, false
	}
	var v uint64
	for i := 0; i < CodeLen; i++ {
		d := digit[code[i]]
		if d < 0 {
			return 0, false
		}
		v = v*58 + uint64(d)
	}
	if v > MaxCode {
		return 0, false
	}
	return v, true
}

// HomeOf returns the home region encoded in a candidate code, or false if
// the code is invalid or its top five bits do not index the table.
func HomeOf(code string) (string, bool) {
	v, ok := Decode(code)
	if !ok {
		return "", false
	}
	i := int(v >> regionBit)
	if i >= len(Table) {
		return "", false
	}
	return Table[i], true
}

// Pack builds a code value from a region index and 30 low bits.
func Pack(regionIndex int, low uint32) uint64 {
	return uint64(regionIndex)<<regionBit | uint64(low&(1<<regionBit-1))
}

// Generator makes new codes for one region from a random source.
type Generator struct {
	region int // index into Table, or -1 for fully random codes
	rand   io.Reader
}

// NewGenerator returns a generator for region. A region outside the table
// gives fully random 35-bit codes. A nil source means crypto/rand.
func NewGenerator(region string, src io.Reader) *Generator {
	if src == nil {
		src = rand.Reader
	}
	i, ok := Index(region)
	if !ok {
		i = -1
	}
	return &Generator{region: i, rand: src}
}

// Next returns a fresh code.
func (g *Generator) Next() (string, error) {
	var b [8]byte
	if _, err := io.ReadFull(g.rand, b[:]); err != nil {
		return "", err
	}
	r := binary.BigEndian.Uint64(b[:])
	if g.region < 0 {
		return Encode(r & MaxCode), nil
	}
	return Encode(Pack(g.region, uint32(r))), nil
}
