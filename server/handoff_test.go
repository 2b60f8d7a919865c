package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/party-sockets/party-sockets/internal/flydns"
	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/regions"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/routing"
)

// machineSet is a few real servers on 127.0.0.N, all on one port, with
// Fly's internal DNS: siblings that can hand rooms to each other.
type machineSet struct {
	t    *testing.T
	dns  *flydns.Server
	port int
	slow time.Duration // each machine takes this long to answer a hand-off
	hold *handoffHold  // when set, a hand-off call waits for slow or its release, whichever comes first

	served atomic.Int32 // slowed hand-off calls answered, by every machine

	caching bool // machines ask the DNS through a routing.CachingResolver, as main.go wires them
}

// handoffHold is a hook on the siblings' hand-off endpoint: a test learns
// when a snapshot has arrived (the sender holds the room's lock until it
// is answered), and lets it be served when it chooses.
type handoffHold struct {
	arrived chan struct{} // closed when the first hand-off call arrives
	release chan struct{} // closed by the test: held calls are served
	ended   chan struct{} // closed when the first call stops waiting, released or not

	arrive, end sync.Once
}

// holdHandoffs makes every machine hold each hand-off call it receives
// until the test releases it, or for at most slow.
func (ms *machineSet) holdHandoffs(slow time.Duration) *handoffHold {
	ms.slow = slow
	ms.hold = &handoffHold{arrived: make(chan struct{}), release: make(chan struct{}), ended: make(chan struct{})}
	return ms.hold
}

// wait is what a machine does with a hand-off call before serving it.
func (ms *machineSet) wait() {
	hd := ms.hold
	if hd == nil {
		time.Sleep(ms.slow) // a slow sibling: the scenario
		return
	}
	hd.arrive.Do(func() { close(hd.arrived) })
	select {
	case <-hd.release:
	case <-time.After(ms.slow):
	}
	hd.end.Do(func() { close(hd.ended) })
}

type machineUnderTest struct {
	*Server
	id, region, url string
	kill            func() // closes its listener and every connection, as a crash does
}

func newMachineSet(t *testing.T) *machineSet {
	return &machineSet{t: t, dns: testutil.StartFlyDNS(t, "app"), port: testutil.FreePort(t)}
}

// testSecret is the HANDOFF_SECRET of a machineSet's machines.
var testSecret = strings.Repeat("s", 32)

// start runs machine n (127.0.0.n, id 0000000n0000aa) in region, with
// secret as HANDOFF_SECRET ("": testSecret).
func (ms *machineSet) start(n int, region, secret string) *machineUnderTest {
	t := ms.t
	if secret == "" {
		secret = testSecret
	}
	id := "0000000" + strconv.Itoa(n) + "0000aa"
	ip := "127.0.0." + strconv.Itoa(n)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(ms.port)))
	if err != nil {
		t.Skipf("port %d on %s is taken: %v", ms.port, ip, err)
	}
	mgr := rooms.NewManager(
		rooms.Config{Instance: id, Region: region, HostGrace: time.Minute, Codes: regions.NewGenerator(region, nil)},
	)
	reg := prometheus.NewRegistry()
	s := New(Config{Instance: id, Region: region, AppName: "app", HandoffSecret: secret, ScrapeTTL: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Prober: &routing.Prober{App: "app", Self: id, Port: ms.port, Resolver: ms.resolver(), Wide: true},
	}, mgr, reg, reg)
	var h http.Handler = s
	if ms.slow > 0 {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != handoffPath {
				s.ServeHTTP(w, r)
				return
			}
			ms.wait()
			s.ServeHTTP(w, r)
			ms.served.Add(1)
		})
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	ms.dns.Add(id, region, ip)
	listen(t, "http://"+ln.Addr().String(), s)
	kill := func() {
		hs.Close()
		for _, c := range s.conns.list() {
			c.raw.Conn.Close()
		}
	}
	return &machineUnderTest{Server: s, id: id, region: region, url: "http://" + ln.Addr().String(), kill: kill}
}

func (ms *machineSet) resolver() routing.Resolver {
	r := routing.DNSResolver{Server: ms.dns.Addr}
	if ms.caching {
		return &routing.CachingResolver{Inner: r}
	}
	return r
}

