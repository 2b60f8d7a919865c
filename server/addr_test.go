package server

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

func TestAddrKey(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"203.0.113.7", "203.0.113.7"},
		{"::ffff:203.0.113.7", "203.0.113.7"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
	}
	for _, tt := range tests {
		if got := addrKey(netip.MustParseAddr(tt.in)); got != tt.want {
			t.Errorf("addrKey(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// With ALLOWED_ORIGINS, only those pages may read GET /room/<code>.
func TestRoomCORSFollowsAllowedOrigins(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		allowed []string
		origin  string
		want    string
	}{
		{nil, "https://evil.example", "*"},
		{[]string{"game.example"}, "https://game.example", "https://game.example"},
		{[]string{"*.game.example"}, "https://tv.game.example", "https://tv.game.example"},
		{[]string{"game.example"}, "https://evil.example", ""},
		{[]string{"game.example"}, "", ""},
	} {
		ts := newTestServer(t, Config{AllowedOrigins: tt.allowed})
		req, _ := http.NewRequest("GET", ts.URL+"/room/AAAAAA", nil)
		if tt.origin != "" {
			req.Header.Set("Origin", tt.origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.want {
			t.Errorf("allowed %v, Origin %q: Access-Control-Allow-Origin %q, want %q", tt.allowed, tt.origin, got, tt.want)
		}
	}
}

// A scrape from anyone costs at most one render per ScrapeTTL (a second
// by default); below zero, every scrape renders, and sees what changed.
func TestMetricsRenderedOncePerTTL(t *testing.T) {
	t.Parallel()
	if c := newTestServer(t, Config{}).metrics.handler.(*cachedScrape); c.ttl != DefaultScrapeTTL {
		t.Fatalf("the default TTL is %v, want %v", c.ttl, DefaultScrapeTTL)
	}
	tests := []struct {
		name    string
		ttl     time.Duration
		renders int
	}{
		{"an hour", time.Hour, 1},
		{"none", -1, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, Config{ScrapeTTL: tt.ttl})
			for i := range 20 {
				if i == 10 {
					testutil.Dial(t, ts.URL).Create("host", 2)
				}
				want := "party_sockets_rooms{instance=\"local\",region=\"LOCAL\",version=\"dev\"} 0"
				if i >= 10 && tt.renders > 1 {
					want = strings.TrimSuffix(want, "0") + "1"
				}
				status, _, body := getJSON(t, ts.URL+"/metrics")
				if status != 200 || !strings.Contains(body, want+"\n") {
					t.Fatalf("scrape %d with a TTL of %v: %d, no %q", i, tt.ttl, status, want)
				}
			}
			c := ts.metrics.handler.(*cachedScrape)
			c.mu.Lock()
			renders := c.renders
			c.mu.Unlock()
			if renders != tt.renders {
				t.Fatalf("20 scrapes with a TTL of %v rendered %d times, want %d", tt.ttl, renders, tt.renders)
			}
		})
	}
}
