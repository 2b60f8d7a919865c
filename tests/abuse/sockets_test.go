package abuse

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/server"
)

// Issue 20 review, finding 5 (bin-conns -addrs 75 -per 200): a socket's
// own memory was not in the budget, and off Fly nothing but
// MAX_CONNS_PER_IP bounded how many there were: 14,925 live joined
// sockets from 75 addresses held 210 MB of RSS against 1.9 MB counted.
// Here 75 addresses open 40 joined, idle sockets each (3,000, past the
// default MAX_CONNS of a 50 MiB budget, 1,600); players who were
// connected before keep playing, creating and joining.
//
// On the code before the fix: all 3,000 accepted, 15.4 KB of RSS each
// (RSS 14 → 61 MB) and 0.4 MB of budget for all of them. After it: 1,588
// accepted (16.3 KB of RSS each, ConnBytes 16 KiB counted), then 503
// "Server busy"; budget peak 51%, peak RSS 40 MB; the players connected
// before create 5/5 and join 5/5.
func TestSocketsCostTheBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("3,000 sockets")
	}
	const addrs, per = 75, 40
	srv := testutil.Start(t, "GOMEMLIMIT=200MiB")
	seen := watch(t, srv)
	pl := play(t, srv, 1, 1, 3)
	var ready []*peer // players connected before, who create and join later
	for i := range 10 {
		p, err := dialPeer(srv.Addr, addr16(4, i), 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.close)
		ready = append(ready, p)
	}
	seen.fresh(t, srv)
	rss0 := srv.Status(t, "VmRSS")
	var mu sync.Mutex
	var socks []*peer
	var refused, other, crowded, gone atomic.Int64
	var why error
	keep := func(p *peer, err error) {
		var r errRefused
		switch {
		case err == nil:
			p.readAll(nil, func(code int) {
				// At MAX_CONNS an address with fewer sockets takes one of
				// the address holding the most (closed with 1013).
				if gone.Add(1); code == 1013 {
					crowded.Add(1)
				}
			})
			mu.Lock()
			socks = append(socks, p)
			mu.Unlock()
		case errors.As(err, &r) && r.status == 503 && r.body == `{"error":"Server busy"}`:
			refused.Add(1)
		case strings.Contains(err.Error(), "1013"): // made room for another address before its joined
			crowded.Add(1)
		default:
			if other.Add(1) == 1 {
				why = err
			}
		}
	}
	parallel(addrs, 16, func(a int) {
		src := addr16(10, a)
		h, code, err := peerCreate(srv.Addr, src, fmt.Sprintf("idle-host-%d", a), 1000)
		keep(h, err)
		if err != nil {
			return
		}
		for i := 1; i < per; i++ {
			err := patiently(func() error {
				p, err := peerJoin(srv.Addr, src, code, fmt.Sprintf("idle-%d-%d", a, i), 0)
				if err == nil {
					keep(p, nil)
				}
				return err
			})
			if err != nil {
				keep(nil, err)
			}
		}
	})
	t.Cleanup(func() {
		for _, p := range socks {
			p.close()
		}
	})
	seen.fresh(t, srv)
	rss := srv.Status(t, "VmRSS")
	used, limit, _ := seen.read()
	created, joined := 0, 0
	for i, p := range ready {
		if i%2 == 0 {
			p.send(fmt.Sprintf(`{"type":"create","clientId":"ready-%d","maxClients":8}`, i))
			if _, err := p.expect("created", 5e9); err == nil {
				created++
			}
			continue
		}
		p.send(fmt.Sprintf(`{"type":"join","clientId":"ready-%d","room":%q}`, i, pl.code))
		if _, err := p.expect("joined", 5e9); err == nil {
			joined++
		}
	}
	ended, how := pl.finish()
	memoryBounds(t, srv, seen)
	accepted := len(socks)
	cap := server.DefaultMaxConns(int64(limit))
	t.Logf("%d addresses × %d: %d sockets accepted (%d of them ended since, %d closed with 1013 to make room for an address "+
		"with fewer), %d refused with 503 Server busy, %d otherwise (%v); "+
		"RSS %.1f → %.1f MB: %.1f KB a live socket, %d B counted each (ConnBytes); budget %.1f MB; MAX_CONNS %d; "+
		"players connected before: creates %d/5, joins %d/5; bystander sockets ended %d (%s)",
		addrs, per, accepted, gone.Load(), crowded.Load(), refused.Load(), other.Load(), why, float64(rss0)/1e6, float64(rss)/1e6,
		float64(rss-rss0)/float64(int64(accepted)-gone.Load())/1e3, server.ConnBytes, used/1e6, cap, created, joined, ended, how)
	if live := int64(accepted) - gone.Load() + int64(len(ready)+2); live > cap {
		t.Errorf("%d live sockets, over MAX_CONNS %d", live, cap)
	}
	if refused.Load() == 0 || other.Load() > 0 {
		t.Errorf("past MAX_CONNS: %d upgrades refused with 503 Server busy, %d otherwise (%v)", refused.Load(), other.Load(), why)
	}
	if created < 5 || joined < 5 || ended > 0 {
		t.Errorf("players connected before: creates %d/5, joins %d/5; bystanders ended %d (%s)", created, joined, ended, how)
	}
}
