package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    string
		typ   string
		err   error
		data  string // raw data, "-" for absent
		check func(Message) bool
	}{
		{name: "create", in: `{"type":"create","clientId":"a","maxClients":4}`, typ: "create", data: "-"},
		{name: "spaces", in: " \n{ \"type\" : \"send\" , \"data\" : { \"a\" : [1, 2] } }\t", typ: "send", data: `{ "a" : [1, 2] }`},
		{name: "data null", in: `{"type":"send","data":null}`, typ: "send", data: "null"},
		{name: "data string with braces", in: `{"data":"}{\"","type":"send"}`, typ: "send", data: `"}{\""`},
		{name: "nested", in: `{"type":"send","data":{"type":"create","x":[{"y":"]"}]}}`, typ: "send",
			data: `{"type":"create","x":[{"y":"]"}]}`},
		{name: "last duplicate wins", in: `{"type":"join","type":"send"}`, typ: "send", data: "-"},
		{name: "escaped key", in: `{"typ\u0065":"send"}`, typ: "send", data: "-"},
		{name: "escaped type value", in: `{"type":"s\u0065nd"}`, typ: "send", data: "-"},
		{name: "case sensitive keys", in: `{"Type":"send"}`, err: ErrUnknownType},
		{name: "not json", in: `{type:create}`, err: ErrInvalidJSON},
		{name: "truncated", in: `{"type":"create"`, err: ErrInvalidJSON},
		{name: "empty", in: ``, err: ErrInvalidJSON},
		{name: "two values", in: `{}{}`, err: ErrInvalidJSON},
		{name: "array", in: `[{"type":"create"}]`, err: ErrUnknownType},
		{name: "string", in: `"create"`, err: ErrUnknownType},
		{name: "null", in: `null`, err: ErrUnknownType},
		{name: "missing type", in: `{"clientId":"a"}`, err: ErrUnknownType},
		{name: "type number", in: `{"type":1}`, err: ErrUnknownType},
		{name: "type null", in: `{"type":null}`, err: ErrUnknownType},
		{name: "to kept raw", in: `{"type":"send","to":1.0}`, typ: "send", data: "-",
			check: func(m Message) bool { return string(m.To) == "1.0" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.in))
			if err != tt.err {
				t.Fatalf("Decode(%s) error = %v, want %v", tt.in, err, tt.err)
			}
			if err != nil {
				return
			}
			data := "-"
			if m.Data != nil {
				data = string(m.Data)
			}
			if m.Type != tt.typ || data != tt.data {
				t.Errorf("Decode(%s) = type %q data %s, want %q %s", tt.in, m.Type, data, tt.typ, tt.data)
			}
			if tt.check != nil && !tt.check(m) {
				t.Errorf("Decode(%s) = %+v fails check", tt.in, m)
			}
		})
	}
}

func TestIndex(t *testing.T) {
	t.Parallel()
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
		got, ok := Index([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("Index(%s) = %d, %v, want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCompact(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`{"a":1}`, `{"a":1}`},
		{"{ \"a\" : [ 1 , 2 ] }", `{"a":[1,2]}`},
		{`" keep  spaces "`, `" keep  spaces "`},
	}
	for _, tt := range tests {
		if got := string(Compact([]byte(tt.in))); got != tt.want {
			t.Errorf("Compact(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
	if Compact(nil) != nil {
		t.Error("Compact(nil) != nil")
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
		m, err := Decode(b)
		var obj map[string]json.RawMessage
		jerr := json.Unmarshal(b, &obj)
		if err == ErrInvalidJSON {
			if json.Valid(b) {
				t.Fatalf("valid JSON %q rejected as invalid", b)
			}
			return
		}
		switch err {
		case ErrInvalidUTF8:
			if utf8.Valid(b) {
				t.Fatalf("valid UTF-8 %q refused as invalid", b)
			}
			return
		case ErrTooComplex:
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

// The bounds on decode work, at and one past each: MaxKeys top-level keys,
// values nested MaxDepth deep. A body that is JSON but no object is
// ErrNotObject to DecodeObject (the server API's answer) and
// ErrUnknownType to Decode (a client's).
func TestDecodeObjectBounds(t *testing.T) {
	t.Parallel()
	keys := func(n int) string {
		var b strings.Builder
		b.WriteString(`{`)
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"k%d":%d`, i, i)
		}
		return b.String() + `}`
	}
	nest := func(n int) string {
		return `{"data":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
	}
	tests := []struct {
		name, in string
		want     error
	}{
		{"MaxKeys keys", keys(MaxKeys), nil},
		{"one key more", keys(MaxKeys + 1), ErrTooComplex},
		{"MaxDepth deep", nest(MaxDepth), nil},
		{"one level more", nest(MaxDepth + 1), ErrTooComplex},
		{"array", `[]`, ErrNotObject},
		{"number", ` 7 `, ErrNotObject},
		{"invalid UTF-8", "{\"data\":\"\xff\"}", ErrInvalidUTF8},
		{"not JSON", `{"data":}`, ErrInvalidJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeObject([]byte(tt.in)); err != tt.want {
				t.Errorf("DecodeObject(%.40s...) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
	if _, err := Decode([]byte(`[]`)); err != ErrUnknownType {
		t.Errorf("Decode([]) = %v, want %v", err, ErrUnknownType)
	}
}

// EachMember and EachElement see every member and element, in order, and
// stop at f's first error.
func TestEachMemberAndElement(t *testing.T) {
	t.Parallel()
	body := []byte(` { "a" : [1, {"x":"]"}, [ ]] , "b\"":"s", "c":{} } `)
	p, err := CheckObject(body)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	EachMember(body, p, func(key, val []byte) error {
		got = append(got, string(key)+"="+string(val))
		if string(key) == `"a"` {
			EachElement(val, func(el []byte) error {
				got = append(got, "  "+string(el))
				return nil
			})
		}
		return nil
	})
	want := []string{`"a"=[1, {"x":"]"}, [ ]]`, `  1`, `  {"x":"]"}`, `  [ ]`, `"b\""="s"`, `"c"={}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("EachMember/EachElement saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	stop := errors.New("stop")
	n := 0
	if err := EachMember(body, p, func(_, _ []byte) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("EachMember with an error = %v after %d calls, want stop after 1", err, n)
	}
}
