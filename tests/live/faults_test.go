package live

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// A machine stopped mid-game: its players are closed, and can create rooms
// again at once; rooms on other machines are untouched.
func TestMachineStoppedMidGame(t *testing.T) {
	local(t)
	victim := cluster.inRegion("fra")[0]
	survivor := cluster.inRegion("iad")[0]
	t.Cleanup(func() { cluster.restore(t, "machines/"+victim.ID+"/start") })

	doomedHost := dial(t, "fra", "/?instance="+victim.ID, nil)
	doomed := create(t, doomedHost, "dh")
	doomedGuest := dial(t, "fra", "/?instance="+victim.ID, nil)
	join(t, doomedGuest, doomed.Room, "dg")

	host := dial(t, "iad", "/?instance="+survivor.ID, nil)
	room := create(t, host, "sh")
	guest := dial(t, "iad", "/"+room.Room, nil)
	join(t, guest, room.Room, "sg")
	host.ExpectType("peer_joined")

	cluster.control(t, "machines/"+victim.ID+"/stop")
	for name, p := range map[string]*testutil.Client{"host": doomedHost, "guest": doomedGuest} {
		if code := p.CloseCode(closeWait); code != 1001 {
			t.Errorf("%s of the stopped machine closed with %d, want 1001 from the proxy", name, code)
		}
	}
	// The stopped machine is gone from routing: its players start over elsewhere.
	again := dial(t, "fra", "/", nil)
	if m := create(t, again, "dh2"); m.Instance == victim.ID || m.Instance == "" {
		t.Fatalf("new room landed on %q", m.Instance)
	}
	// The other machine's room is untouched.
	for i := range 20 {
		guest.SendJSON(map[string]any{"type": "send", "data": i})
		if m := host.ExpectType("message"); string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("message %d arrived as %s", i, m.Data)
		}
	}
}

// kill -9: no close frame, the sockets just end; the other machines' rooms
// are untouched.
func TestMachineKilledMidGame(t *testing.T) {
	local(t)
	victim := cluster.inRegion("iad")[1]
	survivor := cluster.inRegion("fra")[1]
	t.Cleanup(func() { cluster.restore(t, "machines/"+victim.ID+"/start") })

	doomed := dial(t, "iad", "/?instance="+victim.ID, nil)
	lost := create(t, doomed, "k1")
	host := dial(t, "fra", "/?instance="+survivor.ID, nil)
	room := create(t, host, "k2")
	guest := dial(t, "iad", "/"+room.Room, nil)
	join(t, guest, room.Room, "k3")
	host.ExpectType("peer_joined")

	cluster.control(t, "machines/"+victim.ID+"/kill")
	if code := doomed.CloseCode(closeWait); code != -1 {
		t.Errorf("player of a killed machine closed with %d, want a dropped connection (-1)", code)
	}
	// kill -9 gives no chance to hand the room off: it is lost.
	if resp, body := do(t, noRedirect(), cluster.edgeRequest(t, "GET", "iad", "/room/"+lost.Room)); resp.StatusCode != 404 {
		t.Errorf("the killed machine's room after the kill: %s %s", resp.Status, body)
	}
	// Its player starts over at once, on another machine.
	again := dial(t, "iad", "/", nil)
	if m := create(t, again, "k4"); m.Instance == victim.ID || m.Instance == "" {
		t.Fatalf("new room after the kill landed on %q", m.Instance)
	}
	guest.SendJSON(map[string]any{"type": "send", "data": "still here"})
	if m := host.ExpectType("message"); string(m.Data) != `"still here"` {
		t.Fatalf("host got %+v", m)
	}
}

// With the internal resolver down (no answer) or slow (answers after the
// probe limit), routing degrades to local handling within the probe limit,
// never a 5xx.
func TestDNSTroubleDegradesToLocal(t *testing.T) {
	local(t)
	for _, mode := range []string{"down", "slow"} {
		t.Run(mode, func(t *testing.T) {
			cluster.control(t, "dns/"+mode)
			t.Cleanup(func() { cluster.restore(t, "dns/up") })
			start := time.Now()
			resp, body := do(t, noRedirect(), cluster.edgeRequest(t, "GET", "fra", "/room/"+codeFor("fra")))
			if resp.StatusCode != 404 || !strings.Contains(body, "Room not found") {
				t.Fatalf("with DNS %s: %s %s", mode, resp.Status, body)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("with DNS %s the answer took %v, want within the 3 s probe limit", mode, took)
			}
			// A WebSocket to a same-region code still connects and is handled here.
			p := dial(t, "fra", "/"+codeFor("fra"), nil)
			p.SendJSON(map[string]any{"type": "create", "clientId": "dns-" + mode, "maxClients": 2})
			p.ExpectType("created")
		})
	}
}

