package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/routing"
)

// siblingRoom makes a room of host and p1 on m, both opted in to tickets,
// and returns its code and newest ticket (real clock: issued at once).
func siblingRoom(t *testing.T, m *machineUnderTest) (code, tk string, host *testutil.Client) {
	t.Helper()
	host = testutil.Dial(t, m.url)
	host.Send(`{"type":"create","clientId":"host","maxClients":8,"tickets":true}`)
	code = host.ExpectType("created").Room
	ticketFrom(t, host)
	p1 := testutil.Dial(t, m.url)
	p1.Send(`{"type":"join","room":"` + code + `","clientId":"p1","tickets":true}`)
	p1.ExpectType("joined")
	host.Send(`{"type":"set_state","data":{"round":5}}`)
	p1.Expect(`{"type":"state","data":{"round":5}}`)
	tk = ticketFrom(t, p1) // the issue after the join and the state, coalesced
	for !ticketHasState(t, m, tk) {
		tk = ticketFrom(t, p1)
	}
	return code, tk, host
}

// ticketHasState reports whether tk carries a state digest.
func ticketHasState(t *testing.T, m *machineUnderTest, tk string) bool {
	t.Helper()
	p, err := m.sealer.Open(tk)
	if err != nil {
		t.Fatal(err)
	}
	return p.HasDigest
}

// TestRestoreOnSiblingAfterHolderGone: the holder is killed and gone
// from DNS; a member restores on its sibling, with the state; while the
// holder was alive the same restore was refused (Room exists), and while
// it is listed but does not answer the restore is Try again, never a
// second room.
func TestRestoreOnSiblingAfterHolderGone(t *testing.T) {
	ms := newMachineSet(t)
	a, b := ms.start(2, "fra", ""), ms.start(3, "fra", "")
	code, tk, _ := siblingRoom(t, a)

	c := testutil.Dial(t, b.url)
	c.Send(restoreMsg("p1", tk, `,"state":{"round":5}`))
	c.ExpectErr("Room exists")

	a.kill()
	d := testutil.Dial(t, b.url)
	d.Send(restoreMsg("p1", tk, `,"state":{"round":5}`))
	d.ExpectErr("Try again") // listed, not answering: unknown is not absent

	ms.dns.Remove(a.id)
	e := testutil.Dial(t, b.url)
	e.Send(restoreMsg("p1", tk, `,"state":{"round":5}`))
	e.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[],"restored":true}`)
	e.Expect(`{"type":"state","data":{"round":5}}`)
	host := testutil.Dial(t, b.url)
	host.Join(code, "host")
	host.Expect(`{"type":"joined","room":"` + code + `","index":0,"peers":[1],"rebuilt":true}`)
	host.Expect(`{"type":"state","data":{"round":5}}`)
}

// TestRestoreEndedOnSibling: a room that ended on its machine cannot be
// restored on a sibling: the signed probe answers 410 X-Room-Ended; a
// client's lookup still sees the contract's 404.
func TestRestoreEndedOnSibling(t *testing.T) {
	ms := newMachineSet(t)
	a, b := ms.start(2, "fra", ""), ms.start(3, "fra", "")
	code, tk, host := siblingRoom(t, a)
	if c, _, err := b.askSibling(t.Context(), a.id, code); err != nil || c.id != a.id || !c.versioned {
		t.Fatalf("signed probe of a held room: %+v, %v; want the holder and its version", c, err)
	}
	host.Send(`{"type":"close_room"}`)
	if got := host.CloseCode(5 * time.Second); got != 4001 {
		t.Fatalf("host closed with %d, want 4001", got)
	}
	if _, ended, err := b.askSibling(t.Context(), a.id, code); err != nil || !ended {
		t.Fatalf("signed probe of an ended room: ended %v, %v; want true", ended, err)
	}
	status, hdr, _ := getJSON(t, a.url+"/room/"+code)
	if status != http.StatusNotFound || hdr.Get(headerRoomEnded) != "" {
		t.Fatalf("a client's lookup of an ended room: %d %v; want 404 without %s", status, hdr, headerRoomEnded)
	}
	c := testutil.Dial(t, b.url)
	c.Send(restoreMsg("p1", tk, ""))
	c.ExpectErr("Room ended")
}

// TestRestoreRendezvous: an upgrade through the proxy for a code that no
// machine holds is replayed to the code's rendezvous machine (once), and
// served there without a second probe.
func TestRestoreRendezvous(t *testing.T) {
	ms := newMachineSet(t)
	a, b := ms.start(2, "fra", ""), ms.start(3, "fra", "")
	code, _, host := siblingRoom(t, a)
	host.Send(`{"type":"close_room"}`)
	if got := host.CloseCode(5 * time.Second); got != 4001 {
		t.Fatalf("host closed with %d, want 4001", got)
	}
	rv := routing.Rendezvous(code, []string{a.id, b.id})
	other := map[string]*machineUnderTest{a.id: b, b.id: a}[rv]
	req, _ := http.NewRequest(http.MethodGet, other.url+"/"+code, nil)
	req.Header.Set("Fly-Region", "fra")
	req.Header.Set("Fly-Client-Ip", "203.0.113.9")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := "instance=" + rv + ";timeout=5s;fallback=force_self;state=rendezvous"
	if resp.StatusCode != http.StatusConflict || resp.Header.Get("Fly-Replay") != want {
		t.Fatalf("upgrade at the other machine: %d %q, want 409 %q", resp.StatusCode, resp.Header.Get("Fly-Replay"), want)
	}
	req.URL.Host = strings.TrimPrefix(map[string]string{a.id: a.url, b.id: b.url}[rv], "http://")
	req.Header.Set("Fly-Replay-Src", "instance="+other.id+";state=rendezvous")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusConflict {
		t.Fatalf("the rendezvous machine replayed it again: %q", resp.Header.Get("Fly-Replay"))
	}
}

// twoCopies makes a room on a, cuts a off DNS while p1 restores it on b,
// and lists a again: the frozen-or-cut-off holder is back with its copy.
func twoCopies(t *testing.T, ms *machineSet, a, b *machineUnderTest) (code string, host *testutil.Client) {
	t.Helper()
	code, tk, host := siblingRoom(t, a)
	ms.dns.Remove(a.id)
	p1 := testutil.Dial(t, b.url)
	p1.Send(restoreMsg("p1", tk, ""))
	p1.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[],"restored":true}`)
	waitConfirmed(t, b, 1) // its check after the rebuild, which saw no a
	ms.dns.Add(a.id, "fra", "127.0.0.2")
	if !a.rooms.Held(code) || !b.rooms.Held(code) {
		t.Fatal("the test needs two copies")
	}
	return code, host
}

