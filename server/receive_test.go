package server

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/budget"
	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/internal/wire"
	"github.com/party-sockets/party-sockets/regions"
	"github.com/party-sockets/party-sockets/rooms"
)

// snapshotBody is a valid hand-off of room code from machine from, with
// slots slots (all vacant).
func snapshotBody(code, transfer, from string, slots int) []byte {
	var b strings.Builder
	b.WriteString(
		`{"v":1,"transfer":"` + transfer + `","from":"` + from + `","code":"` + code + `","maxClients":1000,"next":` + itoa(
			slots,
		) + `,"graceMs":-1,"slots":[`,
	)
	for i := range slots {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"index":` + itoa(i) + `,"key":"` + keyHex(code+itoa(i)) + `"}`)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// Issue 20: 8 MiB of {"slots":[{},{},...]} was decoded whole (2.8
// million slots) before anything was checked. The count comes first:
// every way of naming the field encoding/json takes is counted, and a
// body over the bounds is refused having built nothing.
func TestHandOffCountedBeforeItIsDecoded(t *testing.T) {
	slots := func(key string, n int) []byte {
		return []byte(`{"` + key + `":[` + strings.Repeat(`{},`, n-1) + `{}]}`)
	}
	window := func(n int) []byte {
		return []byte(`{"slots":[{"index":0,"Window":[` + strings.Repeat(`{},`, n-1) + `{}]}]}`)
	}
	tests := []struct {
		name string
		body []byte
		want error
	}{
		{"slots at the bound", slots("slots", 20), nil},
		{"one slot too many", slots("slots", 21), errTooManySlots},
		{"upper case", slots("SLOTS", 21), errTooManySlots},
		{"a long s", slots("ſlots", 21), errTooManySlots},
		{"escaped", slots(`\u0073lots`, 21), errTooManySlots},
		{
			"the key twice",
			[]byte(`{"slots":[` + strings.Repeat(`{},`, 10) + `{}],"slots":[` + strings.Repeat(`{},`, 9) + `{}]}`),
			errTooManySlots,
		},
		{"a window at the bound", window(4), nil},
		{"a window too long", window(5), errWindowTooLong},
		{"not JSON", []byte(`{"slots":[`), wire.ErrInvalidJSON},
		{"not UTF-8", []byte("{\"origin\":\"\xff\"}"), wire.ErrInvalidUTF8},
		{"not an object", []byte(`[{}]`), wire.ErrInvalidJSON},
	}
	for _, tt := range tests {
		if _, err := scanSnapshot(tt.body, 20, 4); err != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	// 5 MiB of empty slots: refused without an allocation per slot.
	big := slots("slots", (MaxHandoffBytes-12)/3)
	allocs := testing.AllocsPerRun(1, func() {
		if _, _, err := decodeSnapshot(big, 4004, 256); err != errTooManySlots {
			t.Fatalf("5 MiB of slots: %v", err)
		}
	})
	if allocs > 10 {
		t.Fatalf("refusing 5 MiB of slots took %v allocations", allocs)
	}
}

// A hand-off's decode is reserved in the memory budget before its body is
// read: one the budget cannot take is refused (503), and the reservation
// is given back whatever happens; the room then costs what it holds.
func TestHandOffReservedInTheBudget(t *testing.T) {
	t.Parallel()
	b := budget.New(1 << 20)
	ts := newTestServer(t, Config{Instance: "0000000200000a", HandoffSecret: testSecret, Budget: b})
	from := signer(t, "0000000300000a")
	body := snapshotBody("BIG001", "t1", "0000000300000a", 4000) // its decode: more than the budget's 1 MiB
	if decodePerByteX2*len(body)/2 < 1<<20 {
		t.Fatalf("the body is only %d bytes", len(body))
	}
	if status, answer := signedCall(t, from, ts.URL, http.MethodPost, handoffPath, body, nil); status != 503 ||
		answer != `{"error":"Over memory budget"}` {
		t.Fatalf("a hand-off the budget cannot take: %d %s", status, answer)
	}
	if b.Used() != 0 {
		t.Fatalf("the refused hand-off left %d bytes reserved", b.Used())
	}
	small := snapshotBody("SMALL1", "t2", "0000000300000a", 100)
	if status, answer := signedCall(t, from, ts.URL, http.MethodPost, handoffPath, small, nil); status != 200 {
		t.Fatalf("a hand-off the budget can take: %d %s", status, answer)
	}
	if got, want := b.Used(), int64(rooms.RoomBytes+100*rooms.SlotBytes); got != want {
		t.Fatalf("the room is counted as %d bytes, want itself and its 100 slots (%d)", got, want)
	}
}

// One hand-off decodes at a time: another waits briefly, then is refused
// (503), and its sender tries again or elsewhere.
func TestHandOffOneDecodeAtATime(t *testing.T) {
	old := handoffDecodeWait
	handoffDecodeWait = 50 * time.Millisecond
	t.Cleanup(func() { handoffDecodeWait = old })
	ts := newTestServer(t, Config{Instance: "0000000200000a", HandoffSecret: testSecret})
	from := signer(t, "0000000300000a")
	ts.decoding <- struct{}{} // a decode under way
	body := snapshotBody("WAIT01", "t1", "0000000300000a", 2)
	if status, answer := signedCall(t, from, ts.URL, http.MethodPost, handoffPath, body, nil); status != 503 ||
		answer != `{"error":"Too many hand-offs at once"}` {
		t.Fatalf("a hand-off while another decodes: %d %s", status, answer)
	}
	<-ts.decoding
	if status, answer := signedCall(t, from, ts.URL, http.MethodPost, handoffPath, body, nil); status != 200 {
		t.Fatalf("once it is done: %d %s", status, answer)
	}
}

// blackHole accepts connections on ip:port and never answers; it counts
// them.
func blackHole(t *testing.T, ip string, port int) *atomic.Int64 {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, itoa(port)))
	if err != nil {
		t.Skipf("%s:%d is taken: %v", ip, port, err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			t.Cleanup(func() { c.Close() })
		}
	}()
	return &n
}

// Issue 20: a hand-off could take a code another machine of the region
// held; a player joining by code then landed in the copy. The receiver
// asks the region's other machines first, never the sender (it holds the
// room's lock while it waits), within a bound: a machine that holds the
// code refuses the hand-off, one that cannot say does not.
func TestHandOffAsksTheOtherSiblings(t *testing.T) {
	old := holderWait
	holderWait = 300 * time.Millisecond
	t.Cleanup(func() { holderWait = old })
	ms := newMachineSet(t)
	a, b := ms.start(2, "fra", ""), ms.start(3, "fra", "")
	ms.start(6, "iad", "") // another region: not asked
	host := testutil.Dial(t, b.url)
	held := host.Create("host", 4)
	// The sender, 0000000400000a, and 0000000500000a: listed, never answer.
	sender := signer(t, "0000000400000a")
	ms.dns.Add("0000000400000a", "fra", "127.0.0.4")
	ms.dns.Add("0000000500000a", "fra", "127.0.0.5")
	askedSender, askedMute := blackHole(t, "127.0.0.4", ms.port), blackHole(t, "127.0.0.5", ms.port)

	body := snapshotBody(held, "t1", "0000000400000a", 2)
	if status, answer := signedCall(t, sender, a.url, http.MethodPost, handoffPath, body, nil); status != 409 ||
		answer != `{"error":"Room code taken"}` {
		t.Fatalf("a hand-off of a code b holds: %d %s", status, answer)
	}
	if a.rooms.Held(held) {
		t.Fatal("a took a code b holds")
	}
	fresh := regions.NewGenerator("fra", nil)
	code, _ := fresh.Next()
	body = snapshotBody(code, "t2", "0000000400000a", 2)
	if status, answer := signedCall(t, sender, a.url, http.MethodPost, handoffPath, body, nil); status != 200 {
		t.Fatalf("a hand-off of a code nobody holds, one sibling mute: %d %s", status, answer)
	}
	if askedMute.Load() == 0 || askedSender.Load() != 0 {
		t.Fatalf("connections: %d to the mute sibling, %d to the sender; want some, and none", askedMute.Load(), askedSender.Load())
	}
	host.Send(`{"type":"send","data":1,"to":0}`)
	host.Expect(`{"type":"message","from":0,"data":1}`)
}

// A machine of this release signs its calls; to a sibling of the previous
// release, which refuses them (401, no marker), it makes the call once
// more in that release's bearer form. To a sibling of this release that
// refuses, the secret itself is never sent.
func TestSenderFallsBackToBearerForAnOldSibling(t *testing.T) {
	t.Parallel()
	var signed, bearer atomic.Int64
	old := newTestHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Party-Auth") != "" {
			signed.Add(1)
		}
		if r.Header.Get("Authorization") != "Bearer "+testSecret {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "Unauthorized"})
			return
		}
		bearer.Add(1)
		writeJSON(w, http.StatusOK, loadInfo{Instance: "old", Rooms: 3})
	})
	s := signer(t, "0000000300000a")
	var load loadInfo
	if err := s.internalCall(t.Context(), http.MethodGet, "0000000400000a", old, loadPath, nil, &load); err != nil ||
		load.Rooms != 3 {
		t.Fatalf("a call to a sibling of the previous release: %+v %v", load, err)
	}
	if signed.Load() != 1 || bearer.Load() != 1 {
		t.Fatalf("%d signed and %d bearer calls, want one of each", signed.Load(), bearer.Load())
	}
	other := newTestServer(t, Config{Instance: "0000000400000a", HandoffSecret: strings.Repeat("o", 32)})
	var leaked atomic.Int64
	spy := newTestHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Add(1)
		}
		other.ServeHTTP(w, r)
	})
	if err := s.internalCall(t.Context(), http.MethodGet, "0000000400000a", spy, loadPath, nil, &load); err == nil ||
		leaked.Load() != 0 {
		t.Fatalf("a sibling of this release with another secret: %v, %d bearer calls", err, leaked.Load())
	}
}

// newTestHTTP serves h on loopback and returns its host:port.
func newTestHTTP(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// FuzzHandoffSnapshot: whatever a hand-off body says, the count before the
// decode is at least what json.Unmarshal builds (no slot or frame is
// built uncounted) and within the bounds; decoding and importing never
// panic, and a room it makes is a room this machine could serve (its
// code is held, its members' count is zero).
func FuzzHandoffSnapshot(f *testing.F) {
	good, _ := json.Marshal(
		rooms.Snapshot{
			Version:    1,
			Transfer:   "t",
			Code:       "ABC123",
			MaxClients: 4,
			Next:       3,
			GraceMs:    500,
			State:      json.RawMessage(`{"a":[1,2]}`),
			Slots: []rooms.SlotSnapshot{{Index: 0, Key: strings.Repeat("ab", 32), Recover: true, Seq: 2,
				Window: []rooms.FrameSnapshot{
					{Seq: 1, Frame: `{"type":"peer_joined","index":2,"seq":1}`},
					{Seq: 2, AgeMs: 10, Frame: `{"type":"message","from":2,"seq":2}`},
				}},
				{Index: 2, Key: strings.Repeat("cd", 32), Live: true}},
		},
	)
	f.Add(good)
	f.Add(
		[]byte(
			`{"v":1,"transfer":"x","code":"A","maxClients":1e308,"next":1,"graceMs":-1,"slots":[{"index":0,"key":"` + strings.Repeat(
				"0",
				64,
			) + `"}]}`,
		),
	)
	f.Add([]byte(`{"v":1,"slots":[{"window":[{"frame":"{"}]}]}`))
	f.Add([]byte(`{"SLOTS":[{}],"ſlots":[{"WINDOW":[{},{}]}],"\u0073lots":[{"wındow":[]}]}`))
	f.Add([]byte(`{"slots":[{"window":[{}],"window":[{},{}]}],"slots":[{}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		mgr := rooms.NewManager(rooms.Config{Instance: "m", HostGrace: time.Minute, Codes: regions.NewGenerator("", nil), MaxRooms: 10,
			MaxMembers: 4, RecoverFrames: 4})
		maxSlots, maxFrames := mgr.SnapshotBounds()
		snap, c, err := decodeSnapshot(body, maxSlots, maxFrames)
		if err != nil {
			return
		}
		frames := 0
		for _, sl := range snap.Slots {
			frames += len(sl.Window)
			if len(sl.Window) > maxFrames {
				t.Fatalf("a window of %d frames passed the count (bound %d)", len(sl.Window), maxFrames)
			}
		}
		if len(snap.Slots) > c.slots || len(snap.Slots) > maxSlots || frames > c.frames {
			t.Fatalf(
				"built %d slots and %d frames; counted %d and %d (bound %d slots)",
				len(snap.Slots),
				frames,
				c.slots,
				c.frames,
				maxSlots,
			)
		}
		if err := mgr.Import(snap); err != nil {
			if mgr.Len() != 0 {
				t.Fatalf("a refused snapshot left a room: %v", err)
			}
			return
		}
		info, ok := mgr.Lookup(snap.Code)
		if !ok || info.Clients != 0 || info.MaxClients < 1 || info.MaxClients > 4 {
			t.Fatalf("imported room: %+v %v", info, ok)
		}
	})
}
