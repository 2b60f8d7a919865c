package abuse

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/regions"
)

// Review finding 3: a process on the private network sends Fly's proxy
// headers itself, a fresh Fly-Client-IP each time, and escapes every
// per-address limit. With TRUSTED_PROXIES set it counts against its own
// socket address; the proxy's requests (from the trusted range) still
// count by Fly-Client-IP.
func TestTrustedProxiesHoldForgers(t *testing.T) {
	srv := testutil.Start(t, flyEnv("MAX_CONNS_PER_IP=5", "TRUSTED_PROXIES=127.0.0.60/32")...)
	dials := func(src string) (ok, refused int) {
		for i := range 10 {
			hdr := via(fmt.Sprintf("10.9.%d.%d", len(src), i+1))
			if status, err := dialWSFrom(t, srv.URL, src, hdr); err == nil {
				ok++
			} else if status == 429 {
				refused++
			}
		}
		return ok, refused
	}
	forgerOK, forgerRefused := dials("127.0.0.9")
	proxyOK, _ := dials("127.0.0.60")
	t.Logf("10 upgrades with fresh forged Fly-Client-IPs: from an untrusted socket %d taken, %d refused (429); "+
		"from the trusted proxy %d taken", forgerOK, forgerRefused, proxyOK)
	if forgerOK != 5 || forgerRefused != 5 {
		t.Errorf("from an untrusted socket: %d taken, %d refused; want MAX_CONNS_PER_IP's 5 and 5", forgerOK, forgerRefused)
	}
	if proxyOK != 10 {
		t.Errorf("from the trusted proxy: %d of 10 taken, want each its own address's", proxyOK)
	}
}

// dialWSFrom dials a WebSocket from the loopback address src with hdr,
// and returns the refusal's status (101 when it was let in).
func dialWSFrom(t *testing.T, url, src string, hdr http.Header) (int, error) {
	_, resp, err := testutil.Dialer{Header: hdr, LocalAddr: src}.TryDial(t, url)
	if err != nil {
		if resp != nil {
			return resp.StatusCode, err
		}
		return 0, err
	}
	return 101, nil
}

// Review finding 3 (probe rounds): one private-network process looked up
// 40 random codes a second, each with a fresh forged Fly-Client-IP: every
// one is a light new address, so it took the machine's probe rounds, and
// players' joins by code of rooms held on a sibling found them 4/40 (20/20
// without). Now a holder found is remembered for 30 s (a miss for 2 s);
// with no round left, a code the region's machines list (signed: with
// HANDOFF_SECRET) is found with no round; and with TRUSTED_PROXIES set
// the forger is one address, whose lookups are never routed. In the first
// two the players' first joins come during the attack, once the machine's
// rounds are gone; with neither, the rooms were found once before it (a
// game's first player), and must stay found.
func TestSpoofedProbeFloodSparesPlayers(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  []string
		warm bool // each game found once before the flood
	}{
		{"with HANDOFF_SECRET: listings", []string{"HANDOFF_SECRET=" + secret32}, false},
		{"with TRUSTED_PROXIES: the forger is one address", []string{"TRUSTED_PROXIES=127.0.0.1/32"}, false},
		{"neither: found holders are remembered", nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			joined := spoofedProbeFlood(t, tt.env, tt.warm)
			found, lost := 0, 0 // joins that found their room; that did not, after their game's was found
			var gameFound [10]bool
			for i, ok := range joined {
				switch {
				case ok:
					found++
					gameFound[i%10] = true
				case gameFound[i%10]:
					lost++
				}
			}
			t.Logf("players' joins by code during 40 spoofed lookups a second: %d of %d found their room; %d failed after "+
				"their game's room was found", found, len(joined), lost)
			if found < len(joined)*95/100 || lost > 0 {
				t.Errorf("%d of %d joins by code found their room (want at least 95%%), %d failed after their room was found "+
					"(want none)", found, len(joined), lost)
			}
		})
	}
}

// spoofedProbeFlood runs the flood against machine a while 10 games live
// on its sibling b, and reports, for each of 40 players' joins by code
// through a (game i%10), whether it was sent on to b. warm: each game
// was joined through a once before the flood.
func spoofedProbeFlood(t *testing.T, env []string, warm bool) []bool {
	fly := testutil.StartFlyDNS(t, "app")
	port := strconv.Itoa(testutil.FreePort(t))
	const idA, idB = "0a1b2c3d4e5fa1", "0a1b2c3d4e5fb2"
	a := flyMachine(t, fly, idA, "fra", "127.0.0.2", port, env...)
	b := flyMachine(t, fly, idB, "fra", "127.0.0.3", port, env...)
	var games []string
	for i := range 10 {
		m, _, err := testutil.Dialer{Header: via("192.0.2.1")}.TryDial(t, b.URL)
		if err != nil {
			t.Fatal(err)
		}
		games = append(games, m.Create(fmt.Sprintf("game-%d", i), 8))
		if warm && !joinReplayed(t, a.URL+"/"+games[i], "203.0.114.1", idB) {
			t.Fatalf("before the flood, a join of game %d was not sent on to its holder", i)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var sent, refused atomic.Int64
	wg.Go(func() { spoofLookups(ctx, &wg, a.URL, &sent, &refused) })
	testutil.Eventually(t, 10*time.Second, "the flood to spend machine a's probe rounds, or be refused", func() bool {
		return a.Metric(t, "party_sockets_probes_total", `outcome="limited"`) > 0 || refused.Load() > 0
	})
	joined := make([]bool, 40)
	for i := range joined {
		// Players arrive over about 10 s, at no fixed phase of the
		// flood's 25 ms (a ticker would meet the same phase every time).
		time.Sleep(time.Duration(125+rand.IntN(250)) * time.Millisecond)
		joined[i] = joinReplayed(t, a.URL+"/"+games[i%len(games)], fmt.Sprintf("203.0.113.%d", i+1), idB)
	}
	t.Logf("attacker lookups %d, %d refused (429); machine a's rounds limited %v, listed %v, found %v, remembered %v",
		sent.Load(), refused.Load(), a.Metric(t, "party_sockets_probes_total", `outcome="limited"`),
		a.Metric(t, "party_sockets_probes_total", `outcome="listed"`), a.Metric(t, "party_sockets_probes_total", `outcome="found"`),
		a.Metric(t, "party_sockets_probes_total", `outcome="cached_found"`))
	return joined
}

// spoofLookups looks up 40 random codes of fra a second at url, from
// 127.0.0.9, each with a fresh forged Fly-Client-IP, until ctx ends (at
// most 1,000).
func spoofLookups(ctx context.Context, wg *sync.WaitGroup, url string, sent, refused *atomic.Int64) {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}}
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{DialContext: dialer.DialContext, MaxIdleConnsPerHost: 64},
	}
	gen := regions.NewGenerator("fra", nil)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for i := range 1000 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		code, _ := gen.Next()
		req, _ := http.NewRequestWithContext(ctx, "GET", url+"/room/"+code, nil)
		req.Header = via(fmt.Sprintf("10.%d.%d.%d", 1+i>>16, i>>8&255, i&255))
		wg.Go(func() {
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
				sent.Add(1)
				if resp.StatusCode == 429 {
					refused.Add(1)
				}
			}
		})
	}
}
