package abuse

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/tokens"
)

const createSecret = "a-create-token-secret-of-32-bytes+"

// createWith sends n creates carrying token from src, a new socket after
// each success, and returns how many rooms it made and the errors it got.
func createWith(t *testing.T, url, src, token string, n int) (created int, errs map[string]int) {
	t.Helper()
	errs = map[string]int{}
	m := testutil.Dialer{LocalAddr: src}.Dial(t, url)
	for i := range n {
		msg, _ := json.Marshal(
			map[string]any{"type": "create", "clientId": src + "-" + string(rune('a'+i%26)), "maxClients": 4, "token": token},
		)
		m.Send(string(msg))
		v, err := m.Next()
		if err != nil {
			t.Fatalf("create %d from %s: %v", i, src, err)
		}
		switch v.Type {
		case "created":
			created++
			m = testutil.Dialer{LocalAddr: src}.Dial(t, url)
		case "error":
			errs[v.Message]++
		}
	}
	return created, errs
}

// Finding 7: one create token gave 60 creates from two addresses, though
// the README promises "good for one create". Each address may create 30
// rooms a minute; a replayed token must make none of them, answer exactly
// Unauthorized, and spend one of the address's misses like any bad token.
func TestCreateTokenIsSingleUse(t *testing.T) {
	srv := testutil.Start(t, "CREATE_TOKEN_SECRET="+createSecret, "JOIN_MISSES_PER_MIN=20")
	withJTI, err := tokens.Mint([]byte(createSecret), time.Minute, tokens.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	// A backend that sets no jti (jsonwebtoken does not by default): the
	// token itself is remembered.
	noJTI, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"exp": time.Now().Add(time.Minute).Unix()}).
		SignedString([]byte(createSecret))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, token, a, b string }{
		{"with a jti", withJTI, "127.0.0.1", "127.0.0.2"},
		{"without a jti", noJTI, "127.0.0.4", "127.0.0.5"},
	} {
		a, errsA := createWith(t, srv.URL, tc.a, tc.token, 30)
		b, errsB := createWith(t, srv.URL, tc.b, tc.token, 30)
		t.Logf("one token %s: %d creates from two addresses; refusals %v %v", tc.name, a+b, errsA, errsB)
		if a+b != 1 || errsA["Unauthorized"]+errsB["Unauthorized"] != 59 {
			t.Errorf("one token %s made %d rooms, want 1; refusals %v %v", tc.name, a+b, errsA, errsB)
		}
	}
	// 127.0.0.2 spent its misses on replays: its joins are refused now.
	h := testutil.Dialer{LocalAddr: "127.0.0.3"}.Dial(t, srv.URL)
	fresh, _ := tokens.Mint([]byte(createSecret), time.Minute, tokens.Claims{})
	h.Send(`{"type":"create","clientId":"host","maxClients":4,"token":"` + fresh + `"}`)
	code := h.ExpectType("created").Room
	p := testutil.Dialer{LocalAddr: "127.0.0.2"}.Dial(t, srv.URL)
	p.Join(code, "replayer")
	p.ExpectErr("Too many failed joins, try again later")
}

// With CREATE_TOKEN_AUDIENCE set, a token must name it in aud.
func TestCreateTokenAudience(t *testing.T) {
	srv := testutil.Start(t, "CREATE_TOKEN_SECRET="+createSecret, "CREATE_TOKEN_AUDIENCE=relay.game.example")
	mint := func(aud ...string) string {
		tok, err := tokens.Mint([]byte(createSecret), time.Minute, tokens.Claims{RegisteredClaims: jwt.RegisteredClaims{Audience: aud}})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tc := range []struct {
		name, token, want string
	}{
		{"no aud", mint(), "error"},
		{"another aud", mint("other.game.example"), "error"},
		{"its aud", mint("relay.game.example"), "created"},
		{"its aud among others", mint("other.game.example", "relay.game.example"), "created"},
	} {
		m := testutil.Dial(t, srv.URL)
		m.Send(`{"type":"create","clientId":"h","maxClients":4,"token":"` + tc.token + `"}`)
		v, err := m.Next()
		if err != nil || v.Type != tc.want || (tc.want == "error" && v.Message != "Unauthorized") {
			t.Errorf("%s: create answered %v (%v), want %s", tc.name, v, err, tc.want)
		}
	}
}