// A stopping machine moves its rooms to its region's sibling even when a
// machine of another region is less loaded; the members are closed with
// 1012 and find their slots and the state on the sibling. That sibling,
// last of its region, then moves them to the other region.
func TestHandOffToTheRegionFirstThenAnywhere(t *testing.T) {
	ms := newMachineSet(t)
	a, b, c := ms.start(2, "fra", ""), ms.start(3, "fra", ""), ms.start(4, "iad", "")
	other := testutil.Dial(t, b.url)
	other.Create("busy", 4) // b is more loaded than c

	host := testutil.Dial(t, a.url)
	code := host.Create("host", 4)
	p := testutil.Dial(t, a.url)
	p.Join(code, "p")
	p.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0]}`)
	host.Expect(`{"type":"peer_joined","index":1}`)
	host.Send(`{"type":"set_state","data":{"round":7}}`)
	p.Expect(`{"type":"state","data":{"round":7}}`)

	a.Drain()
	if moved, left := a.HandOff(t.Context()); moved != 1 || left != 0 {
		t.Fatalf("HandOff moved %d, left %d", moved, left)
	}
	host.ExpectClose(1012, "server restarting")
	p.ExpectClose(1012, "server restarting")
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
	if want := "instance=" + b.id + ";timeout=5s;fallback=force_self;state=moved"; resp.StatusCode != 409 ||
		resp.Header.Get("Fly-Replay") != want {
		t.Fatalf("a request for the moved room: %d %q, want 409 %q", resp.StatusCode, resp.Header.Get("Fly-Replay"), want)
	}
	back := testutil.Dial(t, b.url)
	back.Join(code, "p")
	back.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[]}`)
	back.Expect(`{"type":"state","data":{"round":7}}`)
	// What the host sent to a while the room moved, forwarded by a.
	for _, call := range []string{`{"code":"` + code + `","from":0,"kind":"send","data":"late"}`,
		`{"code":"` + code + `","from":0,"kind":"state","data":{"round":8}}`} {
		if status, answer := signedCall(t, a.Server, b.url, http.MethodPost, relayPath, []byte(call), nil); status != 200 {
			t.Fatalf("relay %s: %d %s", call, status, answer)
		}
	}
	back.Expect(`{"type":"message","from":0,"data":"late"}`)
	back.Expect(`{"type":"state","data":{"round":8}}`)

	b.Drain()
	if moved, left := b.HandOff(t.Context()); moved != 2 || left != 0 {
		t.Fatalf("b's HandOff moved %d, left %d", moved, left)
	}
	back.ExpectClose(1012, "server restarting")
	if !c.rooms.Held(code) {
		t.Fatal("the last machine of fra did not hand its rooms to iad")
	}
	if got := (&testutil.Server{URL: b.url}).Metric(t, "party_sockets_handoff_rooms_total", `result="sent"`); got != 2 {
		t.Fatalf("b counted %v rooms sent", got)
	}
}

// A message sent while its room is on its way to a sibling waits, is not
// taken by the old machine, and reaches the room on the new one: the host
// that rejoins recovers it. (Issue 21, item 7: the message was sent 100 ms
// after the hand-off began, taking the room's lock to be held by then.
// It is sent once the snapshot is at the sibling, which holds it for
// 300 ms: the room's lock is held meanwhile.)
func TestMessageDuringAHandOffIsForwarded(t *testing.T) {
	ms := newMachineSet(t)
	hold := ms.holdHandoffs(300 * time.Millisecond)
	a, b := ms.start(2, "fra", ""), ms.start(3, "fra", "")
	host := testutil.Dial(t, a.url)
	host.Send(`{"type":"create","clientId":"host","maxClients":4,"recover":true}`)
	var created struct{ Room string }
	got, _ := host.Read()
	json.Unmarshal([]byte(got), &created)
	p := testutil.Dial(t, a.url)
	p.Join(created.Room, "p")
	p.Read()
	host.Read() // peer_joined
	done := make(chan struct{})
	go func() { defer close(done); a.Drain(); a.HandOff(t.Context()) }()
	<-hold.arrived // the snapshot is at b: a holds the room's lock
	p.Send(`{"type":"send","data":"in flight"}`)
	<-done
	p.ExpectClose(1012, "server restarting")
	// It comes by the forward, not in the snapshot: b relays it.
	testutil.Eventually(t, 5*time.Second, "b to relay the forwarded message", func() bool {
		return (&testutil.Server{URL: b.url}).Metric(t, "party_sockets_messages_total") == 1
	})
	back := testutil.Dial(t, b.url)
	back.Send(`{"type":"join","room":"` + created.Room + `","clientId":"host","recover":true,"since":1}`)
	back.Expect(`{"type":"joined","room":"` + created.Room + `","index":0,"peers":[],"seq":3,"recovered":true}`)
	back.Expect(`{"type":"peer_left","index":1,"seq":2}`)
	back.Expect(`{"type":"message","from":1,"data":"in flight","seq":3}`)
}