// TestThawedHolderYields: a machine that was frozen asks its siblings
// about its rooms, finds the copy restored from its own, and gives way:
// its members are closed with 1012, and one room is left.
func TestThawedHolderYields(t *testing.T) {
	ms := newMachineSet(t)
	a, b := ms.start(2, "fra", ""), ms.start(3, "fra", "")
	code, host := twoCopies(t, ms, a, b)
	a.checkOwnership(t.Context())
	if got := host.CloseCode(5 * time.Second); got != 1012 {
		t.Fatalf("the old copy's host closed with %d, want 1012", got)
	}
	if a.rooms.Held(code) || !b.rooms.Held(code) || a.rooms.Ended(code) {
		t.Fatalf(
			"after the thaw: a holds %v (ended %v), b holds %v; want only b",
			a.rooms.Held(code),
			a.rooms.Ended(code),
			b.rooms.Held(code),
		)
	}
}

// TestNewerCopyTellsOlder: the machine with the newer copy, finding the
// older, tells it to yield (signed POST /.internal/yield); a claim of an
// older copy is refused.
func TestNewerCopyTellsOlder(t *testing.T) {
	ms := newMachineSet(t)
	a, b := ms.start(2, "fra", ""), ms.start(3, "fra", "")
	code, host := twoCopies(t, ms, a, b)
	stale := a.rooms.Room(code).VersionOf()
	stale.Version = 0
	b.tellYield(t.Context(), a.id, code, stale) // older than a's own: refused
	if !a.rooms.Held(code) {
		t.Fatal("a copy yielded to an older one")
	}
	b.checkOwnership(t.Context())
	if got := host.CloseCode(5 * time.Second); got != 1012 {
		t.Fatalf("the old copy's host closed with %d, want 1012", got)
	}
	if a.rooms.Held(code) || !b.rooms.Held(code) {
		t.Fatalf("a holds %v, b holds %v; want only b", a.rooms.Held(code), b.rooms.Held(code))
	}
}

