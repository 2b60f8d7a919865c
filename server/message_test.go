package server

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestDecodeMessage(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		typ   string
		err   error
		data  string // raw data, "-" for absent
		check func(message) bool
	}{
		{name: "create", in: `{"type":"create","clientId":"a","maxClients":4}`, typ: "create", data: "-"},
		{name: "spaces", in: " \n{ \"type\" : \"send\" , \"data\" : { \"a\" : [1, 2] } }\t", typ: "send", data: `{ "a" : [1, 2] }`},
		{name: "data null", in: `{"type":"send","data":null}`, typ: "send", data: "null"},
		{name: "data string with braces", in: `{"data":"}{\"","type":"send"}`, typ: "send", data: `"}{\""`},
		{name: "nested", in: `{"type":"send","data":{"type":"create","x":[{"y":"]"}]}}`, typ: "send", data: `{"type":"create","x":[{"y":"]"}]}`},
		{name: "last duplicate wins", in: `{"type":"join","type":"send"}`, typ: "send", data: "-"},
		{name: "escaped key", in: `{"typ\u0065":"send"}`, typ: "send", data: "-"},
		{name: "escaped type value", in: `{"type":"s\u0065nd"}`, typ: "send", data: "-"},
		{name: "case sensitive keys", in: `{"Type":"send"}`, err: errUnknownType},
		{name: "not json", in: `{type:create}`, err: errInvalidJSON},
		{name: "truncated", in: `{"type":"create"`, err: errInvalidJSON},
		{name: "empty", in: ``, err: errInvalidJSON},
		{name: "two values", in: `{}{}`, err: errInvalidJSON},
		{name: "array", in: `[{"type":"create"}]`, err: errUnknownType},
		{name: "string", in: `"create"`, err: errUnknownType},
		{name: "null", in: `null`, err: errUnknownType},
		{name: "missing type", in: `{"clientId":"a"}`, err: errUnknownType},
		{name: "type number", in: `{"type":1}`, err: errUnknownType},
		{name: "type null", in: `{"type":null}`, err: errUnknownType},
		{name: "to kept raw", in: `{"type":"send","to":1.0}`, typ: "send", data: "-", check: func(m message) bool { return string(m.To) == "1.0" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := decodeMessage([]byte(tt.in))
			if err != tt.err {
				t.Fatalf("decodeMessage(%s) error = %v, want %v", tt.in, err, tt.err)
			}
			if err != nil {
				return
			}
			data := "-"
			if m.Data != nil {
				data = string(m.Data)
			}
			if m.Type != tt.typ || data != tt.data {
				t.Errorf("decodeMessage(%s) = type %q data %s, want %q %s", tt.in, m.Type, data, tt.typ, tt.data)
			}
			if tt.check != nil && !tt.check(m) {
				t.Errorf("decodeMessage(%s) = %+v fails check", tt.in, m)
			}
		})
	}
}

func TestSlotIndex(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true}, {"1", 1, true}, {"1.0", 1, true}, {"1e0", 1, true}, {"-0", 0, true},
		{"9007199254740991", 1<<53 - 1, true}, {"9007199254740992", 0, false},
		{"-1", 0, false}, {"1.5", 0, false}, {"null", 0, false}, {`"1"`, 0, false},
		{"true", 0, false}, {"[1]", 0, false}, {"1e400", 0, false},
	}
	for _, tt := range tests {
		got, ok := slotIndex([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("slotIndex(%s) = %d, %v, want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCompactData(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a":1}`, `{"a":1}`},
		{"{ \"a\" : [ 1 , 2 ] }", `{"a":[1,2]}`},
		{`" keep  spaces "`, `" keep  spaces "`},
	}
	for _, tt := range tests {
		if got := string(compactData([]byte(tt.in))); got != tt.want {
			t.Errorf("compactData(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
	if compactData(nil) != nil {
		t.Error("compactData(nil) != nil")
	}
}

// FuzzDecodeMessage checks the hand scanner against encoding/json: whatever
// it accepts is an object, and the fields it extracts are the values
// encoding/json sees under the same exact keys.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"create","clientId":"a","maxClients":4,"url":"https://x/{room}"}`,
		`{"type":"send","data":{"a":[1,"}"]},"to":1}`,
		`{"typ\u0065":"join","room":"abc"}`, `[]`, `{`, `"x"`, ` {"data" : null } `,
		"{\"\":\"\xff\",\"to\":0}", // invalid UTF-8 is refused before any key is read
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		var obj map[string]json.RawMessage
		jerr := json.Unmarshal(b, &obj)
		if err == errInvalidJSON {
			if json.Valid(b) {
				t.Fatalf("valid JSON %q rejected as invalid", b)
			}
			return
		}
		switch err {
		case errInvalidUTF8:
			if utf8.Valid(b) {
				t.Fatalf("valid UTF-8 %q refused as invalid", b)
			}
			return
		case errTooComplex:
			return // over MaxKeys or MaxDepth: refused before every key is read
		}
		if jerr != nil || obj == nil {
			if err == nil {
				t.Fatalf("non-object %q accepted", b)
			}
			return
		}
		for key, got := range map[string][]byte{"clientId": m.ClientID, "data": m.Data, "to": m.To, "room": m.Room} {
			want, ok := obj[key]
			if ok != (got != nil) {
				t.Fatalf("%q: key %s present=%v, scanner found %q", b, key, ok, got)
			}
			if ok && !jsonEqual(want, got) {
				t.Fatalf("%q: key %s = %s, want %s", b, key, got, want)
			}
		}
	})
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
