package abuse

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/regions"
)

// Review finding 3 (walking codes): one process on the private network
// forged a fresh Fly-Client-IP per guess (bin-walk -forge -addrs 20).
// After the machine's 1,200 misses, misses answered 429 but the live code
// still answered 200: an oracle at any speed. Now, while the machine's
// misses are spent, an address with no history of a code gets a token of
// one bucket for the whole machine (a tenth of its misses a second, 2 a
// second here) before the code is looked at, so fresh addresses buy no
// free guesses and live and absent codes get the same 429; a player who
// found its room before asks again for free.
func TestForgedAddressesGetNoOracle(t *testing.T) {
	srv := testutil.Start(t, flyEnv("GOMEMLIMIT=200MiB")...)
	host, _, err := testutil.Dialer{Header: via("192.0.2.77")}.TryDial(t, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	live := host.Create("walk-host", 8)
	if status, _ := lookup(srv.URL+"/room/"+live, via("192.0.2.78")); status != 200 {
		t.Fatalf("a player's lookup of the live room = %d, want 200", status)
	}
	// Spend the machine's misses, each from a fresh forged address.
	n := 0
	forged := func() http.Header { n++; return via(fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)) }
	for i := range 1200 {
		// (The release before this one answered the last miss 429.)
		if status, _ := lookup(srv.URL+"/room/"+regions.Encode(regions.Pack(6, uint32(7000+i))), forged()); status != 404 && i < 1199 {
			t.Fatalf("miss %d = %d, want 404", i, status)
		}
	}
	// Walk on: 400 guesses, every 20th the live code, each from a fresh
	// address.
	start := time.Now()
	liveAnswers, absentAnswers := map[int]int{}, map[int]int{}
	for i := range 400 {
		if i%20 == 19 {
			status, _ := lookup(srv.URL+"/room/"+live, forged())
			liveAnswers[status]++
			continue
		}
		status, _ := lookup(srv.URL+"/room/"+regions.Encode(regions.Pack(6, uint32(9000+i))), forged())
		absentAnswers[status]++
	}
	elapsed := time.Since(start)
	rejoin, _ := lookup(srv.URL+"/room/"+live, via("192.0.2.78"))
	t.Logf("after the machine's 1,200 misses, 400 guesses from fresh forged addresses in %v: live code %v, absent codes %v; "+
		"the player who found the room before: %d", elapsed.Round(time.Millisecond), liveAnswers, absentAnswers, rejoin)
	// The newcomers' bucket: 10 tokens, then 2 a second.
	answered := liveAnswers[200] + absentAnswers[404]
	if allowed := 11 + int(2*elapsed.Seconds()); answered > allowed {
		t.Errorf("%d guesses answered in %v, want at most the newcomers' %d", answered, elapsed, allowed)
	}
	// The burst goes to the first guesses; the live code is every 20th.
	if liveAnswers[200] > 2 || liveAnswers[429]+liveAnswers[200] != 20 {
		t.Errorf("the live code answered %v: want 429 like the absent codes, bar the few guesses let in", liveAnswers)
	}
	if rejoin != 200 {
		t.Errorf("the player who found the live room before asked again: %d, want 200", rejoin)
	}
}

// Issue 20, second review, finding 2: once the machine's misses were
// spent, every lookup from an address with no history of its code took
// a newcomer's token, found or not. Lookups of a live code (one the
// attacker made itself), each from a fresh address, then spent the
// bucket, and every new player was refused. Now a lookup that finds its
// room gives its token back, and one address takes at most a quarter of
// the bucket.
//
// Before the fix: 10 of the attacker's 200 lookups answered (190 × 429),
// then all 5 new players got 429. After it: 200 of 200, and 5 × 200.
func TestLiveCodeLookupsDoNotSpendNewcomers(t *testing.T) {
	srv := testutil.Start(t, flyEnv("GOMEMLIMIT=200MiB")...)
	host, _, err := testutil.Dialer{Header: via("192.0.2.77")}.TryDial(t, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	own := host.Create("attacker-host", 8)
	friend, _, err := testutil.Dialer{Header: via("192.0.2.80")}.TryDial(t, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	party := friend.Create("party-host", 8)
	n := 0
	forged := func() http.Header { n++; return via(fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)) }
	for i := range 1200 { // the machine's misses, spent
		lookup(srv.URL+"/room/"+regions.Encode(regions.Pack(6, uint32(7000+i))), forged())
	}
	hits := map[int]int{}
	for range 200 { // the attacker's own live code, from fresh addresses
		status, _ := lookup(srv.URL+"/room/"+own, forged())
		hits[status]++
	}
	players := map[int]int{}
	for i := range 5 { // new players, each from an address of their own, find their friend's room
		status, _ := lookup(srv.URL+"/room/"+party, via(fmt.Sprintf("198.51.100.%d", i+1)))
		players[status]++
	}
	t.Logf("after the machine's 1,200 misses, 200 lookups of the attacker's live code from fresh addresses: %v; "+
		"then 5 new players looking up their friend's room: %v", hits, players)
	if players[200] != 5 {
		t.Errorf("new players' lookups of a live room: %v, want 5 × 200", players)
	}
}
