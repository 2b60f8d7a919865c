package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/party-sockets/party-sockets/closecode"
	"github.com/party-sockets/party-sockets/internal/budget"
	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/internal/wire"
	"github.com/party-sockets/party-sockets/rooms"
)

// dialConn dials ts and returns the client with the server's side of it.
func dialConn(t *testing.T, ts *testServer) (*testutil.Client, *conn) {
	t.Helper()
	known := map[*conn]bool{}
	for _, c := range ts.conns.list() {
		known[c] = true
	}
	cl := testutil.Dial(t, ts.URL)
	var c *conn
	testutil.Eventually(t, 5*time.Second, "the socket to be registered", func() bool {
		for _, x := range ts.conns.list() {
			if !known[x] {
				c = x
			}
		}
		return c != nil
	})
	return cl, c
}

// hold stops c's writer at its next batch, as a peer that stopped reading
// would (its socket lock taken, as a blocked write holds it), until the
// test ends or the returned func is called.
func hold(t *testing.T, c *conn) (release func()) {
	c.raw.mu.Lock()
	held := true
	release = func() {
		if held {
			held = false
			c.raw.mu.Unlock()
		}
	}
	t.Cleanup(release)
	return release
}

// partial starts a message of n bytes on cl and never finishes it. The
// server may refuse it while it is written: the error is the caller's.
func partial(t *testing.T, cl *testutil.Client, n int) error {
	w, err := cl.WS.Writer(t.Context(), websocket.MessageText)
	if err != nil {
		return err
	}
	_, err = w.Write([]byte(`{"type":"send","data":"` + strings.Repeat("p", n)))
	return err
}

// waitStale waits until what c began (its queue's oldest frame, or its
// message) is older than staleAfter on the server's clock.
func waitStale(t *testing.T, ts *testServer, since int64) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, "staleAfter to pass", func() bool { return ts.tick.Load()-since > staleTicks })
}

// Issue 20 review, finding 4: a broadcast counted its frame once per
// receiver, though all of them share one allocation. Eight members whose
// writers are held each queue the host's 10 KB message: the budget counts
// it once, plus an entry per queue, and gives all of it back once the
// last of them has written it.
func TestBroadcastFrameCountedOnce(t *testing.T) {
	b := budget.New(64 << 20)
	ts := newTestServer(t, Config{Budget: b})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 16)
	var conns []*conn
	var clients []*testutil.Client
	for i := range 8 {
		cl, c := dialConn(t, ts)
		cl.Join(code, "m"+itoa(i))
		cl.Expect(`{"type":"joined","room":"` + code + `","index":` + itoa(i+1) + `,"peers":` + peersUpTo(i) + `}`)
		conns, clients = append(conns, c), append(clients, cl)
	}
	for i, cl := range clients { // the later joins, as peer_joined
		for j := i + 2; j <= 8; j++ {
			cl.Expect(`{"type":"peer_joined","index":` + itoa(j) + `}`)
		}
	}
	for range 8 {
		h.Read() // peer_joined
	}
	var releases []func()
	for _, c := range conns {
		releases = append(releases, hold(t, c))
	}
	before := b.Used()
	data := `"` + strings.Repeat("x", 10_000) + `"`
	h.Send(`{"type":"send","data":` + data + `}`)
	frame := wire.MessageFrame(0, []byte(data))
	want := before + int64(len(frame)) + 8*int64(queuedEntryBytes)
	testutil.Eventually(t, 5*time.Second, "every member to hold the frame", func() bool { return b.Used() == want })
	t.Logf("a %d-byte broadcast to 8 queues counts %d bytes (counted per receiver: %d)",
		len(frame), b.Used()-before, 8*(len(frame)+queuedEntryBytes))
	for i, release := range releases {
		release()
		clients[i].Expect(string(frame))
	}
	testutil.Eventually(t, 5*time.Second, "the frame to be given back", func() bool { return b.Used() == before })
}

func peersUpTo(i int) string {
	s := "[0"
	for j := 1; j <= i; j++ {
		s += "," + itoa(j)
	}
	return s + "]"
}

// Issue 20 review, finding 1: the message being read was counted, never
// refused. Now its growth is reserved: one the budget cannot take closes
// its socket with 1013, and gives back what it had reserved.
func TestMessageRefusedWhenTheBudgetIsShort(t *testing.T) {
	b := budget.New(1 << 20)
	ts := newTestServer(t, Config{Budget: b})
	cl, c := dialConn(t, ts)
	base := b.Used()
	hold := b.Ceiling() - base - 8<<10 // 8 KiB left: the message grows past it
	b.Add(hold)
	defer b.Add(-hold)
	go partial(t, cl, 40_000) // refused while it is written
	cl.ExpectClose(int(closecode.TryAgain), "try again later")
	testutil.Eventually(t, 5*time.Second, "the socket to end", func() bool { return len(ts.conns.list()) == 0 })
	if c.closedReason() != closecode.EndBusy || b.Used() != hold {
		t.Fatalf("reason %s, budget %d; want %s and only the hold (%d)", c.closedReason().Label(), b.Used(),
			closecode.EndBusy.Label(), hold)
	}
}

