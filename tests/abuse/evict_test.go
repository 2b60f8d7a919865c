package abuse

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// Issue 20, second review, finding 4: at MAX_ROOMS a create ended the
// room that had been empty longest, and a real game whose every member
// blipped at once (the household's Wi-Fi) had been empty longer than a
// stranger's fresh rooms. Here a household plays (host and three phones,
// a state set, messages sent) and all four sockets drop without a close;
// then strangers from 5 addresses create 60 rooms at MAX_ROOMS=50 and
// drop each host at once; then the household rejoins by code, well
// within the host grace.
//
// On the code before the fix: the household's room was the first
// evicted; its four rejoins answered "Room not found". After it: the
// strangers' rooms, which nobody but their host was ever in, go first;
// the household rejoins 4/4 and gets its state back.
func TestEvictionSparesABlippedGame(t *testing.T) {
	if rejoined, stated, why := blipBehindStrangers(t, 0, false); rejoined < 4 || stated < 4 {
		t.Errorf("the household's room was evicted before the strangers': rejoined %d/4, state %d/4 (%s)", rejoined, stated, why)
	}
}

// Finding 4, the attacker's side: strangers who join their own rooms from
// a second socket (one more upgrade each, no more creates) lift them past
// rooms only a host was in, but not past a game whose members were live
// together for 30 s. Here the household plays 31 s before its Wi-Fi
// drops; the strangers' 60 rooms each get a second member. A game that
// played less ranks with such rooms (docs/limits.md, MAX_ROOMS): that
// case is logged, not held to.
//
// On the code before the fix: the household was evicted (rejoined 0/4).
// After it: rejoined 4/4, state 4/4; with 5 s of play instead, 0/4.
func TestEvictionSparesAPlayedGame(t *testing.T) {
	if testing.Short() {
		t.Skip("a game of 31 s")
	}
	t.Parallel()
	t.Run("played", func(t *testing.T) {
		t.Parallel()
		if rejoined, stated, why := blipBehindStrangers(t, 31*time.Second, true); rejoined < 4 || stated < 4 {
			t.Errorf("a played game was evicted before strangers' joined rooms: rejoined %d/4, state %d/4 (%s)", rejoined, stated, why)
		}
	})
	t.Run("early", func(t *testing.T) {
		t.Parallel()
		blipBehindStrangers(t, 5*time.Second, true) // the rule's limit: logged
	})
}

// blipBehindStrangers runs a server at MAX_ROOMS=50 where a household of
// four plays for played, then its four sockets drop without a close;
// strangers from 5 addresses then create 60 rooms, each joined from a
// second socket when joinOwn, and drop them at once; then the household
// rejoins by code, within the host grace. It logs and returns how many
// rejoined and got the state back, and the error of the last that did not.
func blipBehindStrangers(t *testing.T, played time.Duration, joinOwn bool) (rejoined, stated int, why string) {
	srv := testutil.Start(t, "MAX_ROOMS=50")
	home := addr16(40, 0)
	ids := []string{"home-host", "home-1", "home-2", "home-3"}
	code, socks := household4(t, srv, home, ids)
	for _, p := range socks {
		p.readAll(nil, func(int) {}) // answers the server's pings while the game goes on
	}
	time.Sleep(played) // what is measured is time played: there is no event to wait for
	for _, p := range socks {
		p.close() // no close frame: the Wi-Fi is gone
	}
	emptied(t, srv, code)

	held := "held"
	strangers := func(from, to int) {
		for i := from; i < to; i++ {
			src := addr16(41, i%5)
			h, room, err := peerCreate(srv.Addr, src, fmt.Sprintf("stranger-%d", i), 8)
			if err != nil {
				t.Fatalf("stranger create %d: %v", i, err)
			}
			if joinOwn {
				g, err := peerJoin(srv.Addr, src, room, fmt.Sprintf("second-%d", i), 0)
				if err != nil {
					t.Fatalf("stranger join %d: %v", i, err)
				}
				g.close()
			}
			h.close()
			emptied(t, srv, room) // the next create finds it empty
		}
	}
	strangers(0, 49) // the machine holds MAX_ROOMS, every room empty
	if clientsIn(t, srv, code) < 0 {
		held = "gone"
	}
	strangers(49, 60) // 11 creates at the cap: each ends an empty room

	for _, id := range ids {
		p, err := peerJoin(srv.Addr, home, code, id, 0)
		if err != nil {
			why = err.Error()
			continue
		}
		rejoined++
		if f, err := p.expect("state", 2*time.Second); err == nil && strings.Contains(f, `"round":3`) {
			stated++
		}
		p.close()
	}
	t.Logf("household of 4 played %v and blipped (%s at the cap), then 60 strangers' rooms made (joined from a second socket: %v) "+
		"and dropped at MAX_ROOMS=50; rejoined %d/4, state back %d/4 %s", played, held, joinOwn, rejoined, stated, why)
	return rejoined, stated, why
}

// household4 is a room played from src: ids[0] creates it, the others
// join, the host sets a state and everyone sends a message that the
// others read. It returns the room's code and the four sockets.
func household4(t *testing.T, srv *testutil.Server, src string, ids []string) (string, []*peer) {
	t.Helper()
	host, code, err := peerCreate(srv.Addr, src, ids[0], 8)
	if err != nil {
		t.Fatal(err)
	}
	socks := []*peer{host}
	for _, id := range ids[1:] {
		p, err := peerJoin(srv.Addr, src, code, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, p)
	}
	host.send(`{"type":"set_state","data":{"round":3}}`)
	for _, p := range socks[1:] {
		if _, err := p.expect("state", 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range socks {
		p.send(fmt.Sprintf(`{"type":"send","data":"move %d"}`, i))
		for j, q := range socks {
			if j == i {
				continue
			}
			if _, err := q.expect("message", 5*time.Second); err != nil {
				t.Fatal(err)
			}
		}
	}
	return code, socks
}

// clientsIn is the live members of room code as GET /room/<code> says,
// -1 when it is not found.
func clientsIn(t *testing.T, srv *testutil.Server, code string) float64 {
	t.Helper()
	status, body := getJSON(t, srv.URL+"/room/"+code, nil)
	if status != 200 {
		return -1
	}
	n, _ := body["clients"].(float64)
	return n
}

// emptied waits until room code is held with no live member: its sockets'
// ends have reached the server.
func emptied(t *testing.T, srv *testutil.Server, code string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "room "+code+" to be empty", func() bool { return clientsIn(t, srv, code) == 0 })
}
