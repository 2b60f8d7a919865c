package regions

import (
	"bytes"
	"strings"
	"testing"
)

func TestTableOrder(t *testing.T) {
	t.Parallel()
	want := "ams arn bom cdg dfw ewr fra gru iad jnb lax lhr nrt ord sin sjc syd yyz"
	if got := strings.Join(Table[:], " "); got != want {
		t.Fatalf("Table = %q, want %q", got, want)
	}
	if len(Alphabet) != 58 {
		t.Fatalf("alphabet has %d letters", len(Alphabet))
	}
}

func TestEncodeDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		v    uint64
		code string
	}{
		{"zero pads with 1", 0, "111111"},
		{"one", 1, "111112"},
		{"58", 58, "111121"},
		{"max", MaxCode, Encode(MaxCode)},
		{"ams first", Pack(0, 0), "111111"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Encode(tt.v); got != tt.code {
				t.Errorf("Encode(%d) = %q, want %q", tt.v, got, tt.code)
			}
			if got, ok := Decode(tt.code); !ok || got != tt.v {
				t.Errorf("Decode(%q) = %d, %v, want %d, true", tt.code, got, ok, tt.v)
			}
		})
	}
}

func TestHomeOf(t *testing.T) {
	t.Parallel()
	for i, r := range Table {
		for _, low := range []uint32{0, 1, 1<<30 - 1, 123456789} {
			code := Encode(Pack(i, low))
			if got, ok := HomeOf(code); !ok || got != r {
				t.Errorf("HomeOf(%q) = %q, %v, want %q", code, got, ok, r)
			}
		}
	}
	tests := []struct {
		name string
		code string
	}{
		{"empty", ""},
		{"short", "11111"},
		{"long", "1111111"},
		{"zero is not base58", "11111O"},
		{"lower l is not base58", "11111l"},
		{"non ascii", "1111é"},
		{"region index 18", Encode(Pack(18, 0))},
		{"region index 31", Encode(Pack(31, 5))},
		{"over 35 bits", "zzzzzz"},
		{"health is not a code", "health"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, ok := HomeOf(tt.code); ok {
				t.Errorf("HomeOf(%q) = %q, true, want no region", tt.code, got)
			}
		})
	}
}

func TestDecodeRejectsOverflow(t *testing.T) {
	t.Parallel()
	// 58^6-1 is above 2^35-1: the largest six-digit code is invalid.
	if _, ok := Decode("zzzzzz"); ok {
		t.Fatal("Decode(zzzzzz) accepted a value over 35 bits")
	}
	if _, ok := Decode(Encode(MaxCode)); !ok {
		t.Fatal("Decode(Encode(MaxCode)) failed")
	}
}

func TestGeneratorRegion(t *testing.T) {
	t.Parallel()
	g := NewGenerator("syd", nil)
	for range 1000 {
		c, err := g.Next()
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := HomeOf(c); !ok || r != "syd" {
			t.Fatalf("code %q has region %q, %v; want syd", c, r, ok)
		}
	}
}

func TestGeneratorUnknownRegionUsesAllBits(t *testing.T) {
	t.Parallel()
	// All-ones random bytes: an unknown region keeps all 35 bits.
	g := NewGenerator("", bytes.NewReader(bytes.Repeat([]byte{0xff}, 8)))
	c, err := g.Next()
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := Decode(c); v != MaxCode {
		t.Fatalf("code %q = %d, want %d", c, v, uint64(MaxCode))
	}
	// The same bytes in a region only fill the low 30 bits.
	g = NewGenerator("ams", bytes.NewReader(bytes.Repeat([]byte{0xff}, 8)))
	c, _ = g.Next()
	if v, _ := Decode(c); v != 1<<30-1 {
		t.Fatalf("ams code %q = %d, want %d", c, v, 1<<30-1)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{"111111", "zzzzzz", "health", "", "abc", "1111é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := Decode(s)
		if !ok {
			if _, rok := HomeOf(s); rok {
				t.Fatalf("HomeOf(%q) ok but Decode failed", s)
			}
			return
		}
		if v > MaxCode {
			t.Fatalf("Decode(%q) = %d over MaxCode", s, v)
		}
		if Encode(v) != s {
			t.Fatalf("Encode(Decode(%q)) = %q", s, Encode(v))
		}
		if r, rok := HomeOf(s); rok != (v>>30 < uint64(len(Table))) || (rok && r != Table[v>>30]) {
			t.Fatalf("HomeOf(%q) = %q, %v for value %d", s, r, rok, v)
		}
	})
}

func BenchmarkCodeGeneration(b *testing.B) {
	g := NewGenerator("fra", nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Next(); err != nil {
			b.Fatal(err)
		}
	}
}
