package server

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/regions"
	"github.com/party-sockets/party-sockets/rooms"
)

// fakeNow makes l's clock one the test moves.
func fakeNow(l *addrLimits) (advance func(time.Duration)) {
	var mu sync.Mutex
	now := time.Now()
	l.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	return func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
}

// Once the machine's misses are spent, an address with no history of a
// code takes a token of the newcomers' bucket (a tenth of the machine's
// misses a second, 5 s of burst) to look it up; one that found the code
// before needs none; one that missed this minute is blocked. Before,
// every fresh address was let through (review finding 3).
func TestNewcomersOnceTheMachinesMissesAreSpent(t *testing.T) {
	l := newAddrLimits(0, 60, 120) // newcomers: 0.2 a second, burst 1
	advance := fakeNow(l)
	admit := func(ip, code string) bool { ok, _ := l.admit(ip, code); return ok }
	for i := range 50 {
		if !admit(fmt.Sprintf("10.0.0.%d", i), "ROOM01") {
			t.Fatalf("address %d refused before the machine's misses are spent", i)
		}
	}
	for i := range 120 {
		l.missCode(fmt.Sprintf("10.1.0.%d", i), "GUESS1")
	}
	if !l.machineSpent(l.now()) {
		t.Fatal("120 misses did not spend the machine's 120")
	}
	tests := []struct {
		name string
		ip   string
		code string
		want bool
	}{
		{"a known address, its own code", "10.0.0.7", "ROOM01", true},
		{"an address that missed", "10.1.0.7", "ROOM01", false},
		{"a fresh address takes the one token", "10.2.0.1", "ROOM01", true},
		{"a fresh address finds none", "10.2.0.2", "ROOM01", false},
		{"a known address, another code, finds none", "10.0.0.7", "GUESS2", false},
		{"the first fresh address, its code again", "10.2.0.1", "ROOM01", true},
	}
	for _, tt := range tests {
		if got := admit(tt.ip, tt.code); got != tt.want {
			t.Errorf("%s: admit(%s, %s) = %v, want %v", tt.name, tt.ip, tt.code, got, tt.want)
		}
	}
	advance(5 * time.Second) // one token
	if !admit("10.2.0.3", "GUESS3") || admit("10.2.0.4", "GUESS4") {
		t.Error("5 s later: want one newcomer let in, and only one")
	}
	advance(time.Minute) // the machine's window is over
	for i := range 20 {
		if !admit(fmt.Sprintf("10.3.0.%d", i), "GUESS5") {
			t.Fatalf("a minute later, newcomer %d refused", i)
		}
	}
}

// A token buys a guess: a lookup that finds its room gives it back, so
// fresh addresses asking for a live code cannot spend the bucket for new
// players; and one address takes at most a quarter of the bucket. Before,
// 10 lookups of a live code left every new player refused (issue 20's
// second review, finding 2).
func TestNewcomersHitsGiveTheTokenBack(t *testing.T) {
	l := newAddrLimits(0, 60, 1200) // newcomers: 2 a second, burst 10; an address 0.5, burst 2.5
	advance := fakeNow(l)
	for i := range 1200 {
		l.missCode(fmt.Sprintf("10.1.%d.%d", i/256, i%256), "GUESS1")
	}
	for i := range 100 { // fresh addresses, each finding the live room
		ok, took := l.admit(fmt.Sprintf("10.4.0.%d", i), "LIVE01")
		if !ok {
			t.Fatalf("lookup %d of a live code refused: the hits before spent the bucket", i)
		}
		l.found(fmt.Sprintf("10.4.0.%d", i), took)
	}
	ok, _ := l.admit("10.5.0.1", "NEWONE")
	if !ok {
		t.Fatal("a new player refused after 100 hits")
	}
	// One address's share: 2 guesses, then none until its share refills,
	// while other addresses still find tokens.
	var got []bool
	for i := range 4 {
		ok, _ := l.admit("10.6.0.1", fmt.Sprintf("MISS%02d", i))
		got = append(got, ok)
	}
	if !got[0] || !got[1] || got[2] || got[3] {
		t.Errorf("one address's 4 guesses: %v, want its share of 2", got)
	}
	if ok, _ := l.admit("10.6.0.2", "OTHER1"); !ok {
		t.Error("another address refused while the bucket has tokens")
	}
	advance(2 * time.Second)
	if ok, _ := l.admit("10.6.0.1", "MISS09"); !ok {
		t.Error("2 s later, the address's share has not refilled")
	}
}

