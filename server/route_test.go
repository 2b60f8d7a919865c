package server

import (
	"net/http"
	"testing"

	"github.com/party-sockets/party-sockets/regions"
)

func TestRoutingAnswers(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{AppName: "app", Instance: "0a1b2c3d4e5f01", Region: "fra"})
	iad := regions.Encode(regions.Pack(8, 99))
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tests := []struct {
		name     string
		path     string
		hdr      map[string]string
		status   int
		replay   string
		location string
	}{
		{
			"pin",
			"/health?instance=0a1b2c3d4e5f02",
			map[string]string{"Fly-Region": "fra"},
			409,
			"instance=0a1b2c3d4e5f02;timeout=5s;fallback=force_self",
			"",
		},
		{
			"pin fallback http",
			"/room/x?instance=0a1b2c3d4e5f02&a=b",
			map[string]string{"Fly-Region": "fra", "Fly-Replay-Src": "instance=0a1b2c3d4e5f02"},
			302,
			"",
			"/room/x?a=b",
		},
		{"region", "/room/" + iad, map[string]string{"Fly-Region": "fra"}, 409, "region=iad;timeout=5s;fallback=force_self", ""},
		{
			"region after replay",
			"/room/" + iad,
			map[string]string{"Fly-Region": "fra", "Fly-Replay-Src": "instance=m9;region=iad"},
			404,
			"",
			"",
		},
		{"direct (no Fly-Region) is served here", "/room/" + iad, nil, 404, "", ""},
		{"health", "/health", map[string]string{"Fly-Region": "fra"}, 200, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", ts.URL+tt.path, nil)
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			resp, err := noFollow.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get("Fly-Replay") != tt.replay || resp.Header.Get("Location") != tt.location {
				t.Errorf("GET %s = %d replay %q location %q, want %d %q %q", tt.path, resp.StatusCode,
					resp.Header.Get("Fly-Replay"), resp.Header.Get("Location"), tt.status, tt.replay, tt.location)
			}
		})
	}
}
