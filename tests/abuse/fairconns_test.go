package abuse

import (
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// Issue 20, second review, finding 3: MAX_CONNS (1,600 at
// GOMEMLIMIT=200MiB) was first come, first served, and 9 addresses of
// MAX_CONNS_PER_IP=200 sockets each kept every player out: "Server busy"
// (503) for every create and join. Now an address with fewer sockets
// takes one of the address holding the most, which is closed with 1013.
// Here MAX_CONNS is 100 and 3 addresses try 40 sockets each.
//
// Before the fix: honest creates 0/10 and joins 0/10, each refused with
// 503 Server busy. After it: 10/10 and 10/10; 17 attacker sockets closed
// with 1013 to make room (and none of the bystanders').
func TestFewAddressesCannotFillMaxConns(t *testing.T) {
	srv := testutil.Start(t, "MAX_CONNS=100", "MAX_CONNS_PER_IP=40", "UPGRADES_PER_SEC=0")
	pl := play(t, srv, 1, 2, 3) // 3 sockets of 3 addresses
	var ends closeCounts
	socks := attackRooms(t, srv, 7, 3, 39, &ends)
	time.Sleep(time.Second) // the attackers' own last sockets settle
	created, joined, why := honest(srv, 10, 6, pl.code)
	pl.await(20, 5*time.Second)
	ended, how := pl.finish()
	t.Logf("%d attacker sockets joined (3 addresses; MAX_CONNS=100); then honest creates %d/10, joins %d/10 %s; "+
		"attacker sockets ended by close code %v; closed as crowded %v; bystander sockets ended %d (%s)",
		len(socks), created, joined, why, &ends, closedBy(t, srv, "crowded"), ended, how)
	if created < 10 || joined < 10 {
		t.Errorf("honest creates %d/10, joins %d/10: %s", created, joined, why)
	}
	if ended > 0 {
		t.Errorf("bystanders: %d sockets ended (%s)", ended, how)
	}
	if n := closedBy(t, srv, "crowded"); n > 25 {
		t.Errorf("%v sockets closed as crowded for 20 honest ones", n)
	}
}
