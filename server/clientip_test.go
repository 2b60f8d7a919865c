package server

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/party-sockets/party-sockets/regions"
)

// The per-address limits count the proxy's Fly-Client-IP, whichever way
// the proxy treats a client's own, and any proxy header marks a request
// as proxied, an empty Fly-Region first included (issue 20, finding 2).
func TestClientIPIsTheProxys(t *testing.T) {
	t.Parallel()
	s := &Server{cfg: Config{AppName: "app"}}
	tests := []struct {
		name string
		hdr  http.Header
		want string
	}{
		{"replaced", http.Header{"Fly-Region": {"fra"}, "Fly-Client-Ip": {"198.51.100.9"}}, "198.51.100.9"},
		{"client's first", http.Header{"Fly-Region": {"zzz", "fra"}, "Fly-Client-Ip": {"203.0.113.7", "198.51.100.9"}}, "198.51.100.9"},
		{
			"empty Fly-Region first",
			http.Header{"Fly-Region": {"", "fra"}, "Fly-Client-Ip": {"203.0.113.7", "198.51.100.9"}},
			"198.51.100.9",
		},
		{"not proxied", http.Header{}, "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{Header: tt.hdr, RemoteAddr: "10.0.0.1:5000"}
			if got := s.clientIP(r); got != tt.want {
				t.Errorf("clientIP(%v) = %q, want %q", tt.hdr, got, tt.want)
			}
		})
	}
}

// With TRUSTED_PROXIES set, Fly's proxy headers count only on a socket
// in its ranges: a private-network process that forges them counts
// against its own address and is not taken as proxied (review finding
// 3); the proxy's own requests still count by Fly-Client-IP. Unset,
// every socket's headers count, as before.
func TestTrustedProxies(t *testing.T) {
	forged := http.Header{"Fly-Region": {"fra"}, "Fly-Client-Ip": {"198.51.100.9"}}
	ranges := []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("fdaa:0:1::/48")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		hdr     http.Header
		proxied bool
		want    string
	}{
		{"unset, any socket", nil, "10.0.0.1:5000", forged, true, "198.51.100.9"},
		{"set, from the proxy", ranges, "172.19.0.3:5000", forged, true, "198.51.100.9"},
		{"set, from the proxy over IPv6", ranges, "[fdaa:0:1:a7b::2]:5000", forged, true, "198.51.100.9"},
		{"set, IPv4-mapped socket", ranges, "[::ffff:172.19.0.3]:5000", forged, true, "198.51.100.9"},
		{"set, forged from elsewhere", ranges, "10.0.0.1:5000", forged, false, "10.0.0.1"},
		{"set, forged from elsewhere over IPv6", ranges, "[fdaa:0:2::5]:5000", forged, false, "fdaa:0:2::/64"},
		{"set, from the proxy without its headers", ranges, "172.19.0.3:5000", http.Header{}, false, "172.19.0.3"},
		{"set, a socket address that does not parse", ranges, "pipe", forged, false, "pipe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{cfg: Config{AppName: "app", TrustedProxies: tt.trusted}}
			r := &http.Request{Header: tt.hdr, RemoteAddr: tt.remote}
			if got := s.proxied(r); got != tt.proxied {
				t.Errorf("proxied(%s, %v) = %v, want %v", tt.remote, tt.hdr, got, tt.proxied)
			}
			if got := s.clientIP(r); got != tt.want {
				t.Errorf("clientIP(%s, %v) = %q, want %q", tt.remote, tt.hdr, got, tt.want)
			}
		})
	}
}

// A request with Fly's proxy headers from a socket outside
// TRUSTED_PROXIES is answered here, as one that did not come through the
// proxy: never replayed, whatever its pin or code says. The internal API
// still refuses it for its headers (403), trusted socket or not.
func TestForgedProxyHeadersFromAnUntrustedSocket(t *testing.T) {
	secret := strings.Repeat("k", 32)
	iad := regions.Encode(regions.Pack(8, 99))
	for _, tt := range []struct {
		name    string
		trusted []netip.Prefix
		room    int // GET /room/<iad code>
		pin     int // GET /health?instance=<another machine>
	}{
		{"loopback trusted", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, 409, 409},
		{"loopback not trusted", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, 404, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, Config{AppName: "app", Instance: "0a1b2c3d4e5f01", Region: "fra", HandoffSecret: secret,
				TrustedProxies: tt.trusted})
			hdr := map[string]string{"Fly-Region": "fra", "Fly-Client-Ip": "198.51.100.9"}
			for path, want := range map[string]int{"/room/" + iad: tt.room, "/health?instance=0a1b2c3d4e5f02": tt.pin,
				"/.internal/load": 403} {
				if got := getStatus(t, ts.URL+path, hdr); got != want {
					t.Errorf("GET %s with forged proxy headers = %d, want %d", path, got, want)
				}
			}
		})
	}
}

// getStatus is the status of a GET of url with hdr, redirects and
// replays not followed.
func getStatus(t *testing.T, url string, hdr map[string]string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