// With nowhere to go a room stays and drains as before.
func TestHandOffWithoutSiblingKeepsTheRoom(t *testing.T) {
	ms := newMachineSet(t)
	a := ms.start(2, "fra", "")
	b := ms.start(3, "fra", "")
	b.Drain() // a draining sibling takes nothing
	host := testutil.Dial(t, a.url)
	code := host.Create("host", 4)
	// It asks again until its HANDOFF_TIMEOUT ends (a sibling may start).
	ctx, cancel := context.WithTimeout(t.Context(), 3*siblingRetry)
	defer cancel()
	if moved, left := a.HandOff(ctx); moved != 0 || left != 1 {
		t.Fatalf("HandOff moved %d, left %d", moved, left)
	}
	host.Send(`{"type":"send","data":1}`)
	if !a.rooms.Held(code) {
		t.Fatal("the room is gone")
	}
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
	host := testutil.Dial(t, a.url)
	code := host.Create("host", 4)
	a.Drain()
	if moved, left := a.HandOff(t.Context()); moved != 0 || left != 1 {
		t.Fatalf("HandOff moved %d, left %d", moved, left)
	}
	// Once b has answered the snapshot of every try (each after a gave up
	// on it, the first before a's abort, the others after), it holds no
	// copy.
	testutil.Eventually(
		t,
		5*time.Second,
		"b to answer each of "+strconv.Itoa(handoffTries)+" tries",
		func() bool { return ms.served.Load() == handoffTries },
	)
	if b.rooms.Held(code) {
		t.Fatal("b kept a copy of a room that a still serves")
	}
	host.Send(`{"type":"send","data":"still here"}`)
	guest := testutil.Dial(t, a.url)
	guest.Join(code, "g")
	guest.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0]}`)
}

// A machine stopped while the DNS does not answer (and it has no last good
// answer) asks again within its HANDOFF_TIMEOUT: once the DNS is back, the
// room moves.
func TestHandOffAsksAgainWhileTheDNSIsDown(t *testing.T) {
	ms := newMachineSet(t)
	a, b := ms.start(2, "fra", ""), ms.start(3, "fra", "")
	host := testutil.Dial(t, a.url)
	code := host.Create("host", 4)
	a.Drain()
	ms.dns.SetDown(true)
	up := time.AfterFunc(3*siblingRetry, func() { ms.dns.SetDown(false) })
	defer up.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if moved, left := a.HandOff(ctx); moved != 1 || left != 0 {
		t.Fatalf("HandOff moved %d, left %d; want the room moved once the DNS answered", moved, left)
	}
	if !b.rooms.Held(code) {
		t.Fatal("the sibling does not hold the room")
	}
}

// A machine that warmed its siblings' answers while the DNS worked moves
// its rooms when it stops during an outage, from the last good answers.
func TestWarmedSiblingsTakeRoomsWhileTheDNSIsDown(t *testing.T) {
	ms := newMachineSet(t)
	ms.caching = true
	a, b := ms.start(2, "fra", ""), ms.start(3, "fra", "")
	a.warmOnce(t.Context())
	host := testutil.Dial(t, a.url)
	code := host.Create("host", 4)
	a.Drain()
	ms.dns.SetDown(true) // for good: only the warmed answers can help
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if moved, left := a.HandOff(ctx); moved != 1 || left != 0 {
		t.Fatalf("HandOff moved %d, left %d; want the room moved to the warmed sibling", moved, left)
	}
	if !b.rooms.Held(code) {
		t.Fatal("the sibling does not hold the room")
	}
}
