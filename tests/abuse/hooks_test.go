package abuse

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// hookKey is the receiver's key; hookSecret the same as WEBHOOK_SECRET.
var (
	hookKey    = []byte("a-webhook-key-for-the-abuse-test")
	hookSecret = "whsec_" + base64.StdEncoding.EncodeToString(hookKey)
)

// hookEvent is what the receiver keeps of one delivered event.
type hookEvent struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      struct {
		Room   string `json:"room"`
		Index  *int   `json:"index"`
		Reason string `json:"reason"`
	} `json:"data"`
}

// receiver is a game's webhook endpoint on loopback that answers after
// delay. It checks every signature itself (HMAC-SHA256 of
// id.timestamp.body, the Standard Webhooks scheme), keeps each webhook-id
// once (delivery is at least once) and notes the most requests it had in
// flight at once.
type receiver struct {
	delay time.Duration

	mu       sync.Mutex // guards the fields below
	ids      map[string]bool
	byRoom   map[string][]hookEvent
	order    []string // rooms, in the order their events arrived
	forged   int
	inflight int
	peak     int
}

func newReceiver(t *testing.T, delay time.Duration) (*receiver, string) {
	rc := &receiver{delay: delay, ids: map[string]bool{}, byRoom: map[string][]hookEvent{}}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return rc, srv.URL
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.inflight++
	rc.peak = max(rc.peak, rc.inflight)
	rc.mu.Unlock()
	defer func() {
		rc.mu.Lock()
		rc.inflight--
		rc.mu.Unlock()
	}()
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	select { // the receiver's own latency
	case <-time.After(rc.delay):
	case <-r.Context().Done():
		return
	}
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	mac := hmac.New(sha256.New, hookKey)
	fmt.Fprintf(mac, "%s.%s.", id, ts)
	mac.Write(body)
	sec, _ := strconv.ParseInt(ts, 10, 64)
	var ev hookEvent
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if r.Header.Get("webhook-signature") != "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)) ||
		time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute || json.Unmarshal(body, &ev) != nil {
		rc.forged++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if !rc.ids[id] {
		rc.ids[id] = true
		rc.byRoom[ev.Data.Room] = append(rc.byRoom[ev.Data.Room], ev)
		rc.order = append(rc.order, ev.Data.Room)
	}
}

// events are room's events as delivered, "type" or "type index".
func (rc *receiver) events(room string) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, e := range rc.byRoom[room] {
		s := e.Type
		if e.Data.Index != nil {
			s += " " + strconv.Itoa(*e.Data.Index)
		}
		out = append(out, s)
	}
	return out
}

// inOrder reports a room whose events arrived out of the order they
// happened in (their timestamps), or "".
func (rc *receiver) inOrder() string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for room, evs := range rc.byRoom {
		for i := 1; i < len(evs); i++ {
			if evs[i].Timestamp < evs[i-1].Timestamp {
				return fmt.Sprintf("%s: %s at %s after %s at %s", room, evs[i].Type, evs[i].Timestamp, evs[i-1].Type, evs[i-1].Timestamp)
			}
		}
	}
	return ""
}

// churn joins and leaves rooms n times in all, k sockets at a time: each
// join is a new socket that waits for joined, then drops.
func churn(t *testing.T, url string, codes []string, n, k int) time.Duration {
	start := time.Now()
	var failed atomic.Int64
	parallel(n, k, func(i int) {
		c, _, err := testutil.Dialer{Timeout: 10 * time.Second, SelfClose: true}.TryDial(t, url)
		if err != nil {
			failed.Add(1)
			return
		}
		defer c.Drop()
		msg, _ := json.Marshal(map[string]any{"type": "join", "clientId": fmt.Sprintf("churn-%d", i), "room": codes[i%len(codes)]})
		if c.TrySend(string(msg)) != nil {
			failed.Add(1)
			return
		}
		for {
			b, err := c.Read()
			if err != nil {
				failed.Add(1)
				return
			}
			if strings.Contains(b, `"type":"joined"`) {
				return
			}
		}
	})
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d churn joins failed", f, n)
	}
	return time.Since(start)
}

