package tokens

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("a-secret-of-at-least-32-bytes-for-tests")

func mustMint(t *testing.T, ttl time.Duration, c Claims) string {
	t.Helper()
	tok, err := Mint(testSecret, ttl, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Finding 7 of issue 20: one token gave 60 creates. A token is spent by
// its first create, keyed on its jti, or on its signed part without one;
// another machine's verifier remembers its own.
func TestTokenIsSpentOnce(t *testing.T) {
	t.Parallel()
	noJTI, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"exp": time.Now().Add(time.Minute).Unix()}).
		SignedString(testSecret)
	sameJTI := mustMint(t, 2*time.Minute, Claims{MaxClients: 8, RegisteredClaims: jwt.RegisteredClaims{ID: "game-42"}})
	tests := []struct {
		name         string
		first, again string
	}{
		{"minted, with a fresh jti", mustMint(t, time.Minute, Claims{}), ""},
		{"no jti: the token itself", noJTI, ""},
		{
			"another token with a spent jti",
			mustMint(t, time.Minute, Claims{RegisteredClaims: jwt.RegisteredClaims{ID: "game-42"}}),
			sameJTI,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, elsewhere := &Verifier{Secret: testSecret}, &Verifier{Secret: testSecret}
			if tt.again == "" {
				tt.again = tt.first
			}
			if _, err := v.Check(tt.first, 1, ""); err != nil {
				t.Fatalf("first use: %v", err)
			}
			if _, err := v.Check(tt.again, 1, ""); err == nil || !strings.Contains(err.Error(), "spent") {
				t.Fatalf("second use: Check = %v, want already spent", err)
			}
			if _, err := elsewhere.Check(tt.again, 1, ""); err != nil {
				t.Fatalf("another machine: %v", err)
			}
		})
	}
}

// Two creates racing with one token: exactly one wins.
func TestTokenSpentOnceUnderRace(t *testing.T) {
	t.Parallel()
	v := &Verifier{Secret: testSecret}
	tok := mustMint(t, time.Minute, Claims{})
	var won atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := v.Check(tok, 1, ""); err == nil {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d of 50 racing creates won, want 1", won.Load())
	}
}

// A signature's unused trailing bits gave one token four spellings: the
// parser decodes strictly, so only the minted spelling is a token.
func TestOneSpellingPerSignature(t *testing.T) {
	t.Parallel()
	tok := mustMint(t, time.Minute, Claims{})
	last := tok[len(tok)-1]
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, last)
	// HS256: 32 bytes in 43 characters, the last carries 4 bits and 2 unused.
	variant := tok[:len(tok)-1] + string(alphabet[i^1])
	v := &Verifier{Secret: testSecret}
	if _, err := v.Check(variant, 1, ""); err == nil {
		t.Fatal("a respelled signature was accepted")
	}
	if _, err := v.Check(tok, 1, ""); err != nil {
		t.Fatalf("the minted spelling: %v", err)
	}
}

// The memory of spent tokens has a bound: when full it refuses creates
// rather than forget a token that has not expired, and an expired one
// makes room again.
func TestRememberIsBounded(t *testing.T) {
	t.Parallel()
	at := time.Now()
	v := &Verifier{Secret: testSecret, Remember: 3, now: func() time.Time { return at }}
	var toks []string
	for i := range 4 {
		toks = append(toks, mustMint(t, time.Duration(i+1)*time.Minute, Claims{}))
	}
	for _, tok := range toks[:3] {
		if _, err := v.Check(tok, 1, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.Check(toks[3], 1, ""); !errors.Is(err, ErrTooManyTokens) {
		t.Fatalf("a fourth token with room for 3: Check = %v, want ErrTooManyTokens", err)
	}
	at = at.Add(time.Minute + leeway + time.Second) // the first has expired
	if _, err := v.Check(toks[3], 1, ""); err != nil {
		t.Fatalf("after the first expired: %v", err)
	}
	if _, err := v.Check(toks[0], 1, ""); err == nil {
		t.Fatal("a forgotten token was accepted: it had not expired")
	}
	if n := len(v.spent); n > 3 {
		t.Fatalf("%d tokens remembered, bound 3", n)
	}
}

// A create that fails after the check gives its token back.
func TestRefund(t *testing.T) {
	t.Parallel()
	v := &Verifier{Secret: testSecret}
	tok := mustMint(t, time.Minute, Claims{})
	c, err := v.Check(tok, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	v.Refund(c)
	if _, err := v.Check(tok, 1, ""); err != nil {
		t.Fatalf("after a refund: %v", err)
	}
}

// aud is checked when the verifier has an audience; instance when the
// token names a machine.
func TestAudienceAndInstance(t *testing.T) {
	t.Parallel()
	aud := func(a ...string) Claims { return Claims{RegisteredClaims: jwt.RegisteredClaims{Audience: a}} }
	tests := []struct {
		name     string
		v        *Verifier
		c        Claims
		ok       bool
		contains string
	}{
		{"no audience set, any aud", &Verifier{}, aud("x"), true, ""},
		{"audience, no aud", &Verifier{Audience: "relay"}, Claims{}, false, "aud"},
		{"audience, another aud", &Verifier{Audience: "relay"}, aud("other"), false, "aud"},
		{"audience, its aud", &Verifier{Audience: "relay"}, aud("relay"), true, ""},
		{"audience among others", &Verifier{Audience: "relay"}, aud("other", "relay"), true, ""},
		{"this machine", &Verifier{Instance: "m1"}, Claims{Instance: "m1"}, true, ""},
		{"another machine", &Verifier{Instance: "m2"}, Claims{Instance: "m1"}, false, "machine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.v.Secret = testSecret
			_, err := tt.v.Check(mustMint(t, time.Minute, tt.c), 1, "")
			if (err == nil) != tt.ok || (err != nil && !strings.Contains(err.Error(), tt.contains)) {
				t.Fatalf("Check(%+v) = %v, want ok=%v", tt.c, err, tt.ok)
			}
		})
	}
}

// Mint gives every token a fresh jti unless the caller names one.
func TestMintSetsJTI(t *testing.T) {
	t.Parallel()
	v := &Verifier{Secret: testSecret}
	a, _ := v.Check(mustMint(t, time.Minute, Claims{}), 1, "")
	b, _ := v.Check(mustMint(t, time.Minute, Claims{}), 1, "")
	named, _ := v.Check(mustMint(t, time.Minute, Claims{RegisteredClaims: jwt.RegisteredClaims{ID: "mine"}}), 1, "")
	if a == nil || b == nil || named == nil || len(a.ID) != 22 || a.ID == b.ID || named.ID != "mine" {
		t.Fatalf("jtis %+v %+v %+v", a, b, named)
	}
}

// Check reads tokens from strangers: whatever it is given, it does not
// panic, and a token it accepts is spent.
func FuzzCheck(f *testing.F) {
	good, _ := Mint(testSecret, time.Minute, Claims{MaxClients: 4, Origin: "https://game.example"})
	f.Add(good)
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add(good[:len(good)-3])
	f.Fuzz(func(t *testing.T, tok string) {
		v := &Verifier{Secret: testSecret}
		if _, err := v.Check(tok, 4, "https://game.example"); err == nil {
			if _, err := v.Check(tok, 4, "https://game.example"); err == nil {
				t.Fatalf("%q accepted twice", tok)
			}
		}
	})
}
