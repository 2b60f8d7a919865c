package live

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/client"
	"github.com/party-sockets/party-sockets/internal/testutil"
)

// gamer is one Go client of a game under deploy, and what it lived through.
type gamer struct {
	c     *client.Client
	index int

	mu      sync.Mutex
	state   string          // the data of the last state seen
	lostAt  time.Time       // when the socket ended, zero while connected
	rejoins []time.Duration // from each drop to joined again
	final   *client.Closed  // set if the client stopped
}

// watch reads the client's events until it stops.
func (g *gamer) watch() {
	for ev := range g.c.Events() {
		g.mu.Lock()
		switch ev := ev.(type) {
		case client.Reconnecting:
			if g.lostAt.IsZero() {
				g.lostAt = time.Now()
			}
		case client.Joined:
			if !g.lostAt.IsZero() {
				g.rejoins = append(g.rejoins, time.Since(g.lostAt))
				g.lostAt = time.Time{}
			}
		case client.State:
			g.state = string(ev.Data)
		case client.Closed:
			if ev.Code != 1000 {
				g.final = &ev
			}
		}
		g.mu.Unlock()
	}
}

// The rolling deploy mid-game: 20 rooms on the 2×2 cluster, each a
// host and 3 players on the Go client, while hosts set state and players
// send messages, the cluster rolls every machine (close frames, signal,
// exit, restart, health). Every room survives with its code, every member
// is back in its own slot with the latest state, and no client stops.
func TestRollingDeployMidGame(t *testing.T) {
	local(t)
	ctx := t.Context()
	const roomsN, playersN = 20, 3
	regions := cluster.regions()
	opts := func(region string) client.Options {
		return client.Options{URL: cluster.Edges[region], Header: cluster.edgeHeader(region), MaxAttempts: -1}
	}
	var hosts []*gamer
	var players [][]*gamer
	var all []*gamer
	for i := range roomsN {
		region := regions[i%len(regions)]
		h, err := client.Create(ctx, opts(region), 8, "")
		if err != nil {
			t.Fatalf("room %d: %v", i, err)
		}
		host := &gamer{c: h}
		var ps []*gamer
		for j := range playersN {
			p, err := client.Join(ctx, opts(regions[(i+j+1)%len(regions)]), h.Room())
			if err != nil {
				t.Fatalf("room %d player %d: %v", i, j, err)
			}
			ps = append(ps, &gamer{c: p, index: p.Index()})
		}
		hosts, players = append(hosts, host), append(players, ps)
		all = append(append(all, host), ps...)
	}
	for _, g := range all {
		go g.watch()
		t.Cleanup(func() { g.c.Close() })
	}
	codes := make([]string, roomsN)
	for i, h := range hosts {
		codes[i] = h.c.Room()
	}
	spread := map[string]int{}
	for _, h := range hosts {
		spread[h.c.Instance()]++
	}
	t.Logf("20 rooms over the machines: %v", spread)

	// The game goes on: hosts set a numbered state, players send.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	lastSet := make([]int, roomsN)
	for i, h := range hosts {
		wg.Go(func() {
			for round := 1; ; round++ {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if h.c.SetState(ctx, map[string]int{"round": round}) == nil {
					lastSet[i] = round
				}
			}
		})
		for _, p := range players[i] {
			wg.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					case <-time.After(150 * time.Millisecond):
					}
					p.c.Send(ctx, n)
				}
			})
		}
	}

	deploy(t)
	// The last machine's members were closed before it exited: wait until
	// every member is back in a room.
	testutil.Eventually(t, 10*time.Second, "every member to rejoin after the deploy", func() bool {
		for _, g := range all {
			g.mu.Lock()
			away := !g.lostAt.IsZero() || g.final != nil
			g.mu.Unlock()
			if away {
				return false
			}
		}
		return true
	})
	close(stop)
	wg.Wait()
	// One more state on a settled game: every player must see it.
	for i, h := range hosts {
		lastSet[i]++
		if err := h.c.SetState(ctx, map[string]int{"round": lastSet[i]}); err != nil {
			t.Fatalf("room %s: the host cannot set state after the deploy: %v", codes[i], err)
		}
	}

	var rejoins []time.Duration
	for i, code := range codes {
		want := fmt.Sprintf(`{"round":%d}`, lastSet[i])
		testutil.Eventually(t, 10*time.Second, "room "+code+" to settle", func() bool {
			for _, p := range players[i] {
				p.mu.Lock()
				s := p.state
				p.mu.Unlock()
				if s != want {
					return false
				}
			}
			return true
		})
		resp, body := do(t, noRedirect(), cluster.edgeRequest(t, "GET", regions[i%2], "/room/"+code))
		var info struct{ Clients int }
		json.Unmarshal([]byte(body), &info)
		if resp.StatusCode != 200 || info.Clients != 1+playersN {
			t.Errorf("room %s after the deploy: %s %s", code, resp.Status, body)
		}
		for _, g := range append([]*gamer{hosts[i]}, players[i]...) {
			g.mu.Lock()
			if g.final != nil {
				t.Errorf("room %s slot %d: the client stopped: %+v", code, g.index, *g.final)
			}
			if got := g.c.Index(); got != g.index || g.c.Room() != code {
				t.Errorf("room %s: slot %d came back as %s/%d", code, g.index, g.c.Room(), got)
			}
			rejoins = append(rejoins, g.rejoins...)
			g.mu.Unlock()
		}
	}
	if len(rejoins) < roomsN*(1+playersN) {
		t.Errorf("only %d rejoins for %d clients: the deploy did not move every room", len(rejoins), roomsN*(1+playersN))
	}
	slices.Sort(rejoins)
	pct := func(p float64) time.Duration { return rejoins[int(p*float64(len(rejoins)-1))] }
	t.Logf(
		"%d rejoins, from close to joined again: p50 %v, p99 %v, max %v (aim: p99 under 3 s)",
		len(
			rejoins,
		),
		pct(0.5).Round(time.Millisecond),
		pct(0.99).Round(time.Millisecond),
		rejoins[len(rejoins)-1].Round(time.Millisecond),
	)
	sent := 0.0
	for _, m := range cluster.Machines {
		sent += machineMetric(t, m, "party_sockets_handoff_rooms_total") // sent + received + failed, since each restart
	}
	t.Logf("hand-off counters on the machines now (since their restarts): %v", sent)
}