// TestRestoreRoundsBounded: restores start at most the machine's restore
// rounds (40 at once, 20 a second), whoever sends them; past that, Try
// again, without asking anyone.
func TestRestoreRoundsBounded(t *testing.T) {
	ms := newMachineSet(t)
	a, b := ms.start(2, "fra", ""), ms.start(3, "fra", "")
	_, tk, _ := siblingRoom(t, a)
	c := testutil.Dial(t, b.url)
	exists, again := 0, 0
	start := time.Now()
	for range 80 {
		c.Send(restoreMsg("p1", tk, ""))
		switch f := c.ExpectType("error"); f.Message {
		case "Room exists":
			exists++
		case "Try again":
			again++
		default:
			t.Fatalf("restore: %s", f.Raw)
		}
	}
	refill := int(time.Since(start).Seconds()*restoreRoundsPerSec) + 1
	if again == 0 || exists > 2*restoreRoundsPerSec+refill {
		t.Errorf(
			"80 restores: %d rounds (Room exists), %d Try again; want at most %d rounds",
			exists,
			again,
			2*restoreRoundsPerSec+refill,
		)
	}
}

// TestTwoRebuildsSettle: two machines both rebuilt the room from one
// ticket (each saw no other: their DNS views differed); the check right
// after a rebuild finds the other copy and one gives way.
func TestTwoRebuildsSettle(t *testing.T) {
	ms := newMachineSet(t)
	a, b, c := ms.start(2, "fra", ""), ms.start(3, "fra", ""), ms.start(4, "fra", "")
	code, tk, _ := siblingRoom(t, c)
	c.kill()
	ms.dns.Remove(c.id)
	ms.dns.Remove(b.id)
	p1 := testutil.Dial(t, a.url)
	p1.Send(restoreMsg("p1", tk, ""))
	p1.ExpectType("joined")
	waitConfirmed(t, a, 1)
	ms.dns.Remove(a.id)
	ms.dns.Add(b.id, "fra", "127.0.0.3")
	host := testutil.Dial(t, b.url)
	host.Send(restoreMsg("host", tk, ""))
	host.ExpectType("joined")
	waitConfirmed(t, b, 1)
	ms.dns.Add(a.id, "fra", "127.0.0.2")
	if !a.rooms.Held(code) || !b.rooms.Held(code) {
		t.Fatal("the test needs two copies")
	}
	b.confirmOwner(code) // what b ran after its rebuild, now that it can see a
	if a.rooms.Held(code) == b.rooms.Held(code) {
		t.Fatalf("a holds %v, b holds %v: want exactly one", a.rooms.Held(code), b.rooms.Held(code))
	}
	loser := map[bool]*testutil.Client{true: host, false: p1}[a.rooms.Held(code)]
	if got := loser.CloseCode(5 * time.Second); got != 1012 {
		t.Errorf("the yielding copy's member closed with %d, want 1012", got)
	}
}

// waitConfirmed waits until m has run n checks after a rebuild.
func waitConfirmed(t *testing.T, m *machineUnderTest, n int64) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, "the check after the rebuild", func() bool { return m.confirmed.Load() >= n })
}

// TestRestoreAsksAbroad: a room whose region lost its machines lives
// abroad; a machine its region starts again does not know where. A
// member's restore there must find the copy abroad (Room exists), not
// rebuild a second room. Before, a restore asked only its own region and
// the code's home region: the short drill saw two copies of a room after
// its region went down and a deploy ran with the DNS down, and 46 states
// skipped by members of the copy that gave way.
func TestRestoreAsksAbroad(t *testing.T) {
	ms := newMachineSet(t)
	syd, gru := ms.start(2, "syd", ""), ms.start(3, "gru", "")
	code, tk, _ := siblingRoom(t, syd)
	syd.Drain()
	if moved, left := syd.HandOff(t.Context()); moved != 1 || left != 0 {
		t.Fatalf("HandOff moved %d, left %d", moved, left)
	}
	ms.dns.Remove(syd.id)
	if !gru.rooms.Held(code) {
		t.Fatal("the room did not go abroad")
	}
	fresh := ms.start(4, "syd", "") // syd's new machine knows nothing of it
	c := testutil.Dial(t, fresh.url)
	c.Send(restoreMsg("p1", tk, `,"state":{"round":5}`))
	c.ExpectErr("Room exists")
	if fresh.rooms.Held(code) {
		t.Fatal("a second copy was rebuilt while the room lives abroad")
	}
}