// A message that has been arriving for over staleAfter is what the budget
// takes back for what holds a room together: a create the budget cannot
// take while the message is fresh is refused, and succeeds once it is
// stale, closing that socket with 1013.
func TestStaleMessageMakesRoomForACreate(t *testing.T) {
	b := budget.New(1 << 20)
	ts := newTestServer(t, Config{Budget: b})
	slow, sc := dialConn(t, ts)
	honest := testutil.Dial(t, ts.URL)
	if err := partial(t, slow, 40_000); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the message to be reserved", func() bool { return sc.reading.Load() > 30_000 })
	hold := b.Ceiling() - b.Used()
	b.Add(hold)
	defer b.Add(-hold)
	honest.Send(`{"type":"create","clientId":"h","maxClients":4}`)
	honest.ExpectErr("Over memory budget")
	waitStale(t, ts, sc.msgStart.Load()-1)
	honest.Create("h", 4)
	slow.ExpectClose(int(closecode.TryAgain), "try again later")
	if sc.closedReason() != closecode.EndBusy {
		t.Fatalf("the slow message's socket ended with %s", sc.closedReason().Label())
	}
}

// Issue 20 review, finding 1 and 4: shedding closed healthy members. At
// the ceiling only a queue that has not drained for staleAfter is shed;
// a fresh one stays, however large, until the budget is over its limit
// and nothing else is left.
func TestShedClosesOnlyStaleQueuesAtTheCeiling(t *testing.T) {
	b := budget.New(4 << 20)
	ts := newTestServer(t, Config{Budget: b})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 8)
	stuck, sc := dialConn(t, ts)
	stuck.Join(code, "stuck")
	stuck.Read()
	h.Read()
	busy, bc := dialConn(t, ts)
	busy.Join(code, "busy")
	busy.Read()
	h.Read()
	stuck.Read()
	hold(t, sc)
	releaseBusy := hold(t, bc)
	big := `{"type":"send","to":%d,"data":"` + strings.Repeat("q", 50_000) + `"}`
	h.Send(strings.Replace(big, "%d", "1", 1))
	testutil.Eventually(
		t,
		5*time.Second,
		"the stuck member's frame to be in flight",
		func() bool { n, _ := sc.held(); return n > 0 },
	)
	sc.mu.Lock()
	since := sc.batchSince // set by the writer, under the lock
	sc.mu.Unlock()
	waitStale(t, ts, since)
	h.Send(strings.Replace(big, "%d", "2", 1)) // fresh
	testutil.Eventually(t, 5*time.Second, "the busy member's frame to be in flight", func() bool { n, _ := bc.held(); return n > 0 })
	fill := b.Ceiling() - b.Used()
	b.Add(fill)
	defer b.Add(-fill)
	ts.shed()
	if sc.closedReason() != closecode.EndShed || bc.closedReason() != closecode.EndClient {
		t.Fatalf("at the ceiling: stale queue %s, fresh queue %s; want %s and still open", sc.closedReason().Label(),
			bc.closedReason().Label(), closecode.EndShed.Label())
	}
	over := b.Limit() - b.Used() + 1
	b.Add(over)
	ts.shed()
	b.Add(-over)
	if bc.closedReason() != closecode.EndShed {
		t.Fatalf("over the limit with nothing else left, the fresh queue was not shed: %s", bc.closedReason().Label())
	}
	releaseBusy()
}

// Issue 20 review, finding 5: a socket's own memory was not in the
// budget, and nothing capped how many there were. An upgrade past
// MAX_CONNS, or one the budget cannot take, is refused before it happens
// with 503 {"error":"Server busy"}; a socket that ends gives its place
// and its cost back.
func TestUpgradeRefusedAtMaxConnsAndWhenTheBudgetIsSpent(t *testing.T) {
	b := budget.New(1 << 20)
	ts := newTestServer(t, Config{Budget: b, MaxConns: 2})
	busy := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http"), nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("upgrade: %v, %+v; want 503", err, resp)
		}
		var body strings.Builder
		buf := make([]byte, 256)
		n, _ := resp.Body.Read(buf)
		body.Write(buf[:n])
		if strings.TrimSpace(body.String()) != `{"error":"Server busy"}` {
			t.Fatalf("upgrade refused with %q", body.String())
		}
	}
	a := testutil.Dial(t, ts.URL)
	testutil.Dial(t, ts.URL)
	if got := b.Used(); got != 2*ConnBytes {
		t.Fatalf("two sockets count %d in the budget, want %d", got, 2*ConnBytes)
	}
	busy()
	a.WS.Close(websocket.StatusNormalClosure, "")
	testutil.Eventually(t, 5*time.Second, "the socket's place to be given back", func() bool { return b.Used() == ConnBytes })
	fill := b.Ceiling() - b.Used() - ConnBytes + 1
	b.Add(fill)
	busy()
	b.Add(-fill)
	testutil.Dial(t, ts.URL)
	busyErrors := 0.0
	for _, m := range gather(t, ts.reg)["party_sockets_errors_total"].GetMetric() {
		if labels(m)["kind"] == "Server busy" {
			busyErrors += m.GetCounter().GetValue()
		}
	}
	if busyErrors != 2 {
		t.Fatalf("errors_total{kind=\"Server busy\"} = %v, want 2", busyErrors)
	}
}

