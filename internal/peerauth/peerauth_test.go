package peerauth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	key := DeriveKey([]byte(strings.Repeat("s", 32)), LabelInternal)
	other := DeriveKey([]byte(strings.Repeat("s", 32)), LabelDebug)
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	body := []byte(`{"code":"abc"}`)
	good := Sign(key, "148e21ea7e1189", "m2", "POST", "/.internal/relay", body, now)
	tests := []struct {
		name                string
		header, method, uri string
		body                []byte
		key                 []byte
		want                error
	}{
		{"good", good, "POST", "/.internal/relay", body, key, nil},
		{"missing", "", "POST", "/.internal/relay", body, key, ErrMissing},
		{"other body", good, "POST", "/.internal/relay", []byte(`{}`), key, ErrBadMAC},
		{"other path", good, "POST", "/.internal/handoff", body, key, ErrBadMAC},
		{"other method", good, "GET", "/.internal/relay", body, key, ErrBadMAC},
		{"other label's key", good, "POST", "/.internal/relay", body, other, ErrBadMAC},
		{
			"for another machine",
			Sign(key, "148e21ea7e1189", "m3", "POST", "/.internal/relay", body, now),
			"POST",
			"/.internal/relay",
			body,
			key,
			ErrNotForMe,
		},
		{
			"for any machine",
			Sign(key, "148e21ea7e1189", AnyTarget, "POST", "/.internal/relay", body, now),
			"POST",
			"/.internal/relay",
			body,
			key,
			ErrNotForMe,
		},
		{"no target", strings.Replace(good, ";to=m2", "", 1), "POST", "/.internal/relay", body, key, ErrMalformed},
		{"old", Sign(key, "a1", "m2", "POST", "/x", nil, now.Add(-31*time.Second)), "POST", "/x", nil, key, ErrStale},
		{"future", Sign(key, "a1", "m2", "POST", "/x", nil, now.Add(31*time.Second)), "POST", "/x", nil, key, ErrStale},
		{"no version", strings.TrimPrefix(good, "v1;"), "POST", "/.internal/relay", body, key, ErrMalformed},
		{"extra field", good + ";x=1", "POST", "/.internal/relay", body, key, ErrMalformed},
		{"too long", good + strings.Repeat("a", MaxHeaderBytes), "POST", "/.internal/relay", body, key, ErrMalformed},
		{
			"id with a separator",
			strings.Replace(good, "id=148e21ea7e1189", "id=a b", 1),
			"POST",
			"/.internal/relay",
			body,
			key,
			ErrMalformed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := NewVerifier(tt.key, "m2", 0, 0, clock)
			id, err := v.Verify(tt.header, tt.method, tt.uri, tt.body)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %q, %v; want %v", id, err, tt.want)
			}
			if err == nil && id != "148e21ea7e1189" {
				t.Fatalf("Verify sender = %q", id)
			}
		})
	}
}

// A receiver can check a call before reading its body, by the hash the
// sender claims for it; a claimed hash of another body, or one that is not
// a hash, is refused.
func TestVerifyHash(t *testing.T) {
	t.Parallel()
	key := DeriveKey([]byte(strings.Repeat("s", 32)), LabelInternal)
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"v":1}`)
	for _, tt := range []struct {
		name, hash string
		want       error
	}{
		{"the body's hash", BodyHash(body), nil},
		{"another body's", BodyHash([]byte(`{}`)), ErrBadMAC},
		{"upper case", strings.ToUpper(BodyHash(body)), ErrMalformed},
		{"short", BodyHash(body)[:63], ErrMalformed},
		{"none", "", ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := NewVerifier(key, "m2", 0, 0, func() time.Time { return now })
			h := Sign(key, "a1", "m2", "POST", "/.internal/handoff", body, now)
			if _, err := v.VerifyHash(h, "POST", "/.internal/handoff", tt.hash); !errors.Is(err, tt.want) {
				t.Fatalf("VerifyHash(%q) = %v, want %v", tt.hash, err, tt.want)
			}
		})
	}
}

// A captured call is refused the second time, for as long as its time
// could pass the age check; the nonce is then forgotten.
func TestReplayRefused(t *testing.T) {
	t.Parallel()
	key := DeriveKey([]byte("secret"), LabelInternal)
	now := time.Unix(1_800_000_000, 0)
	v := NewVerifier(key, "m2", 0, 0, func() time.Time { return now })
	h := Sign(key, "a1", "m2", "GET", "/.internal/load", nil, now)
	if _, err := v.Verify(h, "GET", "/.internal/load", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(h, "GET", "/.internal/load", nil); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay: %v, want ErrReplayed", err)
	}
	now = now.Add(DefaultMaxAge + time.Second)
	if _, err := v.Verify(h, "GET", "/.internal/load", nil); !errors.Is(err, ErrStale) {
		t.Fatalf("replay after the window: %v, want ErrStale", err)
	}
	now = now.Add(2 * DefaultMaxAge)
	v.Verify(Sign(key, "a1", "m2", "GET", "/x", nil, now), "GET", "/x", nil)
	if len(v.seen) != 1 {
		t.Fatalf("%d nonces remembered, want only the last", len(v.seen))
	}
}

// Past its bound the verifier refuses calls rather than forget a nonce
// that could still be replayed.
func TestNonceBound(t *testing.T) {
	t.Parallel()
	key := DeriveKey([]byte("secret"), LabelInternal)
	now := time.Unix(1_800_000_000, 0)
	v := NewVerifier(key, "m2", 0, 3, func() time.Time { return now })
	for i := range 4 {
		_, err := v.Verify(Sign(key, "a1", "m2", "GET", "/x", nil, now), "GET", "/x", nil)
		if want := i == 3; want != errors.Is(err, ErrBusy) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

func TestBearer(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("k", 32)
	for _, tt := range []struct {
		h, secret string
		want      bool
	}{
		{"Bearer " + secret, secret, true},
		{"Bearer " + secret + "x", secret, false},
		{"bearer " + secret, secret, false},
		{"Bearer ", "", false},
		{"", "", false},
	} {
		if got := Bearer(tt.h, tt.secret); got != tt.want {
			t.Errorf("Bearer(%q, %q) = %v, want %v", tt.h, tt.secret, got, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	key := DeriveKey([]byte("secret"), LabelInternal)
	f.Add(Sign(key, "148e21ea7e1189", "m2", "GET", "/", nil, time.Unix(1_800_000_000, 0)))
	f.Add("v1;id=;t=;n=;s=")
	f.Add("v1;t=-1")
	f.Fuzz(func(t *testing.T, h string) {
		sig, err := Parse(h)
		if err != nil {
			return
		}
		if len(h) > MaxHeaderBytes || sig.ID == "" || len(sig.N) != 32 {
			t.Fatalf("Parse(%q) accepted %+v", h, sig)
		}
	})
}
