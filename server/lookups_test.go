package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/regions"
	"github.com/party-sockets/party-sockets/rooms"
)

func lookupRequest(method, path, remote string, hdr ...string) *http.Request {
	r, _ := http.NewRequest(method, "http://x"+path, nil)
	r.RemoteAddr = remote
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

// Issue 20, finding 8: any GET /room/<code> from a private address that
// did not come through the proxy was exempt from every limit. Only a
// sibling's signed lookup is exempt now; an unsigned one from the private
// network is a peer's (the old relay's, or ours without a secret), held to
// a peer's rate; anything else is a client's.
func TestLookupCaller(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, Config{AppName: "app", Instance: "0a1b2c3d4e5f01", HandoffSecret: testSecret}).Server
	sib := newTestServer(t, Config{AppName: "app", Instance: "0a1b2c3d4e5f02", HandoffSecret: testSecret}).Server
	stranger := newTestServer(t, Config{AppName: "app", Instance: "0a1b2c3d4e5f03", HandoffSecret: strings.Repeat("x", 32)}).Server
	signed := func(by *Server, r *http.Request) *http.Request { by.signPeer(r, s.selfID(), nil); return r }
	moved := signed(sib, lookupRequest("GET", "/room/abc", "[fdaa:0:1::3]:5000"))
	moved.URL.Path, moved.URL.RawPath = "/room/xyz", ""
	tests := []struct {
		name string
		r    *http.Request
		want caller
	}{
		{"signed, over 6PN", signed(sib, lookupRequest("GET", "/room/abc", "[fdaa:0:1::3]:5000")), callerSibling},
		{"signed, on loopback (flylocal)", signed(sib, lookupRequest("GET", "/room/abc", "127.0.0.3:5000")), callerSibling},
		{"unsigned, over 6PN (the old relay)", lookupRequest("GET", "/room/abc", "[fdaa:0:1::3]:5000"), callerPeer},
		{"signed with another secret", signed(stranger, lookupRequest("GET", "/room/abc", "[fdaa:0:1::3]:5000")), callerPeer},
		{"a signature for another path", moved, callerPeer},
		{"a malformed signature", lookupRequest("GET", "/room/abc", "[fdaa:0:1::3]:5000", "X-Party-Auth", "v1;nope"), callerPeer},
		{
			"signed, through the proxy",
			signed(sib, lookupRequest("GET", "/room/abc", "[fdaa:0:1::3]:5000", "Fly-Region", "fra")),
			callerClient,
		},
		{
			"signed, an empty proxy header",
			signed(sib, lookupRequest("GET", "/room/abc", "[fdaa:0:1::3]:5000", "Via", "")),
			callerClient,
		},
		{"a public address", lookupRequest("GET", "/room/abc", "203.0.113.9:5000"), callerClient},
		{"a POST is no lookup", signed(sib, lookupRequest("POST", "/room/abc", "[fdaa:0:1::3]:5000")), callerClient},
		{"an upgrade's path is no lookup", signed(sib, lookupRequest("GET", "/abcdef", "[fdaa:0:1::3]:5000")), callerClient},
	}
	for _, tt := range tests {
		if got := s.lookupCaller(tt.r); got != tt.want {
			t.Errorf("%s: lookupCaller = %v, want %v", tt.name, got, tt.want)
		}
	}
	// A captured signed lookup, sent again, is a plain peer's.
	r := signed(sib, lookupRequest("GET", "/room/abc", "[fdaa:0:1::3]:5000"))
	if first, again := s.lookupCaller(r), s.lookupCaller(r); first != callerSibling || again != callerPeer {
		t.Errorf("a signed lookup and its replay: %v, %v; want %v, %v", first, again, callerSibling, callerPeer)
	}
	// Without a secret nothing is signed and nothing verifies.
	none := newTestServer(t, Config{AppName: "app", Instance: "0a1b2c3d4e5f04"}).Server
	if got := none.lookupCaller(signed(sib, lookupRequest("GET", "/room/abc", "127.0.0.3:5000"))); got != callerPeer {
		t.Errorf("no secret set, a signed lookup: %v, want %v", got, callerPeer)
	}
	off := newTestServer(t, Config{HandoffSecret: testSecret}).Server
	if got := off.lookupCaller(signed(sib, lookupRequest("GET", "/room/abc", "127.0.0.3:5000"))); got != callerClient {
		t.Errorf("off Fly: %v, want %v (nothing is exempt)", got, callerClient)
	}
}