// MAX_CONNS' default: the sockets' own cost takes at most half the
// budget's limit.
func TestDefaultMaxConns(t *testing.T) {
	if got := DefaultMaxConns(50 << 20); got != 1600 {
		t.Fatalf("DefaultMaxConns(50 MiB) = %d, want 1600", got)
	}
	if got := DefaultMaxConns(1 << 10); got != 1 {
		t.Fatalf("DefaultMaxConns(1 KiB) = %d, want 1", got)
	}
}

// Half-sent messages can never fill the budget by themselves: together
// they may hold a fifth of its limit. Past it a message is refused
// (1013) while the others are fresh; once they have gone stale, a new
// message takes the place of the largest of them.
func TestMessagesBeingReadHaveACap(t *testing.T) {
	b := budget.New(1 << 20) // messages: 205 KiB, three of 40 KB (64 KiB buffers, 63.5 KiB reserved each)
	// Every socket here is one address's, whose share is at least two
	// messages of MAX_FRAME_BYTES (readingFloor): 256 KiB, the whole cap.
	ts := newTestServer(t, Config{Budget: b, MaxFrameBytes: 128 << 10})
	if got, want := ts.addrReadingCap(), b.Limit()/readingShare; got != want {
		t.Fatalf("one address's share %d, want the whole cap %d", got, want)
	}
	var first []*conn
	for range 3 {
		cl, c := dialConn(t, ts)
		if err := partial(t, cl, 40_000); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 5*time.Second, "the message to be reserved", func() bool { return c.reading.Load() > 30_000 })
		first = append(first, c)
	}
	if got, want := ts.reading.Load(), b.Limit()/readingShare; got > want {
		t.Fatalf("messages being read hold %d, over their cap %d", got, want)
	}
	fourth := testutil.Dial(t, ts.URL)
	go partial(t, fourth, 40_000)
	fourth.ExpectClose(int(closecode.TryAgain), "try again later")
	waitStale(t, ts, first[0].msgStart.Load()-1)
	fifth, sc := dialConn(t, ts)
	if err := partial(t, fifth, 40_000); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the new message to take a stale one's place", func() bool {
		return sc.reading.Load() > 30_000
	})
	busy := 0
	for _, c := range first {
		if c.closedReason() == closecode.EndBusy {
			busy++
		}
	}
	if busy != 1 {
		t.Fatalf("%d stale messages refused to make room for one, want 1", busy)
	}
}

// A budget full of empty rooms (hosts gone, in their grace) must not keep
// every player out: a socket the budget cannot take otherwise ends the
// rooms empty longest, as few as its cost needs, and is let in.
func TestUpgradeEndsEmptyRoomsWhenTheBudgetIsFull(t *testing.T) {
	b := budget.New(1 << 20)
	ts := newTestServer(t, Config{Budget: b})
	var codes []string
	for i := range 10 {
		h := testutil.Dial(t, ts.URL)
		codes = append(codes, h.Create("h"+itoa(i), 4))
		h.Drop() // a blip: the room waits for its host
		testutil.Eventually(t, 5*time.Second, "the host to be gone", func() bool {
			in, _ := ts.rooms.Lookup(codes[i])
			return in.Clients == 0
		})
	}
	testutil.Eventually(t, 5*time.Second, "the hosts' sockets to end", func() bool { return len(ts.conns.list()) == 0 })
	fill := b.Ceiling() - b.Used()
	b.Add(fill)
	defer b.Add(-fill)
	testutil.Dial(t, ts.URL)
	gone := 0
	for i, code := range codes {
		if _, ok := ts.rooms.Lookup(code); !ok {
			if gone != i {
				t.Fatalf("room %d ended before room %d, which was empty longer", i, gone)
			}
			gone++
		}
	}
	if want := int(ConnBytes/(rooms.RoomBytes+rooms.SlotBytes)) + 1; gone != want {
		t.Fatalf("%d empty rooms ended to let a socket in, want %d", gone, want)
	}
}
