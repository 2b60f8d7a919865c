package server

import (
	"net/http"
	"testing"
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