// A suspended machine takes no new traffic; after resume it serves again.
func TestSuspendAndResume(t *testing.T) {
	local(t)
	m := cluster.inRegion("iad")[0]
	p := dial(t, "iad", "/?instance="+m.ID, nil)
	room := create(t, p, "s1")
	cluster.control(t, "machines/"+m.ID+"/suspend")
	t.Cleanup(func() { cluster.restore(t, "machines/"+m.ID+"/resume") })
	if code := p.CloseCode(closeWait); code != 1001 {
		t.Errorf("player of a suspended machine closed with %d, want 1001", code)
	}
	// New players of iad go to the other iad machine.
	q := dial(t, "iad", "/", nil)
	if got := create(t, q, "s2"); got.Instance == m.ID {
		t.Fatal("a suspended machine got a new room")
	}
	cluster.control(t, "machines/"+m.ID+"/resume")
	resp, _ := do(t, noRedirect(), cluster.edgeRequest(t, "GET", "iad", "/health?instance="+m.ID))
	if resp.StatusCode != 200 {
		t.Fatalf("resumed machine: %s", resp.Status)
	}
	// The proxy's close frames reached the machine as a dropped socket: a
	// blip, so the emptied room is kept for the host grace (README). Its
	// host comes back and leaves cleanly, which ends it, so the machine
	// can drain in the tests that follow.
	back := dial(t, "iad", "/?instance="+m.ID, nil)
	if j := join(t, back, room.Room, "s1"); j.Index != 0 {
		t.Fatalf("the host rejoined its kept room at slot %d", j.Index)
	}
	back.Leave()
	testutil.Eventually(t, 5*time.Second, "the room to end", func() bool {
		resp, _ := do(t, noRedirect(), cluster.edgeRequest(t, "GET", "iad", "/room/"+room.Room))
		return resp.StatusCode == 404
	})
}

// The dashboard link of every machine is the cluster overview.
func TestOverviewPage(t *testing.T) {
	local(t)
	resp, body := do(t, &http.Client{Timeout: 10 * time.Second}, cluster.edgeRequest(t, "GET", "fra", "/"))
	if resp.StatusCode != 200 || !strings.Contains(body, "flylocal") || !strings.Contains(body, cluster.Machines[0].ID) {
		t.Fatalf("GET / through an edge: %s\n%.300s", resp.Status, body)
	}
}

type machineState struct {
	ID, State, Exit string
	PID             int
}

func machineStates(t *testing.T) map[string]machineState {
	t.Helper()
	resp, err := http.Get(cluster.Edges[cluster.regions()[0]] + "/.flylocal/machines")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []machineState
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	out := map[string]machineState{}
	for _, m := range list {
		out[m.ID] = m
	}
	return out
}

// A rolling deploy without the proxy's close frames: each machine in turn
// gets the kill signal with a live room on it. New rooms land elsewhere,
// the room moves to a sibling (its members get 1012 and rejoin their own
// slots by code), the machine exits 0 within seconds, and no client ever
// sees a 5xx.
func TestRollingDeploy(t *testing.T) {
	local(t)
	stopPoll := make(chan struct{})
	var bad []string
	var badMu sync.Mutex
	var codesMu sync.Mutex
	var codes []string
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		client := &http.Client{
			Timeout:       20 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		for i := 0; ; i++ {
			select {
			case <-stopPoll:
				return
			case <-time.After(30 * time.Millisecond):
			}
			codesMu.Lock()
			// Only live rooms: polling codes that do not exist would walk
			// the code space and, rightly, lock this address out.
			paths := []string{"/health"}
			for _, c := range codes {
				paths = append(paths, "/room/"+c)
			}
			codesMu.Unlock()
			for _, region := range cluster.regions() {
				for _, p := range paths {
					resp, err := client.Get(cluster.Edges[region] + p)
					if err != nil {
						badMu.Lock()
						bad = append(bad, fmt.Sprintf("GET %s via %s: %v", p, region, err))
						badMu.Unlock()
						continue
					}
					resp.Body.Close()
					if resp.StatusCode >= 500 {
						badMu.Lock()
						bad = append(bad, fmt.Sprintf("GET %s via %s: %s", p, region, resp.Status))
						badMu.Unlock()
					}
				}
			}
		}
	}()
	for i, m := range cluster.Machines {
		t.Cleanup(func() { cluster.restore(t, "machines/"+m.ID+"/start") })
		host := dial(t, m.Region, "/?instance="+m.ID, nil)
		room := create(t, host, fmt.Sprint("rd-h", i))
		guest := dial(t, m.Region, "/?instance="+m.ID, nil)
		join(t, guest, room.Room, fmt.Sprint("rd-g", i))
		host.ExpectType("peer_joined")
		codesMu.Lock()
		codes = append(codes, room.Room)
		codesMu.Unlock()

		start := time.Now()
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			cluster.post("machines/" + m.ID + "/stop?close_frames=0")
		}()
		for name, p := range map[string]*testutil.Client{"host": host, "guest": guest} {
			if code := p.CloseCode(closeWait); code != 1012 {
				t.Fatalf("%s on %s closed with %d, want 1012 once the room moved", name, m.ID, code)
			}
		}
		// New rooms land elsewhere.
		p := dial(t, m.Region, "/", nil)
		if got := create(t, p, fmt.Sprint("rd-new", i)); got.Instance == m.ID {
			t.Fatalf("a new room landed on the stopping machine %s", m.ID)
		}
		p.Leave()
		// The room goes on where it moved.
		h2, _ := rejoinRaw(t, m.Region, "/"+room.Room, room.Room, fmt.Sprint("rd-h", i))
		g2, joined := rejoinRaw(t, m.Region, "/"+room.Room, room.Room, fmt.Sprint("rd-g", i))
		if joined.Index != 1 {
			t.Fatalf("the guest came back as slot %d", joined.Index)
		}
		h2.ExpectType("peer_joined")
		for n := range 10 {
			g2.SendJSON(map[string]any{"type": "send", "data": n})
			if got := h2.ExpectType("message"); string(got.Data) != strconv.Itoa(n) {
				t.Fatalf("moved room: message %d arrived as %s", n, got.Data)
			}
		}
		select {
		case <-stopped:
		case <-time.After(30 * time.Second):
			t.Fatalf("machine %s did not stop", m.ID)
		}
		if got := machineStates(t)[m.ID].Exit; got != "exit status 0" || time.Since(start) > 4*time.Second {
			t.Errorf("machine %s ended with %q after %v, want exit status 0 in seconds", m.ID, got, time.Since(start))
		}
		codesMu.Lock()
		codes = codes[:len(codes)-1] // the room ends now
		codesMu.Unlock()
		h2.Leave()
		g2.Leave()
		cluster.control(t, "machines/"+m.ID+"/start")
	}
	close(stopPoll)
	<-polled
	badMu.Lock()
	defer badMu.Unlock()
	for _, b := range bad {
		t.Error(b)
	}
}