// deploy runs the local cluster's rolling deploy and waits for its end.
func deploy(t *testing.T) {
	t.Helper()
	resp, err := cluster.postControl("deploy")
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("POST deploy: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, line := range waitDeploy(t, nil) {
		t.Log("deploy: " + line)
	}
}

// waitDeploy polls the deploy under way until it ends, calling during on
// every poll (nil: nothing), fails the test unless every machine was
// replaced, and returns the deploy's log.
func waitDeploy(t *testing.T, during func()) []string {
	t.Helper()
	edge := cluster.Edges[cluster.regions()[0]]
	var st struct {
		Finished bool
		Error    string
		Done     []string
		Log      []string
	}
	testutil.Eventually(t, 2*time.Minute, "the deploy to finish", func() bool {
		if during != nil {
			during()
		}
		r, err := http.Get(edge + "/.flylocal/deploy")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		json.NewDecoder(r.Body).Decode(&st)
		return st.Finished
	})
	if st.Error != "" || len(st.Done) != len(cluster.Machines) {
		t.Fatalf(
			"deploy: error %q, replaced %v of %d machines\n%s",
			st.Error,
			st.Done,
			len(cluster.Machines),
			strings.Join(st.Log, "\n"),
		)
	}
	return st.Log
}

// rejoinRaw rejoins code as clientID over a raw socket through region's
// edge and path, retrying "Room not found" for a few seconds as our
// clients do (the room may be on its way).
func rejoinRaw(t *testing.T, region, path, code, clientID string) (*testutil.Client, testutil.Frame) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(10 * time.Second)
	for try := 1; ; try++ {
		p := dial(t, region, path, nil)
		p.SendJSON(map[string]any{"type": "join", "room": code, "clientId": clientID})
		m, err := p.Next()
		if err == nil && m.Type == "joined" {
			t.Logf("rejoined %s via %s%s after %d tries, %v", code, region, path, try, time.Since(start).Round(time.Millisecond))
			return p, m
		}
		p.Leave()
		if err != nil || m.Message != "Room not found" || time.Now().After(deadline) {
			t.Fatalf("rejoin %s via %s%s: %+v %v", code, region, path, m, err)
		}
		time.Sleep(200 * time.Millisecond) // a client's pace between rejoins: part of the scenario
	}
}

