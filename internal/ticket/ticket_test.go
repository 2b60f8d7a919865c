package ticket

import (
	"bytes"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func sample(slots int) *Plain {
	p := &Plain{Code: "ABC123", Origin: "https://game.example", URL: "https://game.example/c/ABC123",
		Holder: "e2865014a64e18", MaxClients: 8, Epoch: 0x1234567890abcdef, Version: 7, IssuedAt: 1_780_000_000_000,
		Next: uint64(slots) + 2, HasDigest: true, Digest: DigestOf([]byte(`{"round":3}`))}
	for i := range slots {
		p.Slots = append(
			p.Slots,
			Slot{Index: uint64(i), Vacant: i%2 == 1, Key: KeyOf("client-" + string(rune('a'+i%26)) + strings.Repeat("x", i))},
		)
	}
	return p
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	s := NewSealer("secret")
	for _, p := range []*Plain{sample(0), sample(1), sample(20), {Code: "x", MaxClients: 1.5, Epoch: 1}} {
		tk, err := s.Seal(p)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		got, err := s.Open(tk)
		if err != nil {
			t.Fatalf("Open(Seal(p)): %v", err)
		}
		if got.Slots == nil {
			got.Slots = p.Slots // an empty list decodes as empty, not nil
		}
		if len(p.Slots) == 0 {
			got.Slots, p.Slots = nil, nil
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("Open(Seal(p)) = %+v, want %+v", got, p)
		}
	}
}

func TestNoSecretNoSealer(t *testing.T) {
	t.Parallel()
	if NewSealer("") != nil {
		t.Fatal(`NewSealer("") is not nil: a missing secret must close the door`)
	}
}

func TestRefused(t *testing.T) {
	t.Parallel()
	s := NewSealer("secret")
	good, err := s.Seal(sample(5))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	other, _ := NewSealer("another app's secret").Seal(sample(5))
	tests := []struct {
		name, ticket string
	}{
		{"empty", ""},
		{"forged: random bytes", base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 200))},
		{"altered: nonce", flip(0)},
		{"altered: ciphertext", flip(nonceBytes + 3)},
		{"altered: tag", flip(len(raw) - 1)},
		{"another key", other},
		{"truncated", good[:len(good)-4]},
		{"truncated to the nonce", good[:16]},
		{"not base64url", strings.Replace(good, good[5:6], "+", 1)},
		{"padded", good + "=="},
		{"oversize", good + strings.Repeat("A", MaxBytes)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := s.Open(tt.ticket); !errors.Is(err, ErrInvalid) {
				t.Errorf("Open(%s) = %+v, %v, want ErrInvalid", tt.name, p, err)
			}
		})
	}
}

// TestSealedHidesKeys: no member can learn another's clientId hash (or
// the origin and url) from a ticket: neither appears in it, and two seals
// of the same room differ (a fresh nonce each).
func TestSealedHidesKeys(t *testing.T) {
	t.Parallel()
	s := NewSealer("secret")
	p := sample(4)
	a, _ := s.Seal(p)
	b, _ := s.Seal(p)
	if a == b {
		t.Fatal("two seals of one room are equal: the nonce is not fresh")
	}
	raw, _ := base64.RawURLEncoding.DecodeString(a)
	for _, sl := range p.Slots {
		if bytes.Contains(raw, sl.Key[:8]) {
			t.Errorf("the sealed ticket holds slot %d's key bytes", sl.Index)
		}
	}
	for _, text := range []string{p.Origin, p.URL, p.Code} {
		if bytes.Contains(raw, []byte(text)) {
			t.Errorf("the sealed ticket holds %q in the clear", text)
		}
	}
}

func TestSizeBound(t *testing.T) {
	t.Parallel()
	s := NewSealer("secret")
	n := 0
	for ; ; n++ {
		tk, err := s.Seal(sample(n))
		if errors.Is(err, ErrTooLarge) {
			break
		}
		if err != nil || len(tk) > MaxBytes {
			t.Fatalf("Seal(%d slots) = %d bytes, %v; want at most %d or ErrTooLarge", n, len(tk), err, MaxBytes)
		}
	}
	// About 150 slots with this url: the figure the README gives.
	if n < 140 || n > 170 {
		t.Errorf("%d slots fit a ticket, want about 150", n)
	}
	t.Logf("%d slots fit under %d bytes", n, MaxBytes)
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	good := sample(3).Marshal()
	bad := func(f func(p *Plain)) []byte {
		p := sample(3)
		f(p)
		return p.Marshal()
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"other version", append([]byte{2}, good[1:]...)},
		{"trailing byte", append(bytes.Clone(good), 0)},
		{"truncated", good[:len(good)-1]},
		{"no code", bad(func(p *Plain) { p.Code = "" })},
		{"code too long", bad(func(p *Plain) { p.Code = strings.Repeat("A", 65) })},
		{"url too long", bad(func(p *Plain) { p.URL = strings.Repeat("u", 2049) })},
		{"maxClients below 1", bad(func(p *Plain) { p.MaxClients = 0.5 })},
		{"epoch 0", bad(func(p *Plain) { p.Epoch = 0 })},
		{"index at next", bad(func(p *Plain) { p.Next = 2 })},
		{"indices not ascending", bad(func(p *Plain) { p.Slots[2].Index = 1 })},
		{"bad digest flag", append(bytes.Clone(good[:len(good)-17]), 2)},
		{"invalid UTF-8 origin", bad(func(p *Plain) { p.Origin = "\xff" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := Parse(tt.in); err == nil {
				t.Errorf("Parse(%s) = %+v, want an error", tt.name, p)
			}
		})
	}
}

// FuzzParse: no plaintext panics Parse, and what it accepts encodes back
// to the same bytes.
func FuzzParse(f *testing.F) {
	f.Add(sample(3).Marshal())
	f.Add(sample(0).Marshal())
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		if again := p.Marshal(); !bytes.Equal(again, b) {
			t.Fatalf("Marshal(Parse(%x)) = %x", b, again)
		}
	})
}

// FuzzOpen: no text panics Open; what it opens is the one room this key
// ever sealed (each fuzz worker seals its own, with its own nonce).
func FuzzOpen(f *testing.F) {
	s := NewSealer("secret")
	good, _ := s.Seal(sample(2))
	want := sample(2).Marshal()
	f.Add(good)
	f.Add("")
	f.Add(strings.Repeat("A", 60))
	f.Fuzz(func(t *testing.T, tk string) {
		if p, err := s.Open(tk); err == nil && !bytes.Equal(p.Marshal(), want) {
			t.Fatalf("Open(%q) opened a ticket nobody sealed: %+v", tk, p)
		}
	})
}
