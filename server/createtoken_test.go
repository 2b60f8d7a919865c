package server

import (
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/tokens"
)

// Finding 7 of issue 20: a token made a room on every create. Its second
// create answers exactly Unauthorized and spends one of the address's
// misses, like every other bad token; a create that fails for another
// reason (here its clientId) made no room and gives the token back.
func TestCreateTokenSpentOnce(t *testing.T) {
	t.Parallel()
	ts := newTestServerWith(t, Config{Tokens: &tokens.Verifier{Secret: tokenSecret}, JoinMissesPerMin: 60}, 1, 0)
	tok, _ := tokens.Mint(tokenSecret, time.Minute, tokens.Claims{})
	create := func(c *testutil.Client, clientID, token string) string {
		c.Send(`{"type":"create","clientId":"` + clientID + `","maxClients":4,"token":"` + token + `"}`)
		got, err := c.Read()
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	c := testutil.Dial(t, ts.URL)
	if got := create(c, strings.Repeat("k", 200), tok); !strings.Contains(got, "clientId too long") {
		t.Fatalf("create with a long clientId: %s", got)
	}
	if got := create(c, "host", tok); !strings.HasPrefix(got, `{"type":"created"`) {
		t.Fatalf("the token after a failed create: %s", got)
	}
	again := testutil.Dial(t, ts.URL)
	if got := create(again, "host2", tok); got != `{"type":"error","message":"Unauthorized"}` {
		t.Fatalf("the token's second create: %s", got)
	}
	if w, ok := ts.perAddr.misses.Peek("127.0.0.1"); !ok || w.current(time.Now()) != 1 {
		t.Fatal("a replayed token did not count as a miss")
	}
	// The machine is full (MAX_ROOMS 1): a fresh token is refused as
	// Too many rooms and can make a room once there is one free.
	fresh, _ := tokens.Mint(tokenSecret, time.Minute, tokens.Claims{})
	if got := create(again, "host2", fresh); !strings.Contains(got, "Too many rooms on this server") {
		t.Fatalf("create on a full machine: %s", got)
	}
	c.Send(`{"type":"close_room"}`)
	testutil.Eventually(t, 5*time.Second, "the room to end", func() bool { return len(ts.rooms.Snapshot()) == 0 })
	if got := create(again, "host2", fresh); !strings.HasPrefix(got, `{"type":"created"`) {
		t.Fatalf("the refunded token: %s", got)
	}
}
