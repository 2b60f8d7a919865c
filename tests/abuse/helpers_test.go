package abuse

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// pair is a room of max at url with its host and one player joined, the
// join chatter read; who names their clientIds (who-host, who-player).
func pair(t testing.TB, url, who string, max int) (host, player *testutil.Client, code string) {
	t.Helper()
	host = testutil.Dial(t, url)
	code = host.Create(who+"-host", max)
	player = testutil.Dial(t, url)
	player.Join(code, who+"-player")
	player.ExpectType("joined")
	host.ExpectType("peer_joined")
	return host, player, code
}

// healthyPair checks that a fresh room works: create, join, one message
// each way.
func healthyPair(t testing.TB, url string) {
	t.Helper()
	h, p, _ := pair(t, url, "healthy", 4)
	h.Send(`{"type":"send","data":"ping"}`)
	p.Expect(`{"type":"message","from":0,"data":"ping"}`)
	p.Send(`{"type":"send","data":"pong"}`)
	h.Expect(`{"type":"message","from":1,"data":"pong"}`)
}

func getJSON(t testing.TB, url string, hdr http.Header) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v
}

// loopback is the loopback address 127.0.0.n.
func loopback(n int) string { return fmt.Sprintf("127.0.0.%d", n) }
