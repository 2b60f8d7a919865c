package abuse

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// Finding 3: hand-off bodies were decoded whole before any check, as many
// at once as came. Against a 256 MB machine's settings (GOMEMLIMIT=200MiB)
// and a caller with the secret, in both forms a sibling may use: signed
// (this release) and the previous release's bearer form.
func TestHandOffBodiesDecodedWithinBounds(t *testing.T) {
	secret := strings.Repeat("s", 32)
	for _, tc := range []struct {
		from caller
		size int // the largest body each form may carry (docs/deploys.md)
	}{{caller{secret: secret, id: siblingID(9)}, 5 << 20}, {caller{secret: secret, id: siblingID(9), bearerOnly: true}, 8 << 20}} {
		from := tc.from
		// Empty slots: {"slots":[{},{},...]}.
		body := append([]byte(`{"slots":[`), bytes.Repeat([]byte(`{},`), (tc.size-12)/3)...)
		body = append(body[:len(body)-1], "]}"...)
		t.Run(fmt.Sprint("bearer only ", from.bearerOnly), func(t *testing.T) {
			srv := testutil.Start(t, "GOMEMLIMIT=200MiB", "HANDOFF_SECRET="+secret)
			status, answer := from.post(t, srv.URL, "/.internal/handoff", body)
			one := srv.Status(t, "VmHWM")
			t.Logf("one %d-byte body: %d %.80s; peak RSS %.0f MB", len(body), status, answer, float64(one)/1e6)
			statuses := make([]int, 2)
			var wg sync.WaitGroup
			for i := range statuses {
				wg.Go(func() { statuses[i], _ = from.post(t, srv.URL, "/.internal/handoff", body) })
			}
			wg.Wait()
			two := srv.Status(t, "VmHWM")
			t.Logf("two more at once: %v; peak RSS %.0f MB", statuses, float64(two)/1e6)
			if two >= 256e6 {
				t.Errorf("peak RSS %.0f MB: over a 256 MB machine", float64(two)/1e6)
			}
			healthyPair(t, srv.URL)
		})
	}
}

// Finding 3: eight valid rooms, handed over by a caller with the secret,
// added 98 MB of live heap while the budget counted 3 MB: their windows
// were full of the smallest frames the checks took ("{}"), each costing
// a window entry's 56 bytes and counted as 2. A window now holds only
// frames this server sends, numbered; such rooms are refused. Rooms of
// the smallest real frames are taken as the budget allows, and cost it
// what the same room made here costs (docs/deploys.md).
func TestHandedOverRoomsCountInTheBudget(t *testing.T) {
	secret := strings.Repeat("s", 32)
	debug := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	srv := testutil.Start(t, "GOMEMLIMIT=200MiB", "HANDOFF_SECRET="+secret, "DEBUG_ADDR="+debug)
	from := caller{secret: secret, id: siblingID(9), bearerOnly: true}
	testutil.Eventually(t, 5*time.Second, "the pprof listener", func() bool {
		resp, err := http.Get("http://" + debug + "/debug/pprof/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	answered := 0 // hand-offs answered so far: received or refused
	send := func(what, frame string) {
		heap0, counted0 := liveHeap(t, debug), budgetAfter(t, srv, answered)
		statuses := map[string]int{}
		for i := range 8 {
			status, answer := from.post(t, srv.URL, "/.internal/handoff", fullRoom(fmt.Sprintf("%s%02d", what[:4], i), frame))
			statuses[fmt.Sprint(status, " ", answer)]++
		}
		answered += 8
		heap, counted := liveHeap(t, debug)-heap0, budgetAfter(t, srv, answered)-counted0
		t.Logf("eight rooms of %s: %v; live heap +%.1f MB, the budget counts +%.1f MB", what, statuses, heap/1e6, counted/1e6)
		if what == "empty frames" && heap > 2*counted+8e6 {
			t.Errorf("eight rooms of %s hold %.1f MB of live heap; the budget counts %.1f MB", what, heap/1e6, counted/1e6)
		}
	}
	send("empty frames", `{}`)
	// Until each kept frame also counts its entry (the recovery windows'
	// own accounting, which an imported room shares), the budget counts
	// such rooms at about a third of their heap: a figure, not a bound.
	send("state frames", `{"type":"state","data":0,"seq":%d}`)
}

// budgetAfter is the server's memory budget in use, read from a metrics
// page rendered after n hand-offs were answered (received, or refused
// with an error).
func budgetAfter(t *testing.T, srv *testutil.Server, n int) float64 {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, "a metrics page with every hand-off", func() bool {
		got := srv.Metric(t, "party_sockets_handoff_rooms_total", `result="received"`) + srv.Metric(t, "party_sockets_errors_total")
		return got == float64(n)
	})
	return srv.Metric(t, "party_sockets_memory_budget_used_bytes")
}

// fullRoom is a room of 1000 members whose slots that recover all have a
// full window of frames made by frame (a format with the seq), as large as
// fits in the previous release's 8 MiB hand-off.
func fullRoom(code, frame string) map[string]any {
	var slots []map[string]any
	size := 0
	for i := 0; i < 4004 && size < 7<<20; i++ {
		var window []map[string]any
		for seq := 1; seq <= 256; seq++ {
			f := frame
			if strings.Contains(frame, "%d") {
				f = fmt.Sprintf(frame, seq)
			}
			window = append(window, map[string]any{"seq": seq, "ageMs": 0, "frame": f})
			size += len(f) + 40
		}
		slots = append(
			slots,
			map[string]any{"index": i, "key": keyOf(code + strconv.Itoa(i)), "recover": true, "seq": 256, "window": window},
		)
	}
	return map[string]any{"v": 1, "transfer": "t-" + code, "from": siblingID(9), "code": code, "maxClients": 1000,
		"origin": "https://game.example", "next": len(slots), "graceMs": -1, "slots": slots}
}

// liveHeap is the server's live heap after a collection (pprof's heap
// page runs one), in bytes.
func liveHeap(t *testing.T, debug string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + debug + "/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	_, rest, ok := strings.Cut(string(page), "# HeapAlloc = ")
	if !ok {
		t.Fatalf("no HeapAlloc on the heap page")
	}
	v, _ := strconv.ParseFloat(strings.Fields(rest)[0], 64)
	return v
}
