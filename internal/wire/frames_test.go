package wire

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

// Every frame the server builds, byte for byte as the relay we replace
// sends it (field order included).
func TestFrames(t *testing.T) {
	t.Parallel()
	yes := true
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"created", CreatedFrame("ABC123", "m1", "fra", 0, ""),
			`{"type":"created","room":"ABC123","instance":"m1","region":"fra","index":0}`},
		{"created, url", CreatedFrame("ABC123", "", "", 0, "https://x.example/ABC123"),
			`{"type":"created","room":"ABC123","instance":"","region":"","index":0,"url":"https://x.example/ABC123"}`},
		{"joined", JoinedFrame("ABC123", 2, []int{0, 1}, ""), `{"type":"joined","room":"ABC123","index":2,"peers":[0,1]}`},
		{"joined alone, url", JoinedFrame("ABC123", 0, nil, "https://x"),
			`{"type":"joined","room":"ABC123","index":0,"peers":[],"url":"https://x"}`},
		{"peer joined", PeerFrame(PeerJoined, 3), `{"type":"peer_joined","index":3}`},
		{"peer left", PeerFrame(PeerLeft, 3), `{"type":"peer_left","index":3}`},
		{"message", MessageFrame(1, []byte(`{"a":1}`)), `{"type":"message","from":1,"data":{"a":1}}`},
		{"message from the backend, no data", MessageFrame(-1, nil), `{"type":"message","from":-1}`},
		{"state", StateFrame([]byte(`[1]`)), `{"type":"state","data":[1]}`},
		{"state's data", StateData(StateFrame([]byte(`{"r":"}"}`))), `{"r":"}"}`},
		{"pong", PongFrame(), `{"type":"pong"}`},
		{"error", ErrorFrame(errTestPlaceholder.With(`{"x"}`)), `{"type":"error","message":"Test placeholder: {\"x\"}"}`},
		{"numbered", WithSeq([]byte(`{"type":"peer_left","index":1}`), 7), `{"type":"peer_left","index":1,"seq":7}`},
		{"joined, recovering", WithRecovery(JoinedFrame("A", 1, nil, ""), 9, &yes),
			`{"type":"joined","room":"A","index":1,"peers":[],"seq":9,"recovered":true}`},
		{"created, recovery on", WithRecovery(CreatedFrame("A", "", "", 0, ""), 0, nil),
			`{"type":"created","room":"A","instance":"","region":"","index":0,"seq":0}`},
	}
	for _, tt := range tests {
		if string(tt.got) != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, tt.got, tt.want)
		}
	}
}
