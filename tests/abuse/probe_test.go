package abuse

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/flydns"
	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/regions"
)

// Probe economics (issue 20, findings 4, 5 and 8): what one address, or a
// process on the private network, can make the machine's peer probes do.

const secret32 = "probe-test-secret-of-at-least-32-bytes"

// via is what Fly's proxy adds to a request from ip.
func via(ip string) http.Header {
	return http.Header{"Fly-Region": {"fra"}, "Fly-Client-IP": {ip}}
}

// flyMachine starts a real server as machine id of region on ip:port,
// listed in fly's DNS.
func flyMachine(t *testing.T, fly *flydns.Server, id, region, ip, port string, extra ...string) *testutil.Server {
	t.Helper()
	env := append([]string{"FLY_APP_NAME=app", "INSTANCE_ID=" + id, "REGION=" + region, "INTERNAL_DNS=" + fly.Addr,
		"DASHBOARD_URL=http://127.0.0.1:9/", "HOST=" + ip, "PORT=" + port}, extra...)
	srv := testutil.Start(t, env...)
	fly.Add(id, region, ip)
	return srv
}

// Finding 4: a probe round that found its room was refunded from the
// address's miss budget, so looking up one's own rooms on a sibling spent
// the machine's probe bucket for free: players' joins by code then
// failed. Found holders are now cached briefly, and every round (found or
// not) spends the address's probe allowance; an address that has spent
// more than a household's rejoin only gets what the players leave over.
func TestProbeBucketCannotBeSpentForFree(t *testing.T) {
	fly := testutil.StartFlyDNS(t, "app")
	port := strconv.Itoa(testutil.FreePort(t))
	const idA, idB = "0a1b2c3d4e5fa1", "0a1b2c3d4e5fb2"
	a := flyMachine(t, fly, idA, "fra", "127.0.0.2", port)
	b := flyMachine(t, fly, idB, "fra", "127.0.0.3", port)

	// 20 attacker addresses hold 5 rooms each on b; 10 games of players too.
	const attackers, roomsEach = 20, 5
	own := make([][]string, attackers)
	for i := range attackers {
		ip := fmt.Sprintf("198.51.100.%d", i+1)
		for j := range roomsEach {
			m, _, err := testutil.Dialer{Header: via(ip)}.TryDial(t, b.URL)
			if err != nil {
				t.Fatal(err)
			}
			own[i] = append(own[i], m.Create(fmt.Sprintf("atk-%d-%d", i, j), 2))
		}
	}
	var games []string
	for i := range 10 {
		m, _, err := testutil.Dialer{Header: via("192.0.2.1")}.TryDial(t, b.URL)
		if err != nil {
			t.Fatal(err)
		}
		games = append(games, m.Create(fmt.Sprintf("game-%d", i), 8))
	}
	player := 0
	joins := func(n int, every time.Duration) (found int) {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := range n {
			<-tick.C
			player++
			ip := fmt.Sprintf("203.0.%d.%d", 113+player/250, player%250+1)
			if joinReplayed(t, a.URL+"/"+games[i%len(games)], ip, idB) {
				found++
			}
		}
		return found
	}
	if got := joins(10, 50*time.Millisecond); got != 10 {
		t.Fatalf("without an attack %d of 10 joins by code found their room", got)
	}

	// The attack: each address looks its own rooms up through a, 2/s each,
	// 40/s in all, until the test ends.
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var looked, replayed, refused atomic.Int64
	spent := make([]atomic.Int64, attackers) // rounds each attacker had, as far as it can tell
	for i := range attackers {
		wg.Go(func() {
			// Spread out, as an attacker would: one lookup every 25 ms in all.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(i) * 25 * time.Millisecond):
			}
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			hdr := via(fmt.Sprintf("198.51.100.%d", i+1))
			for n := 0; n < 200; n++ { // 100 s at most; the test ends it sooner
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				status, replay := lookup(a.URL+"/room/"+own[i][n%roomsEach], hdr)
				looked.Add(1)
				switch {
				case status == 409 && strings.Contains(replay, idB):
					replayed.Add(1)
					spent[i].Add(1)
				case status == 429:
					refused.Add(1)
					spent[i].Add(100)
				}
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()
	// Let every attacker have more rounds than a household's rejoin needs
	// (10) or be refused, at most 30 s: what it can take at first.
	testutil.Poll(30*time.Second, func() bool {
		for i := range spent {
			if spent[i].Load() < 10 {
				return false
			}
		}
		return true
	})
	const n = 40
	found := joins(n, 200*time.Millisecond)
	t.Logf(
		"players' joins by code during the attack: %d of %d found their room (%.0f%%); attackers' lookups: %d, %d replayed to their rooms, %d refused (429)",
		found,
		n,
		100*float64(found)/n,
		looked.Load(),
		replayed.Load(),
		refused.Load(),
	)
	if found < n*95/100 {
		t.Fatalf("%d of %d joins by code found their room under the attack, want at least 95%%", found, n)
	}
}

// joinReplayed dials url as a player from ip through the proxy and reports
// whether the machine sent the upgrade on to holder (409 with fly-replay).
func joinReplayed(t *testing.T, url, ip, holder string) bool {
	m, resp, err := testutil.Dialer{Header: via(ip)}.TryDial(t, url)
	if err == nil {
		m.Drop()
		return false
	}
	return resp != nil && resp.StatusCode == 409 && strings.Contains(resp.Header.Get("Fly-Replay"), "instance="+holder)
}

// lookup is GET url with hdr: the status and the fly-replay answer.
func lookup(url string, hdr http.Header) (int, string) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header = hdr.Clone()
	resp, err := noRedirect.Do(req)
	if err != nil {
		return 0, ""
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Fly-Replay")
}

// listingPeer is a machine of the app on ip:port, of this release: it
// answers GET /room/<code> (200 for held) and GET /.internal/codes with
// the codes of the asked region it holds (those in listed), and counts both.
type listingPeer struct {
	held, listed string
	rooms, lists atomic.Int64
	signed       atomic.Int64 // listing calls that carried a signature
}

func startListingPeer(t *testing.T, p *listingPeer, ip, port string) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/.internal/codes":
			p.lists.Add(1)
			if r.Header.Get("X-Party-Auth") != "" {
				p.signed.Add(1)
			}
			codes := "[]"
			if c := p.listed; c != "" {
				if home, _ := regions.HomeOf(c); home == r.URL.Query().Get("region") {
					codes = `["` + c + `"]`
				}
			}
			w.Write([]byte(`{"codes":` + codes + `}`))
		case strings.HasPrefix(r.URL.Path, "/room/"):
			p.rooms.Add(1)
			if p.held != "" && r.URL.Path == "/room/"+p.held {
				w.Write([]byte(`{"clients":1,"maxClients":4,"origin":"unknown"}`))
				return
			}
			w.WriteHeader(404)
			w.Write([]byte(`{"error":"Room not found"}` + "\n"))
		default:
			w.WriteHeader(404)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// Finding 5: with hand-off on, a round that found nothing in the code's
// region asked every machine of the app: with 17 peers, 17 asks for each
// mistyped code, against 1 with HANDOFF=off. Now only the machines a code
// is known to have gone to are asked: what they hold of this region is
// listed once at start (and again rarely), and a region with no machine
// running is listed the same way, not probed per code.
func TestMistypedCodeProbesItsOwnRegionOnly(t *testing.T) {
	abroad := []string{
		"ams",
		"arn",
		"bom",
		"cdg",
		"dfw",
		"ewr",
		"gru",
		"iad",
		"jnb",
		"lax",
		"lhr",
		"nrt",
		"ord",
		"sin",
		"sjc",
		"syd",
	}
	moved := regions.Encode(regions.Pack(6, 424242)) // a fra room a hand-off took to iad
	for _, handoff := range []string{"on", "off"} {
		t.Run("HANDOFF="+handoff, func(t *testing.T) {
			// The machine starts with its siblings up, as after a restart.
			fly := testutil.StartFlyDNS(t, "app")
			port := strconv.Itoa(testutil.FreePort(t))
			peers := make([]*listingPeer, 1+len(abroad))
			for i, region := range append([]string{"fra"}, abroad...) {
				peers[i] = &listingPeer{}
				if region == "iad" {
					peers[i].held, peers[i].listed = moved, moved
				}
				ip := fmt.Sprintf("127.0.10.%d", i+1)
				startListingPeer(t, peers[i], ip, port)
				fly.Add(fmt.Sprintf("0a1b2c3d4e%04d", i+1), region, ip)
			}
			fly.Add(selfID, "fra", "127.0.0.1")
			// The machine's rate of rounds is not what this test counts.
			srv := flyMachine(
				t,
				fly,
				selfID,
				"fra",
				"127.0.0.1",
				port,
				"HANDOFF="+handoff,
				"HANDOFF_SECRET="+secret32,
				"PROBES_PER_SEC=1000",
			)
			asks := func() (rooms, lists, signed int64) {
				for _, p := range peers {
					rooms, lists, signed = rooms+p.rooms.Load(), lists+p.lists.Load(), signed+p.signed.Load()
				}
				return
			}
			const n = 20
			r0, _, _ := asks()
			for i := range n {
				code := regions.Encode(regions.Pack(6, uint32(5000+i))) // fra, held nowhere
				if status, _ := lookup(srv.URL+"/room/"+code, via(fmt.Sprintf("203.0.113.%d", i+1))); status != 404 {
					t.Fatalf("mistyped code %d: %d, want 404", i, status)
				}
			}
			r1, l1, _ := asks()
			perMiss := float64(r1-r0) / n
			// yyz has no machine: its codes are looked for where yyz's codes went.
			for i := range n {
				code := regions.Encode(regions.Pack(17, uint32(5000+i)))
				if status, _ := lookup(srv.URL+"/room/"+code, via(fmt.Sprintf("203.0.114.%d", i+1))); status != 404 && handoff == "on" {
					t.Fatalf("mistyped yyz code %d: %d, want 404", i, status)
				}
			}
			r2, l2, signed := asks()
			emptyPerMiss := float64(r2-r1) / n
			status, replay := lookup(srv.URL+"/room/"+moved, via("203.0.115.1"))
			t.Logf(
				"HANDOFF=%s, 17 peers: %.1f probe asks per mistyped fra code, %.1f per mistyped code of a region with no machine; %d listing calls (%d signed); the fra room that went to iad: %d %q",
				handoff,
				perMiss,
				emptyPerMiss,
				l2,
				signed,
				status,
				replay,
			)
			if perMiss != 1 {
				t.Errorf("%.1f probe asks per mistyped fra code, want 1 (fra's other machine)", perMiss)
			}
			if handoff == "off" {
				return
			}
			if emptyPerMiss != 0 {
				t.Errorf("%.1f probe asks per mistyped code of an empty region, want 0", emptyPerMiss)
			}
			if l1 > int64(len(abroad)) || l2 > l1+int64(len(peers)) || signed != l2 {
				t.Errorf("%d listing calls after the fra misses, %d after the yyz ones (%d signed): want one listing per region, signed",
					l1, l2, signed)
			}
			if status != 409 || !strings.Contains(replay, "instance=0a1b2c3d4e0009") {
				t.Errorf("the fra room that went to iad: %d %q, want a replay to its holder", status, replay)
			}
		})
	}
}

// Finding 8: on Fly, any GET /room/<code> that did not come through the
// proxy, from a private or loopback address, was exempt from every limit:
// 5,900 lookups a second from 127.0.0.1, none refused, secret or not. Only
// a signed peer probe is exempt now; an unsigned one (a machine of the old
// relay in a mixed fleet probes that way) gets a budget per source sized
// for a peer's probe rate: such a prober gets every answer, a flood is
// refused.
func TestUnsignedPeerLookupsHeldToAPeersRate(t *testing.T) {
	for _, secret := range []string{"", secret32} {
		t.Run(fmt.Sprintf("secret=%v", secret != ""), func(t *testing.T) {
			srv := testutil.Start(t, flyEnv("HANDOFF_SECRET="+secret)...)
			code := regions.Encode(regions.Pack(6, 31337))
			// An old relay's prober: 15 lookups a second for 4 s.
			tick := time.NewTicker(time.Second / 15)
			answered := 0
			for range 60 {
				<-tick.C
				if status, _ := lookup(srv.URL+"/room/"+code, nil); status == 404 {
					answered++
				}
			}
			tick.Stop()
			if answered != 60 {
				t.Fatalf("an unsigned prober at 15/s got %d of 60 answers", answered)
			}
			// A flood: as fast as 4 connections go, at most 3,000 or 3 s.
			var ok, refused atomic.Int64
			start := time.Now()
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for range 750 {
						if time.Since(start) > 3*time.Second {
							return
						}
						switch status, _ := lookup(srv.URL+"/room/"+code, nil); status {
						case 404:
							ok.Add(1)
						case 429:
							refused.Add(1)
						}
					}
				})
			}
			wg.Wait()
			took := time.Since(start).Seconds()
			t.Logf(
				"unsigned prober at 15/s: 60 of 60 answered; a flood from 127.0.0.1: %d answered, %d refused in %.1f s (%.0f lookups/s)",
				ok.Load(),
				refused.Load(),
				took,
				float64(ok.Load()+refused.Load())/took,
			)
			if limit := 40 + 20*took + 5; float64(ok.Load()) > limit {
				t.Fatalf("the flood got %d answers in %.1f s, want at most a peer's burst and rate (%.0f)", ok.Load(), took, limit)
			}
		})
	}
}