// Finding 6: one client made the game's webhooks disappear. 600 joins and
// leaves in a fraction of a second filled the one queue of a receiver that
// answers in 50 ms; the newest events were dropped, so a real game that
// came next lost room.created, both player.joined and room.closed. Its
// events must all arrive, in order, while the attacker's churn is still
// queued; and the attacker's own room events survive its player events.
func TestWebhooksKeepTheGamesEvents(t *testing.T) {
	for _, rooms := range []int{1, 12} { // the finding; and more churning rooms than deliveries in flight
		t.Run(fmt.Sprintf("churn in %d rooms", rooms), func(t *testing.T) {
			rc, url := newReceiver(t, 50*time.Millisecond)
			srv := testutil.Start(t, "WEBHOOK_URL="+url, "WEBHOOK_SECRET="+hookSecret, "UPGRADES_PER_SEC=0")
			var codes []string
			for i := range rooms {
				codes = append(codes, testutil.Dial(t, srv.URL).Create(fmt.Sprintf("attacker-%d", i), 100))
			}
			took := churn(t, srv.URL, codes, 600, 20)
			host, guest, game := pair(t, srv.URL, "game", 4)
			host.Send(`{"type":"close_room"}`)
			if code := guest.CloseCode(5 * time.Second); code != 4001 {
				t.Fatalf("guest closed with %d, want 4001", code)
			}
			want := "room.created|player.joined 0|player.joined 1|room.closed"
			closed := time.Now()
			testutil.Poll(15*time.Second, func() bool { return strings.Join(rc.events(game), "|") == want })
			dropped := srv.Metric(t, "party_sockets_webhooks_total", `result="dropped"`)
			t.Logf("600 joins and leaves in %d room(s) in %.2f s: %v dropped; the game's events %.2f s after its close: %q",
				rooms, took.Seconds(), dropped, time.Since(closed).Seconds(), rc.events(game))
			if got := strings.Join(rc.events(game), "|"); got != want {
				t.Fatalf("the game's webhooks: %q, want %q (%v events dropped)", got, want, dropped)
			}
			for _, code := range codes {
				if evs := rc.events(code); len(evs) == 0 || evs[0] != "room.created" {
					t.Errorf("attacker room %s: first event delivered %q, want room.created", code, evs)
				}
			}
			if bad := rc.inOrder(); bad != "" {
				t.Errorf("a room's events out of order: %s", bad)
			}
			rc.mu.Lock()
			defer rc.mu.Unlock()
			t.Logf("deliveries in flight at once: at most %d", rc.peak)
			if rc.peak > 8 {
				t.Errorf("%d deliveries in flight at once, bound 8", rc.peak)
			}
			if rc.forged != 0 {
				t.Errorf("%d deliveries failed the receiver's signature check", rc.forged)
			}
		})
	}
}