// Stopped without the proxy's close frames, a machine's live sockets get
// 1012 once their room has moved. A client that keeps its old pin (as
// clients of the relay we replace do) still lands on the new holder:
// whether a replay to a stopping machine fails over (Fly's documented
// behaviour for an unreachable machine) or is delivered, and so replayed
// on by the old machine to the room's new holder. The machine exits in
// seconds, not at its kill timeout.
func TestHandOffFollowsAnOldPin(t *testing.T) {
	local(t)
	for _, delivered := range []string{"0", "1"} {
		t.Run("stopping_replays="+delivered, func(t *testing.T) {
			cluster.control(t, "settings?stopping_replays="+delivered)
			t.Cleanup(func() { cluster.restore(t, "settings?stopping_replays=0") })
			victim := cluster.inRegion("iad")[0]
			t.Cleanup(func() { cluster.restore(t, "machines/"+victim.ID+"/start") })
			pin := "/?instance=" + victim.ID
			host := dial(t, "iad", pin, nil)
			room := create(t, host, "pin-host")
			guest := dial(t, "fra", pin, nil)
			join(t, guest, room.Room, "pin-guest")
			host.ExpectType("peer_joined")
			host.SendJSON(map[string]any{"type": "set_state", "data": map[string]string{"phase": "vote"}})
			guest.ExpectType("state")

			// A socket that never reads keeps the stopping machine up for
			// a moment (its close frame is never answered).
			dial(t, "iad", pin, nil)

			start := time.Now()
			stopped := make(chan struct{})
			go func() { defer close(stopped); cluster.post("machines/" + victim.ID + "/stop?close_frames=0") }()
			for name, p := range map[string]*testutil.Client{"host": host, "guest": guest} {
				if code := p.CloseCode(closeWait); code != 1012 {
					t.Fatalf("%s closed with %d, want 1012 once the room moved", name, code)
				}
			}
			// While it still runs, a request pinned to it is either
			// replayed on by it to the new holder (a replay to a stopping
			// machine delivered) or falls back (302 without the pin).
			resp, _ := do(t, noRedirect(), cluster.edgeRequest(t, "GET", "fra", "/room/"+room.Room+"?instance="+victim.ID))
			holder := resp.Header.Get("X-Instance-Id")
			switch {
			case delivered == "1" && (resp.StatusCode != 200 || holder == victim.ID || cluster.machine(holder).Region != "iad"):
				t.Errorf("pinned GET while the old machine hands off: %s from %q, want 200 from the new holder", resp.Status, holder)
			case delivered == "0" && resp.StatusCode != 302:
				t.Errorf("pinned GET to a stopping machine: %s, want the fallback's 302", resp.Status)
			}
			h2, joined := rejoinRaw(t, "iad", "/"+room.Room+"?instance="+victim.ID, room.Room, "pin-host")
			if joined.Index != 0 {
				t.Fatalf("the host came back as slot %d", joined.Index)
			}
			if st := h2.ExpectType("state"); string(st.Data) != `{"phase":"vote"}` {
				t.Fatalf("state after the move: %s", st.Data)
			}
			g2, joined := rejoinRaw(t, "fra", "/"+room.Room+"?instance="+victim.ID, room.Room, "pin-guest")
			if joined.Index != 1 || !slices.Contains(joined.Peers, 0) {
				t.Fatalf("the guest came back as %+v", joined)
			}
			h2.ExpectType("peer_joined")
			g2.SendJSON(map[string]any{"type": "send", "data": "after"})
			if m := h2.ExpectType("message"); string(m.Data) != `"after"` {
				t.Fatalf("message after the move: %+v", m)
			}
			<-stopped
			if exit := machineStates(t)[victim.ID].Exit; exit != "exit status 0" {
				t.Errorf("the stopped machine ended with %q", exit)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("stopping took %v: the machine waited instead of handing off", took)
			}
		})
	}
}

// A region's only machine: stopped, its rooms go to another region, and a
// join by code reaches them through any edge; when a machine of the region
// comes back (the rooms stay where they are), joins still reach them.
func TestHandOffFromARegionsOnlyMachine(t *testing.T) {
	local(t)
	fra := cluster.inRegion("fra")
	for _, m := range fra {
		t.Cleanup(func() { cluster.restore(t, "machines/"+m.ID+"/start") })
	}
	cluster.control(t, "machines/"+fra[1].ID+"/stop")
	host := dial(t, "fra", "/", nil)
	room := create(t, host, "only-host")
	if room.Instance != fra[0].ID {
		t.Fatalf("the room landed on %s, not fra's only machine", room.Instance)
	}
	guest := dial(t, "iad", "/"+room.Room, nil)
	join(t, guest, room.Room, "only-guest")
	host.ExpectType("peer_joined")

	cluster.control(t, "machines/"+fra[0].ID+"/stop")
	host.CloseCode(closeWait)
	guest.CloseCode(closeWait)
	for _, region := range []string{"fra", "iad"} {
		p, joined := rejoinRaw(t, region, "/"+room.Room, room.Room, "only-"+map[string]string{"fra": "host", "iad": "guest"}[region])
		if want := map[string]int{"fra": 0, "iad": 1}[region]; joined.Index != want {
			t.Fatalf("via %s: slot %d, want %d", region, joined.Index, want)
		}
		t.Cleanup(func() { p.Leave() })
	}
	resp, _ := do(t, noRedirect(), cluster.edgeRequest(t, "GET", "fra", "/room/"+room.Room))
	holder := resp.Header.Get("X-Instance-Id")
	if resp.StatusCode != 200 || cluster.machine(holder).Region != "iad" {
		t.Fatalf("GET /room via fra: %s from %q", resp.Status, holder)
	}
	// fra is back with one machine that does not hold the room.
	cluster.control(t, "machines/"+fra[0].ID+"/start")
	resp, _ = do(t, noRedirect(), cluster.edgeRequest(t, "GET", "fra", "/room/"+room.Room))
	if resp.StatusCode != 200 || resp.Header.Get("X-Instance-Id") != holder {
		t.Fatalf("GET /room via fra with fra back: %s from %q", resp.Status, resp.Header.Get("X-Instance-Id"))
	}
	late := dial(t, "fra", "/"+room.Room, nil)
	if m := join(t, late, room.Room, "only-late"); m.Index != 2 {
		t.Fatalf("a new player via fra got slot %d", m.Index)
	}
}
