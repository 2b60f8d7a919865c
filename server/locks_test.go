package server

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// Issue 21, item 6: Move holds a room's lock while its snapshot travels to
// a sibling (up to 6 s), and the scrape, GET /, GET /room/<code> and a
// sibling's load call locked every room (or the room) to count it: each
// waited for the hand-off. Now each answers while a hand-off is held at
// the sibling, and what it answers still counts the moving room, which is
// here until the move ends.
func TestReadsDoNotWaitForAMovingRoom(t *testing.T) {
	ms := newMachineSet(t)
	// Unreleased, a held call is served after 1.5 s, within the sender's
	// 2 s try: a read that waited for the room then sees it gone.
	hold := ms.holdHandoffs(1500 * time.Millisecond)
	a, b := ms.start(2, "fra", ""), ms.start(3, "fra", "")
	host := testutil.Dial(t, a.url)
	moving := host.Create("host", 4)
	p := testutil.Dial(t, a.url)
	p.Join(moving, "p")
	p.Expect(`{"type":"joined","room":"` + moving + `","index":1,"peers":[0]}`)
	host.Expect(`{"type":"peer_joined","index":1}`)

	done := make(chan struct{})
	go func() { defer close(done); a.HandOff(t.Context()) }()
	<-hold.arrived // the snapshot is at b: a holds the moving room's lock
	other := testutil.Dial(t, a.url).Create("other", 8)
	codes := []string{moving, other}
	slices.Sort(codes)
	clients := map[string]int{moving: 2, other: 1}

	player := asPlayer("203.0.113.7")
	reads := []struct {
		name string
		do   func() (int, string)
		want string
	}{
		{"a scrape", func() (int, string) { return scrape(t, a.url) }, "rooms 2 clients 3"},
		{"GET /", func() (int, string) { return get(t, a.url+"/", nil) }, "rooms: 2\nclients: 3"},
		{"a player's lookup of the moving room", func() (int, string) { return get(t, a.url+"/room/"+moving, player) },
			`{"clients":2,"maxClients":4,"origin":"unknown"}`},
		{"a sibling's probe of the moving room", func() (int, string) {
			return signedCall(t, b.Server, a.url, http.MethodGet, "/room/"+moving, nil, nil)
		}, `{"clients":2,"maxClients":4,"origin":"unknown"}`},
		{"a player's lookup of another room", func() (int, string) { return get(t, a.url+"/room/"+other, player) },
			`{"clients":1,"maxClients":8,"origin":"unknown"}`},
		{"a sibling's load call", func() (int, string) {
			return signedCall(t, b.Server, a.url, http.MethodGet, loadPath, nil, nil)
		}, `{"instance":"` + a.id + `","region":"fra","rooms":2,"clients":3,"draining":false}`},
		{"the rooms listing", func() (int, string) {
			return signedCall(t, b.Server, a.url, http.MethodGet, roomsPath, nil, nil)
		}, fmt.Sprintf(`{"clients":3,"rooms":[{"code":%q,"clients":%d},{"code":%q,"clients":%d}],"total":2}`,
			codes[0], clients[codes[0]], codes[1], clients[codes[1]])},
	}
	for _, rd := range reads {
		status, body := rd.do()
		select {
		case <-hold.ended:
			t.Fatalf("%s answered only once the hand-off was let through (%d %q)", rd.name, status, body)
		default:
		}
		if status != http.StatusOK || body != rd.want {
			t.Errorf("%s during the hand-off: %d %q, want 200 %q", rd.name, status, body, rd.want)
		}
	}
	close(hold.release)
	<-done
	if !b.rooms.Held(moving) || a.rooms.Held(moving) || !a.rooms.Held(other) {
		t.Fatalf("after the hand-off: b holds the moving room %v, a %v; a holds the other %v",
			b.rooms.Held(moving), a.rooms.Held(moving), a.rooms.Held(other))
	}
}

// get fetches url with hdr and returns the status and the trimmed body.
func get(t *testing.T, url string, hdr http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header = hdr
	if hdr == nil {
		req.Header = http.Header{}
	}
	return doCall(t, req)
}

// scrape fetches base's /metrics and returns the room and client gauges
// as "rooms N clients M".
func scrape(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	value := func(name string) string {
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
				f := strings.Fields(line)
				return f[len(f)-1]
			}
		}
		return "absent"
	}
	return resp.StatusCode, "rooms " + value("party_sockets_rooms") + " clients " + value("party_sockets_clients")
}