// A request through the proxy counts against Fly-Client-IP; when the
// header comes more than once or holds a list, against its last value,
// the one a proxy that appends adds.
func TestClientIPCountsTheLastValue(t *testing.T) {
	t.Parallel()
	s := &Server{cfg: Config{AppName: "app"}}
	tests := []struct {
		name string
		hdr  []string
		want string
	}{
		{"one value", []string{"Fly-Region", "fra", "Fly-Client-IP", "203.0.113.7"}, "203.0.113.7"},
		{"twice", []string{"Fly-Region", "fra", "Fly-Client-IP", "198.51.100.1", "Fly-Client-IP", "203.0.113.7"}, "203.0.113.7"},
		{"a list", []string{"Fly-Region", "fra", "Fly-Client-IP", "198.51.100.1, 203.0.113.7"}, "203.0.113.7"},
		{
			"a list, twice",
			[]string{"Fly-Region", "fra", "Fly-Client-IP", "198.51.100.1", "Fly-Client-IP", "10.0.0.1,203.0.113.7 "},
			"203.0.113.7",
		},
		{"a bad last value: the socket", []string{"Fly-Region", "fra", "Fly-Client-IP", "203.0.113.7, nope"}, "192.0.2.1"},
		{"IPv6: its /64", []string{"Via", "2 fly.io", "Fly-Client-IP", "2001:db8:1:2::9"}, "2001:db8:1:2::/64"},
		{"any proxy header, empty too", []string{"Fly-Region", "", "Fly-Client-IP", "203.0.113.8"}, "203.0.113.8"},
		{"no proxy header: the socket", nil, "192.0.2.1"},
	}
	for _, tt := range tests {
		if got := s.clientIP(lookupRequest("GET", "/", "192.0.2.1:4000", tt.hdr...)); got != tt.want {
			t.Errorf("%s: clientIP = %s, want %s", tt.name, got, tt.want)
		}
	}
	off := &Server{}
	if got := off.clientIP(lookupRequest("GET", "/", "192.0.2.1:4000", "Fly-Region", "fra", "Fly-Client-IP", "203.0.113.7")); got != "192.0.2.1" {
		t.Errorf("off Fly: clientIP = %s, want the socket's", got)
	}
}

// A mixed pair, at the handler: a sibling's signed lookups are exempt; an
// unsigned prober (the old relay) gets its peer's burst and rate; more is
// refused with 429.
func TestUnsignedLookupsHeldToAPeersRate(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{AppName: "app", Instance: "0a1b2c3d4e5f01", HandoffSecret: testSecret, PeerLookupsPerSec: 5})
	sib := newTestServer(t, Config{AppName: "app", Instance: "0a1b2c3d4e5f02", HandoffSecret: testSecret}).Server
	count := func(n int, sign bool) (answered, refused int) {
		for range n {
			req, _ := http.NewRequest("GET", ts.URL+"/room/ABCDEF", nil)
			if sign {
				signTo(sib, req, nil)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case 404:
				answered++
			case 429:
				refused++
			}
		}
		return
	}
	start := time.Now()
	if answered, _ := count(200, true); answered != 200 {
		t.Fatalf("signed lookups: %d of 200 answered, want all", answered)
	}
	answered, refused := count(200, false)
	if limit := 10 + 5*time.Since(start).Seconds() + 1; float64(answered) > limit || answered < 10 || answered+refused != 200 {
		t.Fatalf("unsigned: %d answered, %d refused; want the burst (10) and the rate (%.0f at most)", answered, refused, limit)
	}
}

