package live

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A machine stopped mid-game: its players are closed, and can create rooms
// again at once; rooms on other machines are untouched.
func TestMachineStoppedMidGame(t *testing.T) {
	local(t)
	victim := cluster.inRegion("fra")[0]
	survivor := cluster.inRegion("iad")[0]
	t.Cleanup(func() { cluster.restore(t, "machines/"+victim.ID+"/start") })

	doomedHost := dial(t, "fra", "/?instance="+victim.ID, nil)
	doomed := doomedHost.create("dh")
	doomedGuest := dial(t, "fra", "/?instance="+victim.ID, nil)
	doomedGuest.join(doomed.Room, "dg")

	host := dial(t, "iad", "/?instance="+survivor.ID, nil)
	room := host.create("sh")
	guest := dial(t, "iad", "/"+room.Room, nil)
	guest.join(room.Room, "sg")
	host.expect("peer_joined")

	cluster.control(t, "machines/"+victim.ID+"/stop")
	for name, p := range map[string]*player{"host": doomedHost, "guest": doomedGuest} {
		if code := p.closed(); code != 1001 {
			t.Errorf("%s of the stopped machine closed with %d, want 1001 from the proxy", name, code)
		}
	}
	// The stopped machine is gone from routing: its players start over elsewhere.
	again := dial(t, "fra", "/", nil)
	if m := again.create("dh2"); m.Instance == victim.ID || m.Instance == "" {
		t.Fatalf("new room landed on %q", m.Instance)
	}
	// The other machine's room is untouched.
	for i := range 20 {
		guest.send(map[string]any{"type": "send", "data": i})
		if m := host.expect("message"); string(m.Data) != strconv.Itoa(i) {
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
	doomed.create("k1")
	host := dial(t, "fra", "/?instance="+survivor.ID, nil)
	room := host.create("k2")
	guest := dial(t, "iad", "/"+room.Room, nil)
	guest.join(room.Room, "k3")
	host.expect("peer_joined")

	cluster.control(t, "machines/"+victim.ID+"/kill")
	if code := doomed.closed(); code != -1 {
		t.Errorf("player of a killed machine closed with %d, want a dropped connection (-1)", code)
	}
	guest.send(map[string]any{"type": "send", "data": "still here"})
	if m := host.expect("message"); string(m.Data) != `"still here"` {
		t.Fatalf("host got %+v", m)
	}
}

// With the internal resolver down, routing degrades to local handling
// within the probe limit, never a 5xx.
func TestDNSDownDegradesToLocal(t *testing.T) {
	local(t)
	cluster.control(t, "dns/down")
	t.Cleanup(func() { cluster.restore(t, "dns/up") })
	start := time.Now()
	resp, body := do(t, noRedirect(), cluster.edgeRequest(t, "GET", "fra", "/room/"+codeFor("fra")))
	if resp.StatusCode != 404 || !strings.Contains(body, "Room not found") {
		t.Fatalf("with DNS down: %s %s", resp.Status, body)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("with DNS down the answer took %v, want within the 3 s probe limit", took)
	}
	// A WebSocket to a same-region code still connects and is handled here.
	p := dial(t, "fra", "/"+codeFor("fra"), nil)
	p.send(map[string]any{"type": "create", "clientId": "dns", "maxClients": 2})
	p.expect("created")
}

// A suspended machine takes no new traffic; after resume it serves again.
func TestSuspendAndResume(t *testing.T) {
	local(t)
	m := cluster.inRegion("iad")[0]
	p := dial(t, "iad", "/?instance="+m.ID, nil)
	room := p.create("s1")
	cluster.control(t, "machines/"+m.ID+"/suspend")
	t.Cleanup(func() { cluster.restore(t, "machines/"+m.ID+"/resume") })
	if code := p.closed(); code != 1001 {
		t.Errorf("player of a suspended machine closed with %d, want 1001", code)
	}
	// New players of iad go to the other iad machine.
	q := dial(t, "iad", "/", nil)
	if got := q.create("s2"); got.Instance == m.ID {
		t.Fatal("a suspended machine got a new room")
	}
	cluster.control(t, "machines/"+m.ID+"/resume")
	resp, _ := do(t, noRedirect(), cluster.edgeRequest(t, "GET", "iad", "/health?instance="+m.ID))
	if resp.StatusCode != 200 {
		t.Fatalf("resumed machine: %s", resp.Status)
	}
	_ = room
}

// The dashboard link of every machine is the cluster overview.
func TestOverviewPage(t *testing.T) {
	local(t)
	resp, body := do(t, &http.Client{Timeout: 10 * time.Second}, cluster.edgeRequest(t, "GET", "fra", "/"))
	if resp.StatusCode != 200 || !strings.Contains(body, "flylocal") || !strings.Contains(body, cluster.Machines[0].ID) {
		t.Fatalf("GET / through an edge: %s\n%.300s", resp.Status, body)
	}
}
