package server

import (
	"net/http"
	"strings"
	"testing"
)

// proxyValue is the proxy's value of a header however it treats a
// client's: replaced (one value), appended as a line of its own, or
// appended after a comma.
func TestProxyValueIsTheLast(t *testing.T) {
	tests := []struct {
		name string
		vals []string
		want string
	}{
		{"absent", nil, ""},
		{"replaced", []string{"198.51.100.9"}, "198.51.100.9"},
		{"appended as a line", []string{"203.0.113.7", "198.51.100.9"}, "198.51.100.9"},
		{"appended after a comma", []string{"203.0.113.7, 198.51.100.9"}, "198.51.100.9"},
		{"forged list, then appended", []string{"203.0.113.7,203.0.113.8", "198.51.100.9"}, "198.51.100.9"},
		{"forged empty first", []string{"", "198.51.100.9"}, "198.51.100.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{Header: http.Header{}}
			if tt.vals != nil {
				r.Header["Fly-Client-Ip"] = tt.vals
			}
			if got := proxyValue(r, "Fly-Client-Ip"); got != tt.want {
				t.Errorf("proxyValue(%q) = %q, want %q", tt.vals, got, tt.want)
			}
		})
	}
}

// The per-address limits count the proxy's Fly-Client-IP, whichever way
// the proxy treats a client's own, and any proxy header marks a request
// as proxied, an empty Fly-Region first included (issue 20, finding 2).
func TestClientIPIsTheProxys(t *testing.T) {
	s := &Server{cfg: Config{AppName: "app"}}
	tests := []struct {
		name string
		hdr  http.Header
		want string
	}{
		{"replaced", http.Header{"Fly-Region": {"fra"}, "Fly-Client-Ip": {"198.51.100.9"}}, "198.51.100.9"},
		{"client's first", http.Header{"Fly-Region": {"zzz", "fra"}, "Fly-Client-Ip": {"203.0.113.7", "198.51.100.9"}}, "198.51.100.9"},
		{"empty Fly-Region first", http.Header{"Fly-Region": {"", "fra"}, "Fly-Client-Ip": {"203.0.113.7", "198.51.100.9"}}, "198.51.100.9"},
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

// Whatever a client puts before the proxy's Fly-Client-IP, the value read
// is a piece of the proxy's own, trimmed and with no comma.
func FuzzProxyValue(f *testing.F) {
	for _, s := range []string{"", "203.0.113.7", "203.0.113.7, 203.0.113.8", ",", " , ,x", "\t"} {
		f.Add(s, "198.51.100.9")
		f.Add(s, "203.0.113.7, 198.51.100.9")
	}
	f.Fuzz(func(t *testing.T, client, proxy string) {
		got := proxyValue(&http.Request{Header: http.Header{"Fly-Client-Ip": {client, proxy}}}, "Fly-Client-Ip")
		if strings.Contains(got, ",") || got != strings.TrimSpace(got) || !strings.Contains(proxy, got) {
			t.Fatalf("proxyValue(%q, %q) = %q", client, proxy, got)
		}
		if other := proxyValue(&http.Request{Header: http.Header{"Fly-Client-Ip": {"x", proxy}}}, "Fly-Client-Ip"); other != got {
			t.Fatalf("the client's value %q changed the answer: %q, with another %q", client, got, other)
		}
	})
}