// GET /.internal/codes lists the codes of one region held here, to a
// signed call only.
func TestCodesListing(t *testing.T) {
	t.Parallel()
	mgr := rooms.NewManager(
		rooms.Config{Instance: "0a1b2c3d4e5f01", Region: "iad", HostGrace: time.Minute, Codes: regions.NewGenerator("iad", nil)},
	)
	ts := newTestServerWithManager(
		t,
		Config{AppName: "app", Instance: "0a1b2c3d4e5f01", Region: "iad", HandoffSecret: testSecret},
		mgr,
		nil,
	)
	sib := newTestServer(t, Config{AppName: "app", Instance: "0a1b2c3d4e5f02", HandoffSecret: testSecret}).Server
	for i := range 3 {
		testutil.Dial(t, ts.URL).Create("h"+itoa(i), 4)
	}
	call := func(query string, sign bool, hdr ...string) (int, []string) {
		req, _ := http.NewRequest("GET", ts.URL+"/.internal/codes"+query, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		if sign {
			signTo(sib, req, nil)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct{ Codes []string }
		json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v.Codes
	}
	if status, got := call("?region=iad", true); status != 200 || len(got) != 3 {
		t.Fatalf("signed listing of iad: %d %v, want the 3 codes", status, got)
	}
	if status, got := call("?region=fra", true); status != 200 || len(got) != 0 {
		t.Fatalf("signed listing of fra: %d %v, want none", status, got)
	}
	for _, tt := range []struct {
		name   string
		query  string
		sign   bool
		hdr    []string
		status int
	}{
		{"unsigned", "?region=iad", false, nil, 401},
		{"through the proxy", "?region=iad", true, []string{"Fly-Region", "iad"}, 403},
		{"an unknown region", "?region=xyz", true, nil, 400},
		{"a forged signature", "?region=iad", false, []string{"X-Party-Auth", "v1;id=x;t=1;n=00000000000000000000000000000000;s=" + strings.Repeat("A", 43)}, 401},
	} {
		if status, got := call(tt.query, tt.sign, tt.hdr...); status != tt.status || len(got) != 0 {
			t.Errorf("%s: %d %v, want %d and no codes", tt.name, status, got, tt.status)
		}
	}
	// A captured call, sent again, is refused.
	req, _ := http.NewRequest("GET", ts.URL+"/.internal/codes?region=iad", nil)
	signTo(sib, req, nil)
	for i, want := range []int{200, 401} {
		resp, err := http.DefaultClient.Do(req.Clone(t.Context()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("the same signed call, sent %d times: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	// No secret: nobody is answered.
	bare := newTestServerWithManager(t, Config{AppName: "app", Instance: "0a1b2c3d4e5f01", Region: "iad"}, mgr, nil)
	req, _ = http.NewRequest("GET", bare.URL+"/.internal/codes?region=iad", nil)
	signTo(sib, req, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("no secret set: %d, want 404 (no internal path is served)", resp.StatusCode)
	}
}

func FuzzLastClientIP(f *testing.F) {
	f.Add("203.0.113.7", "")
	f.Add("198.51.100.1, 2001:db8::1", "10.0.0.1")
	f.Add(",,,", " ")
	f.Fuzz(func(t *testing.T, a, b string) {
		values := []string{a}
		if b != "" {
			values = append(values, b)
		}
		ip, ok := lastClientIP(values)
		if !ok {
			return
		}
		last := values[len(values)-1]
		if i := strings.LastIndexByte(last, ','); i >= 0 {
			last = last[i+1:]
		}
		if p, err := netip.ParseAddr(strings.TrimSpace(last)); err != nil || p != ip {
			t.Fatalf("lastClientIP(%q) = %v, not the last value", values, ip)
		}
	})
}
