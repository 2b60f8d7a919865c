package tokens

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestCheckEveryFailure(t *testing.T) {
	t.Parallel()
	secret := []byte("s3cret")
	v := &Verifier{Secret: secret}
	good, _ := Mint(secret, time.Minute, Claims{MaxClients: 4, Origin: "https://game.example"})
	forged, _ := Mint([]byte("other"), time.Minute, Claims{})
	expired, _ := Mint(secret, -time.Minute, Claims{})
	tooLong, _ := Mint(secret, 48*time.Hour, Claims{})
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "x"}).SignedString(secret)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"exp": time.Now().Add(time.Minute).Unix()}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"exp": time.Now().Add(time.Minute).Unix()}).
		SignedString(secret)
	tests := []struct {
		name, token, origin string
		max                 float64
		ok                  bool
	}{
		{"minted by the helper", good, "https://game.example", 4, true},
		{"missing", "", "https://game.example", 4, false},
		{"garbage", "not.a.jwt", "https://game.example", 4, false},
		{"forged", forged, "https://game.example", 4, false},
		{"expired", expired, "https://game.example", 4, false},
		{"not short-lived", tooLong, "https://game.example", 4, false},
		{"no exp", noExp, "https://game.example", 4, false},
		{"alg none", none, "https://game.example", 4, false},
		{"alg HS512", hs512, "https://game.example", 4, false},
		{"more than its maxClients", good, "https://game.example", 5, false},
		{"another origin", good, "https://evil.example", 4, false},
		{"huge", strings.Repeat("a", 5000), "", 1, false},
	}
	for _, tt := range tests {
		_, err := v.Check(tt.token, tt.max, tt.origin)
		if (err == nil) != tt.ok {
			t.Errorf("%s: Check = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestEd25519PublicKeyOnly(t *testing.T) {
	t.Parallel()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	parsed, err := ParsePublicKey(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{PublicKey: parsed}
	tok, _ := MintEd25519(priv, time.Minute, Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "quiz"}})
	c, err := v.Check(tok, 8, "")
	if err != nil || c.Subject != "quiz" {
		t.Fatalf("EdDSA token: %v %+v", err, c)
	}
	// An HS256 token is refused when only the public key is configured,
	// even one "signed" with the public key's bytes.
	hs, _ := Mint(parsed, time.Minute, Claims{})
	if _, err := v.Check(hs, 1, ""); err == nil {
		t.Fatal("an HS256 token signed with the public key was accepted")
	}
}