// Without a machine's budget (or without misses counted at all) there
// are no newcomers to hold: nothing is refused.
func TestNewcomersWithoutAMachineBudget(t *testing.T) {
	for _, l := range []*addrLimits{newAddrLimits(0, 60, 0), newAddrLimits(0, 0, 1200)} {
		for i := range 2000 {
			l.missCode(fmt.Sprintf("10.1.%d.%d", i/256, i%256), "GUESS1")
			if ok, _ := l.admit(fmt.Sprintf("10.2.%d.%d", i/256, i%256), "ROOM01"); !ok {
				t.Fatalf("misses %d, machine %d: newcomer %d refused", l.missesPerMin, l.machineMissesPerMin, i)
			}
		}
	}
}

// fraCode is the nth code of fra, a region this test's machine is in.
func fraCode(n int) string { return regions.Encode(regions.Pack(6, uint32(n))) }

// No oracle: while the machine's misses are spent, fresh addresses'
// lookups of a live code and of absent ones get the same answer, 429,
// once the newcomers' tokens are gone, over HTTP and on a socket. Before,
// every lookup of the live code from a fresh address answered 200.
func TestNoOracleOnceTheMachinesMissesAreSpent(t *testing.T) {
	clk := &testutil.FakeClock{}
	mgr := rooms.NewManager(rooms.Config{Region: "fra", HostGrace: time.Minute, Clock: clk, Codes: regions.NewGenerator("fra", nil)})
	ts := newTestServerWithManager(t, Config{AppName: "app", Region: "fra", Instance: "0a1b2c3d4e5f01", JoinMissesPerMin: 60,
		MachineMissesPerMin: 60, DashboardURL: "http://127.0.0.1:9/"}, mgr, clk)
	h := testutil.Dial(t, ts.URL)
	live := h.Create("h", 4)
	lookup := func(ip, code string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", ts.URL+"/room/"+code, nil)
		req.Header.Set("Fly-Region", "fra")
		req.Header.Set("Fly-Client-Ip", ip)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 60 {
		if got := lookup(fmt.Sprintf("10.1.0.%d", i), fraCode(i)); got != 404 {
			t.Fatalf("miss %d = %d, want 404", i, got)
		}
	}
	answers := map[string]map[int]int{"live": {}, "absent": {}}
	for i := range 40 {
		code, kind := fraCode(1000+i), "absent"
		if i%2 == 0 {
			code, kind = live, "live"
		}
		answers[kind][lookup(fmt.Sprintf("10.2.0.%d", i), code)]++
	}
	// The bucket holds 5 s of 0.1 a second: one token, and the test takes
	// well under the 10 s the next one needs.
	if answers["live"][200]+answers["absent"][404] > 2 || answers["live"][429] < 19 || answers["absent"][429] < 19 {
		t.Errorf("fresh addresses' lookups: %v; want at most 2 answered, the rest 429 for live and absent codes alike", answers)
	}
	g := testutil.Dialer{Header: http.Header{"Fly-Region": {"fra"}, "Fly-Client-Ip": {"10.3.0.1"}}}.Dial(t, ts.URL)
	g.Send(`{"type":"join","clientId":"g","room":"` + live + `"}`)
	g.ExpectErr("Too many failed joins, try again later")
}
