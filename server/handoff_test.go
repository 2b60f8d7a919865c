package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/regions"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/routing"
)

// machineSet is a few real servers on 127.0.0.N, all on one port, with
// Fly's internal DNS: siblings that can hand rooms to each other.
type machineSet struct {
	t    *testing.T
	dns  *testutil.FlyDNS
	port int
	slow time.Duration // each machine takes this long to answer a hand-off
}

type machineUnderTest struct {
	*Server
	id, region, url string
}

func newMachineSet(t *testing.T) *machineSet {
	return &machineSet{t: t, dns: testutil.StartFlyDNS(t, "app"), port: testutil.FreePort(t)}
}

// start runs machine n (127.0.0.n, id 0000000n0000aa) in region.
func (ms *machineSet) start(n int, region, secret string) *machineUnderTest {
	t := ms.t
	id := "0000000" + strconv.Itoa(n) + "0000aa"
	ip := "127.0.0." + strconv.Itoa(n)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(ms.port)))
	if err != nil {
		t.Skipf("port %d on %s is taken: %v", ms.port, ip, err)
	}
	mgr := rooms.NewManager(rooms.Config{Instance: id, Region: region, HostGrace: time.Minute, Codes: regions.NewGenerator(region, nil)})
	reg := prometheus.NewRegistry()
	s := New(Config{Instance: id, Region: region, AppName: "app", HandoffSecret: secret,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Prober: &routing.Prober{App: "app", Self: id, Port: ms.port, Resolver: routing.DNSResolver{Server: ms.dns.Addr}, Wide: true},
	}, mgr, reg, reg)
	var h http.Handler = s
	if slow := ms.slow; slow > 0 {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == handoffPath {
				time.Sleep(slow)
			}
			s.ServeHTTP(w, r)
		})
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	ms.dns.Add(id, region, ip)
	return &machineUnderTest{Server: s, id: id, region: region, url: "http://" + ln.Addr().String()}
}

// A stopping machine moves its rooms to its region's sibling even when a
// machine of another region is less loaded; the members are closed with
// 1012 and find their slots and the state on the sibling. That sibling,
// last of its region, then moves them to the other region.
func TestHandOffToTheRegionFirstThenAnywhere(t *testing.T) {
	ms := newMachineSet(t)
	a, b, c := ms.start(2, "fra", ""), ms.start(3, "fra", ""), ms.start(4, "iad", "")
	other := dial(t, b.url, "/", nil)
	other.create("busy", 4) // b is more loaded than c

	host := dial(t, a.url, "/", nil)
	code := host.create("host", 4)
	p := dial(t, a.url, "/", nil)
	p.join(code, "p")
	p.expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0]}`)
	host.expect(`{"type":"peer_joined","index":1}`)
	host.send(`{"type":"set_state","data":{"round":7}}`)
	p.expect(`{"type":"state","data":{"round":7}}`)

	a.Drain()
	if moved, left := a.HandOff(t.Context()); moved != 1 || left != 0 {
		t.Fatalf("HandOff moved %d, left %d", moved, left)
	}
	host.expectClose(1012, "server restarting")
	p.expectClose(1012, "server restarting")
	if !b.rooms.Held(code) || a.rooms.Held(code) || c.rooms.Held(code) {
		t.Fatalf("after the hand-off: a %v, b %v, c %v", a.rooms.Held(code), b.rooms.Held(code), c.rooms.Held(code))
	}
	// A request for the code that still reaches a (pinned to it, through
	// the proxy) is replayed to the new holder.
	req, _ := http.NewRequest("GET", a.url+"/room/"+code+"?instance="+a.id, nil)
	req.Header.Set("Fly-Region", "fra")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "instance=" + b.id + ";timeout=5s;fallback=force_self;state=moved"; resp.StatusCode != 409 || resp.Header.Get("Fly-Replay") != want {
		t.Fatalf("a request for the moved room: %d %q, want 409 %q", resp.StatusCode, resp.Header.Get("Fly-Replay"), want)
	}
	back := dial(t, b.url, "/", nil)
	back.join(code, "p")
	back.expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[]}`)
	back.expect(`{"type":"state","data":{"round":7}}`)
	// What the host sent to a while the room moved, forwarded by a.
	for _, call := range []string{`{"code":"` + code + `","from":0,"kind":"send","data":"late"}`,
		`{"code":"` + code + `","from":0,"kind":"state","data":{"round":8}}`} {
		resp, err := http.Post(b.url+relayPath, "application/json", strings.NewReader(call))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("relay %s: %v %v", call, resp, err)
		}
		resp.Body.Close()
	}
	back.expect(`{"type":"message","from":0,"data":"late"}`)
	back.expect(`{"type":"state","data":{"round":8}}`)

	b.Drain()
	if moved, left := b.HandOff(t.Context()); moved != 2 || left != 0 {
		t.Fatalf("b's HandOff moved %d, left %d", moved, left)
	}
	back.expectClose(1012, "server restarting")
	if !c.rooms.Held(code) {
		t.Fatal("the last machine of fra did not hand its rooms to iad")
	}
	time.Sleep(scrapeTTL + 100*time.Millisecond)
	if got := (&testutil.Server{URL: b.url}).Metric(t, "party_sockets_handoff_rooms_total", `result="sent"`); got != 2 {
		t.Fatalf("b counted %v rooms sent", got)
	}
}

