package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"unicode/utf8"
)

// Errors of the envelope, exactly as the wire contract spells them.
var (
	errInvalidJSON = errors.New("Invalid JSON")
	errUnknownType = errors.New("Unknown message type")
	// errInvalidUTF8 refuses a frame that a browser would fail the whole
	// connection on if we relayed it (our own limit, the contract's shape).
	errInvalidUTF8 = errors.New("Invalid UTF-8")
	// errTooComplex bounds decode work: at most MaxKeys top-level keys,
	// values nested at most MaxDepth deep.
	errTooComplex = errors.New("Message too complex")
)

// Bounds on the shape of a client message. Ours have five top-level keys;
// game data nests a few levels.
const (
	MaxKeys  = 32
	MaxDepth = 64
)

// message is a client message with its fields kept as raw JSON values
// (nil when absent). Only the top level is looked at: data is never decoded,
// its bytes pass through.
type message struct {
	Type       string
	ClientID   []byte
	MaxClients []byte
	URL        []byte
	Room       []byte
	Data       []byte
	To         []byte
	Recover    []byte
	Since      []byte
	Token      []byte
	rawType    []byte
}

// decodeMessage parses one frame. Keys are matched exactly (JSON is case
// sensitive, unlike encoding/json's struct decoding) and, as in JavaScript,
// the last of duplicate keys wins.
func decodeMessage(frame []byte) (message, error) {
	m, err := decodeObject(frame)
	if err == errNotObject {
		return m, errUnknownType
	}
	if err != nil {
		return m, err
	}
	t, ok := jsonString(m.rawType)
	if !ok {
		return m, errUnknownType
	}
	m.Type = t
	return m, nil
}

// errNotObject is decodeObject's answer for JSON that is not an object.
var errNotObject = errors.New("Body must be a JSON object")

// decodeObject scans a JSON object's top-level fields.
func decodeObject(frame []byte) (message, error) {
	var m message
	if !json.Valid(frame) {
		return m, errInvalidJSON
	}
	// encoding/json accepts invalid UTF-8 inside strings; browsers do not.
	if !utf8.Valid(frame) {
		return m, errInvalidUTF8
	}
	p := skipSpace(frame, 0)
	if frame[p] != '{' {
		return m, errNotObject
	}
	p = skipSpace(frame, p+1)
	for keys := 0; frame[p] != '}'; keys++ {
		if keys == MaxKeys {
			return m, errTooComplex
		}
		kEnd := stringEnd(frame, p)
		key := frame[p:kEnd]
		p = skipSpace(frame, kEnd)
		p = skipSpace(frame, p+1) // ':'
		vEnd, depth := valueEnd(frame, p)
		if depth > MaxDepth {
			return m, errTooComplex
		}
		m.set(key, frame[p:vEnd])
		p = skipSpace(frame, vEnd)
		if frame[p] == ',' {
			p = skipSpace(frame, p+1)
		}
	}
	return m, nil
}

func (m *message) set(key, val []byte) {
	if bytes.IndexByte(key, '\\') >= 0 {
		s, _ := jsonString(key)
		key = []byte(strconv.Quote(s))
	}
	switch string(key) {
	case `"type"`:
		m.rawType = val
	case `"clientId"`:
		m.ClientID = val
	case `"maxClients"`:
		m.MaxClients = val
	case `"url"`:
		m.URL = val
	case `"room"`:
		m.Room = val
	case `"data"`:
		m.Data = val
	case `"to"`:
		m.To = val
	case `"recover"`:
		m.Recover = val
	case `"since"`:
		m.Since = val
	case `"token"`:
		m.Token = val
	}
}

func skipSpace(b []byte, p int) int {
	for p < len(b) && (b[p] == ' ' || b[p] == '\t' || b[p] == '\n' || b[p] == '\r') {
		p++
	}
	return p
}

// stringEnd returns the index after the string starting at b[p] == '"'.
// b is known to be valid JSON.
func stringEnd(b []byte, p int) int {
	for p++; ; p++ {
		switch b[p] {
		case '\\':
			p++
		case '"':
			return p + 1
		}
	}
}

// valueEnd returns the index after the JSON value starting at b[p], and
// how deeply it nests (0 for a scalar).
func valueEnd(b []byte, p int) (end, maxDepth int) {
	switch b[p] {
	case '"':
		return stringEnd(b, p), 0
	case '{', '[':
		depth := 0
		for {
			switch b[p] {
			case '"':
				p = stringEnd(b, p)
				continue
			case '{', '[':
				depth++
				maxDepth = max(maxDepth, depth)
			case '}', ']':
				depth--
				if depth == 0 {
					return p + 1, maxDepth
				}
			}
			p++
		}
	default:
		for p < len(b) {
			switch b[p] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return p, 0
			}
			p++
		}
		return p, 0
	}
}

// jsonString unquotes a raw JSON string value; false if raw is not a string.
func jsonString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// jsonNumber parses a raw JSON number; false if raw is not a number.
func jsonNumber(raw []byte) (float64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	return f, err == nil
}

// slotIndex parses a "to" value: a JSON number with a non-negative integral
// value no larger than 2^53-1.
func slotIndex(raw []byte) (uint64, bool) {
	f, ok := jsonNumber(raw)
	if !ok || f < 0 || f > 1<<53-1 || f != math.Trunc(f) {
		return 0, false
	}
	return uint64(f), true
}

// compactData returns data without insignificant whitespace, or nil when
// absent. It copies only when there is whitespace to remove.
func compactData(data []byte) []byte {
	if data == nil || bytes.IndexAny(data, " \t\r\n") < 0 {
		return data
	}
	var buf bytes.Buffer
	buf.Grow(len(data))
	if json.Compact(&buf, data) != nil {
		return data
	}
	return buf.Bytes()
}
