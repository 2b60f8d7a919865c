package rooms

import (
	"encoding/json"
	"testing"
)

// FuzzAppendString holds the hand-written string escaper to encoding/json:
// what it writes is valid JSON, and decodes to the same string as
// json.Marshal's encoding of the input (invalid UTF-8 becomes U+FFFD in
// both).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "\x00\x1f\x7f", "ü€𝄞", "\xff\xfe", "a\u2028b", "<&>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ours := AppendString(nil, s)
		if !json.Valid(ours) {
			t.Fatalf("AppendString(%q) = %s: not valid JSON", s, ours)
		}
		theirs, _ := json.Marshal(s)
		var a, b string
		if err := json.Unmarshal(ours, &a); err != nil {
			t.Fatalf("AppendString(%q) = %s: %v", s, ours, err)
		}
		json.Unmarshal(theirs, &b)
		if a != b {
			t.Fatalf("AppendString(%q) decodes to %q, encoding/json's to %q", s, a, b)
		}
	})
}
