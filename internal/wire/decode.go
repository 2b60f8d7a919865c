package wire

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// Bounds on the shape of a client message. Ours have five top-level keys;
// game data nests a few levels.
const (
	MaxKeys  = 32
	MaxDepth = 64
)

// Message is a client message with its fields kept as raw JSON values
// (nil when absent). Only the top level is looked at: data is never
// decoded, its bytes pass through.
type Message struct {
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
	Tickets    []byte // create, join, restore: opt in to tickets
	Ticket     []byte // restore
	State      []byte // restore: the state the client last saw
	rawType    []byte
}

// Decode parses one client frame. Keys are matched exactly (JSON is case
// sensitive, unlike encoding/json's struct decoding) and, as in
// JavaScript, the last of duplicate keys wins. JSON that is not an object,
// and an object without a string type, are ErrUnknownType.
func Decode(frame []byte) (Message, error) {
	m, err := DecodeObject(frame)
	if err == ErrNotObject {
		return m, ErrUnknownType
	}
	if err != nil {
		return m, err
	}
	t, ok := String(m.rawType)
	if !ok {
		return m, ErrUnknownType
	}
	m.Type = t
	return m, nil
}

// DecodeObject scans the top-level fields of a JSON object (a server API
// or internal call's body) within the bounds of a client message.
func DecodeObject(frame []byte) (Message, error) {
	var m Message
	p, err := CheckObject(frame)
	if err != nil {
		return m, err
	}
	keys := 0
	err = eachMember(frame, p, func(key, val []byte, depth int) error {
		if keys++; keys > MaxKeys || depth > MaxDepth {
			return ErrTooComplex
		}
		m.set(key, val)
		return nil
	})
	return m, err
}

// CheckObject checks that b is valid JSON of valid UTF-8 whose value is an
// object, and returns where the object starts. Only then may b be scanned
// (EachMember, EachElement), which trusts it.
func CheckObject(b []byte) (int, error) {
	if !json.Valid(b) {
		return 0, ErrInvalidJSON
	}
	// encoding/json accepts invalid UTF-8 inside strings; browsers do not.
	if !utf8.Valid(b) {
		return 0, ErrInvalidUTF8
	}
	p := skipSpace(b, 0)
	if b[p] != '{' {
		return 0, ErrNotObject
	}
	return p, nil
}

func (m *Message) set(key, val []byte) {
	if bytes.IndexByte(key, '\\') >= 0 {
		s, _ := String(key)
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
	case `"tickets"`:
		m.Tickets = val
	case `"ticket"`:
		m.Ticket = val
	case `"state"`:
		m.State = val
	}
}

// EachMember calls f with the raw key and value of every member of the
// object at b[p], until f returns an error. b must be a body that passed
// CheckObject, or a value found in one.
func EachMember(b []byte, p int, f func(key, val []byte) error) error {
	return eachMember(b, p, func(key, val []byte, _ int) error { return f(key, val) })
}

// eachMember is EachMember that also says how deeply each value nests.
func eachMember(b []byte, p int, f func(key, val []byte, depth int) error) error {
	p = skipSpace(b, p+1)
	for b[p] != '}' {
		kEnd := stringEnd(b, p)
		key := b[p:kEnd]
		p = skipSpace(b, skipSpace(b, kEnd)+1) // past ':'
		vEnd, depth := valueEnd(b, p)
		if err := f(key, b[p:vEnd], depth); err != nil {
			return err
		}
		if p = skipSpace(b, vEnd); b[p] == ',' {
			p = skipSpace(b, p+1)
		}
	}
	return nil
}

// EachElement calls f with every element of the array arr, a value found
// by EachMember, until f returns an error.
func EachElement(arr []byte, f func(el []byte) error) error {
	p := skipSpace(arr, 1)
	for arr[p] != ']' {
		end, _ := valueEnd(arr, p)
		if err := f(arr[p:end]); err != nil {
			return err
		}
		if p = skipSpace(arr, end); arr[p] == ',' {
			p = skipSpace(arr, p+1)
		}
	}
	return nil
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

// String unquotes a raw JSON string value; false if raw is not a string.
func String(raw []byte) (string, bool) {
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

// Number parses a raw JSON number; false if raw is not a number.
func Number(raw []byte) (float64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	return f, err == nil
}

// Index parses a slot index ("to", "since"): a JSON number with a
// non-negative integral value no larger than 2^53-1.
func Index(raw []byte) (uint64, bool) {
	f, ok := Number(raw)
	if !ok || f < 0 || f > 1<<53-1 || f != math.Trunc(f) {
		return 0, false
	}
	return uint64(f), true
}

// Compact returns data without insignificant whitespace, or nil when
// absent. It copies only when there is whitespace to remove.
func Compact(data []byte) []byte {
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
