package main

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/party-sockets/party-sockets/tokens"
)

// runToken is `party-sockets token`: it mints one create token and prints
// it. The HS256 secret comes from CREATE_TOKEN_SECRET (never a flag: flags
// show in process lists), or -ed25519-key names a PEM private key file.
func runToken(args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	ttl := fs.Duration("ttl", 5*time.Minute, "how long the token is valid (at most 1h)")
	maxClients := fs.Float64("max-clients", 0, "the largest maxClients a create may ask for (0: no cap)")
	origin := fs.String("origin", "", "the Origin the creating page must have (empty: any)")
	sub := fs.String("sub", "", "game or tenant name (a metrics label)")
	aud := fs.String("aud", "", "the audience a relay with CREATE_TOKEN_AUDIENCE requires (empty: none)")
	jti := fs.String("jti", "", "the token's id, spent by its first create (empty: a fresh random one)")
	instance := fs.String("instance", "", "the one machine id that accepts the token (empty: any)")
	edKey := fs.String("ed25519-key", "", "PEM file of an Ed25519 private key (EdDSA instead of HS256)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ttl <= 0 || *ttl > tokens.MaxLifetime {
		return fmt.Errorf("-ttl %v: want more than 0 and at most %v", *ttl, tokens.MaxLifetime)
	}
	c := tokens.Claims{MaxClients: *maxClients, Origin: *origin, Instance: *instance,
		RegisteredClaims: jwt.RegisteredClaims{Subject: *sub, ID: *jti}}
	if *aud != "" {
		c.Audience = jwt.ClaimStrings{*aud}
	}
	var tok string
	var err error
	if *edKey != "" {
		key, kerr := readEd25519(*edKey)
		if kerr != nil {
			return kerr
		}
		tok, err = tokens.MintEd25519(key, *ttl, c)
	} else {
		secret := getenv("CREATE_TOKEN_SECRET")
		if secret == "" {
			return errors.New("set CREATE_TOKEN_SECRET (or use -ed25519-key)")
		}
		tok, err = tokens.Mint([]byte(secret), *ttl, c)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(out, tok)
	return nil
}

func readEd25519(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: not PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: a %T, not an Ed25519 key", path, k)
	}
	return key, nil
}