// A message sent while its room is on its way to a sibling waits, is not
// taken by the old machine, and reaches the room on the new one: the host
// that rejoins recovers it.
func TestMessageDuringAHandOffIsForwarded(t *testing.T) {
	ms := newMachineSet(t)
	ms.slow = 300 * time.Millisecond
	a, b := ms.start(2, "fra", ""), ms.start(3, "fra", "")
	host := dial(t, a.url, "/", nil)
	host.send(`{"type":"create","clientId":"host","maxClients":4,"recover":true}`)
	var created struct{ Room string }
	got, _ := host.read()
	json.Unmarshal([]byte(got), &created)
	p := dial(t, a.url, "/", nil)
	p.join(created.Room, "p")
	p.read()
	host.read() // peer_joined
	done := make(chan struct{})
	go func() { defer close(done); a.Drain(); a.HandOff(t.Context()) }()
	time.Sleep(100 * time.Millisecond) // the room is locked, its snapshot on the way
	p.send(`{"type":"send","data":"in flight"}`)
	<-done
	p.expectClose(1012, "server restarting")
	// It comes by the forward, not in the snapshot: b relays it.
	testutil.Eventually(t, 5*time.Second, "b to relay the forwarded message", func() bool {
		return (&testutil.Server{URL: b.url}).Metric(t, "party_sockets_messages_total") == 1
	})
	back := dial(t, b.url, "/", nil)
	back.send(`{"type":"join","room":"` + created.Room + `","clientId":"host","recover":true,"since":1}`)
	back.expect(`{"type":"joined","room":"` + created.Room + `","index":0,"peers":[],"seq":3,"recovered":true}`)
	back.expect(`{"type":"peer_left","index":1,"seq":2}`)
	back.expect(`{"type":"message","from":1,"data":"in flight","seq":3}`)
}

// With nowhere to go a room stays and drains as before.
func TestHandOffWithoutSiblingKeepsTheRoom(t *testing.T) {
	ms := newMachineSet(t)
	a := ms.start(2, "fra", "")
	b := ms.start(3, "fra", "")
	b.Drain() // a draining sibling takes nothing
	host := dial(t, a.url, "/", nil)
	code := host.create("host", 4)
	if moved, left := a.HandOff(t.Context()); moved != 0 || left != 1 {
		t.Fatalf("HandOff moved %d, left %d", moved, left)
	}
	host.send(`{"type":"send","data":1}`)
	if !a.rooms.Held(code) {
		t.Fatal("the room is gone")
	}
}