// Issue 20, webhooks: one address's churn cannot starve the rest. A full
// queue dropped the newest player event of the room with the most waiting:
// fair between rooms, not between the addresses that cause the events. One
// address makes 200 rooms and joins and leaves them in turn, so each holds
// a few player events; a game of a host and 6 guests, each from an address
// of its own, then has more waiting than any one attacker room, and its
// newest player.joined are the ones to go. Its events must all arrive, in
// order, while the attacker's churn goes on.
//
// On the code before the fix: 3 of the game's 7 player.joined arrived
// (9,240 joins and leaves, 17,921 events dropped). After it: all 7, its
// room.closed 6.5 s after the close (the queue ahead of it drains at 160
// events a second).
//
// The per-address rates are off (UPGRADES_PER_SEC=0, CREATES_PER_MIN=0):
// they only set how fast one address fills the queue. A receiver that is
// down for a minute lets the default rates fill it too; the test would
// take that minute.
func TestOneAddressCannotStarveTheGamesWebhooks(t *testing.T) {
	rc, url := newReceiver(t, 50*time.Millisecond)
	srv := testutil.Start(t, "WEBHOOK_URL="+url, "WEBHOOK_SECRET="+hookSecret, "UPGRADES_PER_SEC=0", "CREATES_PER_MIN=0")
	attacker := addr16(20, 0)
	codes := make([]string, 200)
	parallel(len(codes), 20, func(i int) {
		p, code, err := peerCreate(srv.Addr, attacker, fmt.Sprintf("attacker-%d", i), 100)
		if err != nil {
			t.Errorf("the attacker's room %d: %v", i, err)
			return
		}
		p.reset() // not a clean close: the room waits for its host through the grace
		codes[i] = code
	})
	if t.Failed() {
		t.FailNow()
	}
	stop := make(chan struct{})
	var churned atomic.Int64
	churning := make(chan struct{})
	go func() {
		defer close(churning)
		deadline := time.Now().Add(60 * time.Second)
		for i := 0; i < 100_000 && time.Now().Before(deadline); i += 20 {
			select {
			case <-stop:
				return
			default:
			}
			parallel(20, 20, func(k int) {
				n := i + k
				p, err := peerJoin(srv.Addr, attacker, codes[n%len(codes)], fmt.Sprintf("churn-%d", n/len(codes)%3), 0)
				if err == nil {
					p.reset()
					churned.Add(1)
				}
			})
		}
	}()
	stopChurn := sync.OnceFunc(func() { close(stop); <-churning })
	defer stopChurn()
	full := testutil.Poll(20*time.Second, func() bool {
		return srv.Metric(t, "party_sockets_webhooks_total", `result="dropped"`) > 0
	})
	if !full {
		t.Fatalf("the queue never filled: %d joins and leaves", churned.Load())
	}
	host, game, err := peerCreate(srv.Addr, addr16(21, 0), "game-host", 8)
	if err != nil {
		t.Fatalf("the game's create: %v", err)
	}
	defer host.close()
	want := []string{"room.created", "player.joined 0"}
	var guests []*peer
	for i := 1; i <= 6; i++ {
		g, err := peerJoin(srv.Addr, addr16(21, i), game, fmt.Sprintf("game-guest-%d", i), 0)
		if err != nil {
			t.Fatalf("guest %d's join: %v", i, err)
		}
		defer g.close()
		guests = append(guests, g)
		want = append(want, fmt.Sprintf("player.joined %d", i))
	}
	host.send(`{"type":"close_room"}`)
	for i, g := range guests {
		// No frame has type "closing": expect reads on to the close.
		if _, err := g.expect("closing", 5*time.Second); err == nil || err.Error() != "closed with 4001" {
			t.Fatalf("guest %d: %v, want closed with 4001", i+1, err)
		}
	}
	want = append(want, "room.closed")
	churnedAtClose := churned.Load()
	// The churn goes on while the game's events wait: more of the
	// attacker's events come to the full queue after the game's.
	testutil.Poll(5*time.Second, func() bool { return churned.Load() >= churnedAtClose+200 })
	stopChurn()
	closed := time.Now()
	// room.closed is the last of the game's events, and room events are
	// dropped only when no player event is left: once it is in, every
	// event of the game that was kept is in.
	testutil.Poll(20*time.Second, func() bool { return slices.Contains(rc.events(game), "room.closed") })
	dropped := srv.Metric(t, "party_sockets_webhooks_total", `result="dropped"`)
	t.Logf("%d joins and leaves from one address in %d rooms (%d after the game closed): %v events dropped; "+
		"the game's events %.2f s after its close: %q", churned.Load(), len(codes), churned.Load()-churnedAtClose, dropped,
		time.Since(closed).Seconds(), rc.events(game))
	if got := strings.Join(rc.events(game), "|"); got != strings.Join(want, "|") {
		t.Fatalf("the game's webhooks: %q, want %q (%v events dropped)", got, strings.Join(want, "|"), dropped)
	}
	if bad := rc.inOrder(); bad != "" {
		t.Errorf("a room's events out of order: %s", bad)
	}
}
