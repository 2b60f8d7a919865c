package main

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TRUSTED_PROXIES is address ranges: an address alone is its own range,
// IPv4-mapped ranges are the IPv4 ones they map, and anything else stops
// the server at start with a line naming it.
func TestLoadConfigTrustedProxies(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		in      string
		want    []netip.Prefix
		wantErr bool
	}{
		{"", nil, false},
		{"172.16.0.0/12", []netip.Prefix{p("172.16.0.0/12")}, false},
		{" 172.16.0.0/12 , fdaa::/16 ,", []netip.Prefix{p("172.16.0.0/12"), p("fdaa::/16")}, false},
		{"172.19.3.4/12", []netip.Prefix{p("172.16.0.0/12")}, false}, // masked
		{"fdaa:0:1::2", []netip.Prefix{p("fdaa:0:1::2/128")}, false},
		{"10.1.2.3", []netip.Prefix{p("10.1.2.3/32")}, false},
		{"::ffff:10.0.0.0/104", []netip.Prefix{p("10.0.0.0/8")}, false},
		{"::ffff:10.0.0.0/90", nil, true},
		{"fe80::1%eth0", nil, true},
		{"10.0.0.0/33", nil, true},
		{"fly-internal", nil, true},
		{strings.Repeat("10.0.0.0/8,", maxPrefixes+1), nil, true},
	}
	for _, tt := range tests {
		c, err := loadConfig(env(map[string]string{"FLY_APP_NAME": "app", "TRUSTED_PROXIES": tt.in}))
		if (err != nil) != tt.wantErr || !slices.Equal(c.Server.TrustedProxies, tt.want) {
			t.Errorf("TRUSTED_PROXIES=%q: %v, %v; want %v, error %v", tt.in, c.Server.TrustedProxies, err, tt.want, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "TRUSTED_PROXIES=") {
			t.Errorf("TRUSTED_PROXIES=%q: the error does not name it: %v", tt.in, err)
		}
	}
	c, err := loadConfig(env(map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8"}))
	if err != nil || len(c.Warnings) == 0 || !strings.Contains(c.Warnings[0], "TRUSTED_PROXIES") {
		t.Errorf("off Fly, TRUSTED_PROXIES set: warnings %q, %v; want one saying it changes nothing", c.Warnings, err)
	}
}