// Only siblings may hand rooms over: never through the proxy, only with
// the secret, and never onto a code that exists.
func TestHandOffEndpointRefusesStrangers(t *testing.T) {
	ms := newMachineSet(t)
	secret := strings.Repeat("s", 32)
	b := ms.start(3, "fra", secret)
	host := dial(t, b.url, "/", nil)
	code := host.create("host", 4)
	snap := func(code string) []byte {
		s, _ := json.Marshal(rooms.Snapshot{Version: 1, Transfer: "forged", Code: code, MaxClients: 8, Next: 2, GraceMs: -1,
			Slots: []rooms.SlotSnapshot{{Index: 0, Key: strings.Repeat("ab", 32)}, {Index: 1, Key: strings.Repeat("cd", 32)}}})
		return s
	}
	post := func(path string, body []byte, hdr map[string]string) (int, string) {
		req, _ := http.NewRequest("POST", b.url+path, bytes.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(out))
	}
	auth := "Bearer " + secret
	cases := []struct {
		name   string
		path   string
		body   []byte
		hdr    map[string]string
		status int
		answer string
	}{
		{"through the proxy", handoffPath, snap("NEW001"), map[string]string{"Fly-Region": "fra", "Authorization": auth}, 403, `{"error":"Internal endpoint"}`},
		{"no secret", handoffPath, snap("NEW001"), nil, 401, `{"error":"Unauthorized"}`},
		{"wrong secret", handoffPath, snap("NEW001"), map[string]string{"Authorization": "Bearer " + strings.Repeat("x", 32)}, 401, `{"error":"Unauthorized"}`},
		{"a live room's code", handoffPath, snap(code), map[string]string{"Authorization": auth}, 409, `{"error":"Room code taken"}`},
		{"not JSON", handoffPath, []byte("{"), map[string]string{"Authorization": auth}, 400, `{"error":"Invalid JSON"}`},
		{"too large", handoffPath, bytes.Repeat([]byte(" "), MaxHandoffBytes+1), map[string]string{"Authorization": auth}, 413, `{"error":"Body too large"}`},
		{"a sibling", handoffPath, snap("NEW001"), map[string]string{"Authorization": auth}, 200, `{"ok":true}`},
		// The other bodies siblings send are bounded too: a forwarded
		// message by the frame limit, an abort to a code and an id.
		{"relay too large", relayPath, bytes.Repeat([]byte(" "), DefaultMaxFrameBytes+4097), map[string]string{"Authorization": auth}, 413, `{"error":"Body too large"}`},
		{"abort too large", abortPath, []byte(`{"code":"` + strings.Repeat("x", maxAbortBody) + `"}`), map[string]string{"Authorization": auth}, 400, `{"error":"Invalid JSON"}`},
		{"abort of nothing", abortPath, []byte(`{"code":"NOPE12","transfer":"t"}`), map[string]string{"Authorization": auth}, 200, `{"dropped":false}`},
	}
	for _, tc := range cases {
		if status, answer := post(tc.path, tc.body, tc.hdr); status != tc.status || answer != tc.answer {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, answer, tc.status, tc.answer)
		}
	}
	// The room list needs the secret (codes let anyone join); a machine
	// without one never lists its rooms.
	for _, tc := range []struct {
		m      *machineUnderTest
		auth   string
		status int
	}{{b, auth, 200}, {b, "", 401}, {ms.start(4, "fra", ""), "", 404}} {
		req, _ := http.NewRequest("GET", tc.m.url+roomsPath, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || (tc.status == 200 && !strings.Contains(string(body), `"clients":1,"rooms":[{"code":"`+code+`","clients":1}`)) {
			t.Errorf("GET %s on %s: %d %s, want %d", roomsPath, tc.m.id, resp.StatusCode, body, tc.status)
		}
	}
	// The live room is as it was: still one member, and nobody was added.
	if info, _ := b.rooms.Lookup(code); info.Clients != 1 || info.MaxClients != 4 {
		t.Fatalf("the live room changed: %+v", info)
	}
	host.send(`{"type":"send","data":1}`)
	guest := dial(t, b.url, "/", nil)
	guest.join(code, "g")
	guest.expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0]}`)
}

// FuzzHandoffSnapshot: whatever a hand-off body says, decoding and
// importing it never panics, and a room it makes is a room this machine
// could serve (its code is held, its members' count is zero).
func FuzzHandoffSnapshot(f *testing.F) {
	good, _ := json.Marshal(rooms.Snapshot{Version: 1, Transfer: "t", Code: "ABC123", MaxClients: 4, Next: 3, GraceMs: 500, State: json.RawMessage(`{"a":[1,2]}`),
		Slots: []rooms.SlotSnapshot{{Index: 0, Key: strings.Repeat("ab", 32), Recover: true, Seq: 2,
			Window: []rooms.FrameSnapshot{{Seq: 1, Frame: `{"type":"peer_joined","index":2}`}, {Seq: 2, AgeMs: 10, Frame: `{"type":"message","from":2}`}}},
			{Index: 2, Key: strings.Repeat("cd", 32), Live: true}}})
	f.Add(good)
	f.Add([]byte(`{"v":1,"transfer":"x","code":"A","maxClients":1e308,"next":1,"graceMs":-1,"slots":[{"index":0,"key":"` + strings.Repeat("0", 64) + `"}]}`))
	f.Add([]byte(`{"v":1,"slots":[{"window":[{"frame":"{"}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		mgr := rooms.NewManager(rooms.Config{Instance: "m", HostGrace: time.Minute, Codes: regions.NewGenerator("", nil), MaxRooms: 10})
		snap, err := DecodeSnapshot(body)
		if err != nil {
			return
		}
		if err := mgr.Import(snap); err != nil {
			if mgr.Len() != 0 {
				t.Fatalf("a refused snapshot left a room: %v", err)
			}
			return
		}
		info, ok := mgr.Lookup(snap.Code)
		if !ok || info.Clients != 0 || info.MaxClients < 1 || info.MaxClients > rooms.DefaultMaxMembers {
			t.Fatalf("imported room: %+v %v", info, ok)
		}
	})
}

// A sibling that takes the room but answers too late: the sender cannot
// know it arrived, keeps the room, and aborts the transfer, so the copy
// does not serve (whichever of the two arrives first).
func TestHandOffWithoutAnAnswerKeepsOneOwner(t *testing.T) {
	old := handoffTry
	handoffTry = 150 * time.Millisecond
	t.Cleanup(func() { handoffTry = old })
	ms := newMachineSet(t)
	ms.slow = 400 * time.Millisecond // longer than a try: every answer is too late
	a, b := ms.start(2, "fra", ""), ms.start(3, "fra", "")
	host := dial(t, a.url, "/", nil)
	code := host.create("host", 4)
	a.Drain()
	if moved, left := a.HandOff(t.Context()); moved != 0 || left != 1 {
		t.Fatalf("HandOff moved %d, left %d", moved, left)
	}
	// Every slow snapshot has reached b's handler by now (and been refused).
	time.Sleep(ms.slow + 200*time.Millisecond)
	if b.rooms.Held(code) {
		t.Fatal("b kept a copy of a room that a still serves")
	}
	host.send(`{"type":"send","data":"still here"}`)
	guest := dial(t, a.url, "/", nil)
	guest.join(code, "g")
	guest.expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0]}`)
}
