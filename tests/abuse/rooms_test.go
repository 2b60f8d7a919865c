package abuse

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// Issue 20 review, finding 7 (bin-rooms -addrs 700 -per 30): hosts that
// drop without a close frame keep their rooms for HOST_GRACE (2 minutes),
// and enough of them filled MAX_ROOMS (20,000): every create on the
// machine was refused while they kept it up, and each empty room held
// ~1.8 KB of heap against the 128 B the budget counted. Here 20,500
// hosts create a room each and drop (the per-address rates are off: what
// 700 addresses do at their rates, a few do at once), then honest players
// create.
//
// On the code before the fix: 19,999 made, the rest and every honest
// create (0/10) refused "Too many rooms on this server"; budget 5% (128 B
// a room); peak RSS 84 MB. After it: each create past the cap, or past
// what the budget holds, ends the room that has been empty longest:
// honest creates 10/10, budget peak 80% (2.2 KB a room); peak RSS 110 MB.
func TestEmptyRoomsGiveWay(t *testing.T) {
	if testing.Short() {
		t.Skip("20,500 rooms")
	}
	const rooms = 20500
	srv := testutil.Start(t, "GOMEMLIMIT=200MiB", "UPGRADES_PER_SEC=0", "CREATES_PER_MIN=0", "MAX_CONNS_PER_IP=0")
	seen := watch(t, srv)
	pl := play(t, srv, 1, 1, 3)
	seen.fresh(t, srv)
	_, _, heap0 := seen.read()
	start := time.Now()
	var made, failed atomic.Int64
	var why atomic.Value
	parallel(rooms, 64, func(i int) {
		h, _, err := peerCreate(srv.Addr, addr16(10, i%500), fmt.Sprintf("gone-%d", i), 8)
		if err != nil {
			if failed.Add(1) == 1 {
				why.Store(err.Error())
			}
			return
		}
		made.Add(1)
		h.close() // no close frame: the room is kept for its grace
	})
	fill := time.Since(start)
	seen.fresh(t, srv)
	held := srv.Metric(t, "party_sockets_rooms")
	used, _, heap := seen.read()
	created, _, whyHonest := honest(srv, 10, 20, pl.code)
	ended, how := pl.finish()
	memoryBounds(t, srv, seen)
	t.Logf("%d hosts created and dropped in %v: %d made, %d refused (%v); rooms held %.0f; heap %.1f → %.1f MB "+
		"(%.0f B a room), budget %.1f MB (%.0f B a room); honest creates %d/10 %s; bystander sockets ended %d (%s)",
		rooms, fill.Round(time.Second), made.Load(), failed.Load(), why.Load(), held, heap0/1e6, heap/1e6,
		(heap-heap0)/held, used/1e6, used/held, created, whyHonest, ended, how)
	if created < 10 {
		t.Errorf("honest creates %d/10: %s", created, whyHonest)
	}
	if ended > 0 {
		t.Errorf("bystanders: %d sockets ended (%s)", ended, how)
	}
}