// A peer that hangs on the probe (a frozen process DNS still lists): the
// probing machine answers locally within the probe limit.
func TestHangingPeerDegradesToLocal(t *testing.T) {
	local(t)
	fra := cluster.inRegion("fra")
	// Tests before this one stop and start machines, and may spend fra[0]'s
	// probe rounds (20 a second, a burst of 40). fra[0] keeps a DNS answer
	// for its TTL (5 s): one from when fra[1] was stopped lists no peer to
	// hang on, and a probe over the bound is answered at once. Either way
	// the hang would never be seen: let both expire first.
	time.Sleep(5200 * time.Millisecond) // the TTLs of other processes' caches: nothing to wait on but time
	cluster.control(t, "machines/"+fra[1].ID+"/freeze")
	t.Cleanup(func() { cluster.restore(t, "machines/"+fra[1].ID+"/thaw") })
	req := cluster.edgeRequest(t, "GET", "fra", "/room/"+codeFor("fra"))
	req.Header.Set("Fly-Force-Instance-Id", fra[0].ID)
	start := time.Now()
	resp, _ := do(t, noRedirect(), req)
	if resp.StatusCode != 404 || resp.Header.Get("X-Instance-Id") != fra[0].ID {
		t.Fatalf("with a hanging peer: %s from %q", resp.Status, resp.Header.Get("X-Instance-Id"))
	}
	if took := time.Since(start); took < 2*time.Second || took > 6*time.Second {
		t.Fatalf("answered in %v: want about the 3 s probe limit (the peer really hung)", took)
	}
}

// The local cluster's `fly deploy`: POST /.flylocal/deploy replaces every
// machine in turn (close frames, the kill signal, exit, a restart, health)
// while the edges keep answering, and reports its progress.
func TestDeployThroughTheControlAPI(t *testing.T) {
	local(t)
	before := machineStates(t)
	resp, err := cluster.postControl("deploy")
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("POST deploy: %v %v", resp, err)
	}
	resp.Body.Close()
	if again, _ := cluster.postControl("deploy"); again == nil || again.StatusCode != 409 {
		t.Fatalf("a second deploy while one runs: %v", again)
	} else {
		again.Body.Close()
	}
	waitDeploy(t, func() {
		// The edges keep answering while machines are replaced.
		for _, region := range cluster.regions() {
			h, err := http.Get(cluster.Edges[region] + "/health")
			if err != nil || h.StatusCode != 200 {
				t.Fatalf("GET /health via %s during the deploy: %v %v", region, h, err)
			}
			h.Body.Close()
		}
	})
	after := machineStates(t)
	for id, m := range after {
		if m.State != "started" || m.PID == before[id].PID {
			t.Errorf("machine %s after the deploy: %s, pid %d (was %d)", id, m.State, m.PID, before[id].PID)
		}
	}
}