// TestRestoreWaitsOutTheDNS: while the internal DNS fails, a restore is
// Try again, though the last good answer names no machine that holds the
// code: machines a deploy started during the outage are missing from it,
// and one may hold the room. Before, the restore rebuilt it (the short
// drill's deploy with the DNS down: two copies, 51 states skipped by the
// members of the one that gave way). Once DNS answers, it is rebuilt.
func TestRestoreWaitsOutTheDNS(t *testing.T) {
	ms := newMachineSet(t)
	ms.caching = true
	a, b := ms.start(2, "fra", ""), ms.start(3, "fra", "")
	code, tk, _ := siblingRoom(t, a)
	a.kill()
	ms.dns.Remove(a.id)
	if _, err := b.cfg.Prober.FreshPeers(t.Context()); err != nil { // b's last good answer: itself alone
		t.Fatal(err)
	}
	ms.dns.SetDown(true)
	c := testutil.Dial(t, b.url)
	c.Send(restoreMsg("p1", tk, `,"state":{"round":5}`))
	c.ExpectErr("Try again")
	ms.dns.SetDown(false)
	// The resolver's cache asks again once its pause after a failure is
	// over (routing.DefaultFailPause); the client, told Try again, retries.
	var got string
	testutil.Eventually(t, 3*routing.DefaultFailPause, "a restore once the DNS answers", func() bool {
		d := testutil.Dial(t, b.url)
		d.Send(restoreMsg("p1", tk, `,"state":{"round":5}`))
		f, _ := d.Next()
		got = f.Raw
		return f.Type == "joined"
	})
	if want := `{"type":"joined","room":"` + code + `","index":1,"peers":[],"restored":true}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// TestRestoreFindsTheHolderWhileTheDNSIsDown: while the DNS fails, a
// restore still asks the machines of the last good answer, and a holder
// found there is Room exists (the member joins it), not Try again until
// the DNS is back: the short drill's members waited out the outage (a
// rejoin p99 of 8 s in a deploy with the DNS down) for rooms a sibling
// held all along.
func TestRestoreFindsTheHolderWhileTheDNSIsDown(t *testing.T) {
	ms := newMachineSet(t)
	ms.caching = true
	a, b := ms.start(2, "fra", ""), ms.start(3, "fra", "")
	_, tk, _ := siblingRoom(t, a)
	b.warmOnce(t.Context()) // b's last good answers: the machines, and a's address
	ms.dns.SetDown(true)
	c := testutil.Dial(t, b.url)
	c.Send(restoreMsg("p1", tk, ""))
	c.ExpectErr("Room exists")
}

// TestRestoreOfAMovedRoom: a machine that handed a room off moments ago
// answers a signed probe for its code "moved" (X-Room-Moved), so a
// restore elsewhere, whose DNS does not list the new holder yet, is Room
// exists, never a second copy. And a stopping machine rebuilds nothing
// (Try again). Before, the old holder answered 404 and the restore
// rebuilt the room (an attack review of crash-proof rooms, finding 2).
func TestRestoreOfAMovedRoom(t *testing.T) {
	ms := newMachineSet(t)
	a, b := ms.start(2, "fra", ""), ms.start(3, "fra", "")
	code, tk, _ := siblingRoom(t, a)
	a.Drain()
	if moved, left := a.HandOff(t.Context()); moved != 1 || left != 0 {
		t.Fatalf("HandOff moved %d, left %d", moved, left)
	}
	ms.dns.Remove(b.id) // the new holder, not listed yet
	c := ms.start(4, "fra", "")
	r := testutil.Dial(t, c.url)
	r.Send(restoreMsg("p1", tk, `,"state":{"round":5}`))
	r.ExpectErr("Room exists")
	if c.rooms.Held(code) {
		t.Fatal("a second copy was rebuilt of a room handed off moments ago")
	}
	d := testutil.Dial(t, a.url) // the stopping machine itself
	d.Send(restoreMsg("p1", tk, ""))
	d.ExpectErr("Try again")
}
