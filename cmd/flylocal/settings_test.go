package main

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The edges' two ways with a client's own proxy headers, as a machine
// sees them: the default replaces Fly-Region and Fly-Client-IP and strips
// fly-replay-*; append and keep leave the client's first.
func TestClientProxyHeadersReplaceOrAppend(t *testing.T) {
	c, fakes := newFakeCluster(t, func(f *fakeMachine, w http.ResponseWriter, r *http.Request) {}, "a:fra")
	url := edgeServer(t, c, "fra")
	forged := map[string]string{"Fly-Region": "zzz", "Fly-Client-IP": "203.0.113.7",
		"Fly-Replay-Src": "instance=forged;region=zzz;t=1", "Fly-Replay-Failed": "instance=forged;reason=forged"}
	tests := []struct {
		name           string
		append, keep   bool
		region, client []string
		src, failed    []string
	}{
		{"replace, strip (default)", false, false, []string{"fra"}, []string{"127.0.0.1"}, nil, nil},
		{"append", true, false, []string{"zzz", "fra"}, []string{"203.0.113.7", "127.0.0.1"}, nil, nil},
		{"keep", false, true, []string{"fra"}, []string{"127.0.0.1"},
			[]string{forged["Fly-Replay-Src"]}, []string{forged["Fly-Replay-Failed"]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.appendProxyHeaders.Store(tt.append)
			c.keepReplayHeaders.Store(tt.keep)
			get(t, url+"/x", forged)
			h := fakes["a"].seen()
			for _, want := range []struct {
				name string
				vals []string
			}{{"Fly-Region", tt.region}, {"Fly-Client-Ip", tt.client}, {"Fly-Replay-Src", tt.src}, {"Fly-Replay-Failed", tt.failed}} {
				if got := h.Values(want.name); !slices.Equal(got, want.vals) {
					t.Errorf("%s at the machine = %q, want %q", want.name, got, want.vals)
				}
			}
		})
	}
}

// POST /.flylocal/settings switches the modes at run time; a bad value is
// refused and changes nothing, the other values of the call included.
func TestSettingsSwitchTheModes(t *testing.T) {
	c, port := controlEdge(t)
	host, ok := "127.0.0.1:"+strconv.Itoa(port), map[string]string{"X-Flylocal": "1"}
	status, body, _ := call(t, port, "POST", "/.flylocal/settings?client_proxy_headers=append&client_replay_headers=keep", host, ok)
	if status != 200 || !c.appendProxyHeaders.Load() || !c.keepReplayHeaders.Load() {
		t.Fatalf("append, keep: %d %q", status, body)
	}
	want := `"client_proxy_headers":"append","client_replay_headers":"keep"`
	if !strings.Contains(body, want) {
		t.Errorf("settings answer %q, want it to say %s", body, want)
	}
	for _, q := range []string{"client_proxy_headers=replace&client_replay_headers=drop", "client_proxy_headers=",
		"stopping_replays=1&client_proxy_headers=REPLACE", "client_replay_headers=strip&stopping_replays=yes"} {
		status, body, _ := call(t, port, "POST", "/.flylocal/settings?"+q, host, ok)
		if status != http.StatusBadRequest || !c.appendProxyHeaders.Load() || !c.keepReplayHeaders.Load() || c.stoppingReplays.Load() {
			t.Errorf("settings?%s = %d %q; append=%v keep=%v stopping=%v, want 400 and no change", q, status, body,
				c.appendProxyHeaders.Load(), c.keepReplayHeaders.Load(), c.stoppingReplays.Load())
		}
	}
	if status, _, _ := call(t, port, "POST", "/.flylocal/settings?client_proxy_headers=replace&client_replay_headers=strip", host, ok); status != 200 ||
		c.appendProxyHeaders.Load() ||
		c.keepReplayHeaders.Load() {
		t.Fatalf("back to replace, strip: %d", status)
	}
}
