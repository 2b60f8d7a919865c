package main

import (
	"flag"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// The default check timing is fly.toml's: change one, change the other.
func TestStartTimingDefaultsAreFlyToml(t *testing.T) {
	var fc struct {
		Deploy struct {
			WaitTimeout string `toml:"wait_timeout"`
		} `toml:"deploy"`
		HTTPService struct {
			Checks []struct {
				GracePeriod string `toml:"grace_period"`
				Interval    string `toml:"interval"`
				Timeout     string `toml:"timeout"`
			} `toml:"checks"`
		} `toml:"http_service"`
	}
	if _, err := toml.DecodeFile("../../fly.toml", &fc); err != nil {
		t.Fatal(err)
	}
	if len(fc.HTTPService.Checks) != 1 {
		t.Fatalf("fly.toml has %d service checks, want 1", len(fc.HTTPService.Checks))
	}
	ck := fc.HTTPService.Checks[0]
	tm, err := parseTiming(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name, toml string
		got        time.Duration
	}{{"grace_period", ck.GracePeriod, tm.grace}, {"interval", ck.Interval, tm.interval}, {"timeout", ck.Timeout, tm.timeout},
		{"wait_timeout", fc.Deploy.WaitTimeout, tm.wait}} {
		want, err := time.ParseDuration(f.toml)
		if err != nil || f.got != want {
			t.Errorf("fly.toml %s = %q (%v), flylocal's default %v", f.name, f.toml, err, f.got)
		}
	}
	if tm.boot != defaultBootDelay {
		t.Errorf("boot delay %v, want %v", tm.boot, defaultBootDelay)
	}
}

func parseTiming(t *testing.T, args ...string) (timing, error) {
	t.Helper()
	fs := flag.NewFlagSet("flylocal", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	read := timingFlags(fs)
	if err := fs.Parse(args); err != nil {
		return timing{}, err
	}
	return read()
}

func TestTimingFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want timing // zero: an error
	}{
		{"-fast", []string{"-fast"}, timing{0, 0, fastCheckInterval, flyCheckTimeout, flyWaitTimeout}},
		{"small delays", []string{"-boot-delay", "300ms", "-health-grace", "1s", "-health-interval", "100ms"},
			timing{300 * time.Millisecond, time.Second, 100 * time.Millisecond, flyCheckTimeout, flyWaitTimeout}},
		{"-fast with a delay", []string{"-fast", "-health-grace", "1s"}, timing{}},
		{"negative boot", []string{"-boot-delay", "-1s"}, timing{}},
		{"checks every millisecond", []string{"-health-interval", "1ms"}, timing{}},
		{"a boot of a day", []string{"-boot-delay", "24h"}, timing{}},
		{"grace beyond the wait", []string{"-health-grace", "5m", "-wait-timeout", "4m"}, timing{}},
		{"no wait", []string{"-wait-timeout", "0"}, timing{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTiming(t, tt.args...)
			if tt.want == (timing{}) {
				if err == nil {
					t.Fatalf("timingFlags(%q) = %+v, want an error", tt.args, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("timingFlags(%q) = %+v, %v; want %+v", tt.args, got, err, tt.want)
			}
		})
	}
}

// Issue 25, item 8: a deploy took 0.24 s for six machines. With a boot
// delay and a grace period, each machine of a deploy takes at least their
// sum, and the edges route nothing to a machine whose process already
// answers until its first check passes. Only lower bounds: a busy machine
// makes everything slower, never faster.
func TestDeployWaitsForBootAndChecks(t *testing.T) {
	const boot, grace = 400 * time.Millisecond, 3 * time.Second
	_, info, stderr := startFlylocal(t, "-regions", "fra,iad", "-per-region", "1", "-quiet",
		"-boot-delay", boot.String(), "-health-grace", grace.String(), "-health-interval", "100ms")
	edge := info.Edges["fra"]
	client := &http.Client{Timeout: 10 * time.Second}
	if status := post(t, edge+"/.flylocal/deploy"); status != http.StatusAccepted {
		t.Fatalf("POST deploy: %d", status)
	}
	seenInGrace := map[string]int{} // machine → requests sent while it answered but was not checked yet
	var st deployStatus
	deadline := time.Now().Add(2 * time.Minute)
	for {
		getJSON(t, edge+"/.flylocal/deploy", &st)
		if st.Finished || time.Now().After(deadline) {
			break
		}
		before := machinesByID(t, edge)
		for id, m := range before {
			if m.Checks != checksWaiting || !answers(client, "http://"+m.Addr+"/health") {
				continue
			}
			// Its process answers; a request through its region's edge
			// that is over before the grace ends must go elsewhere.
			resp, err := client.Get(info.Edges[m.Region] + "/health")
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET /health through the %s edge while %s waits for its check: %v %v", m.Region, id, resp, err)
			}
			resp.Body.Close()
			over := time.Now()
			started, _ := time.Parse(time.RFC3339Nano, m.Started)
			after := machinesByID(t, edge)[id]
			if after.Started != m.Started || !over.Before(started.Add(grace)) {
				continue // restarted, or the grace may have ended meanwhile
			}
			if after.Routed != m.Routed {
				t.Fatalf("machine %s was routed %d requests %v after its process started, before its %v grace ended",
					id, after.Routed-m.Routed, over.Sub(started), grace)
			}
			seenInGrace[id]++
		}
		time.Sleep(20 * time.Millisecond) // a poll, as testutil.Eventually polls
	}
	if !st.Finished || st.Error != "" || len(st.Done) != 2 {
		t.Fatalf("deploy: %+v\n%s", st, stderr.String())
	}
	for _, m := range info.Machines {
		if seenInGrace[m.ID] == 0 {
			t.Errorf("never caught machine %s answering in its grace period: %v", m.ID, seenInGrace)
		}
	}
	if min := 2 * (boot + grace); st.Seconds < min.Seconds() {
		t.Errorf("a deploy of 2 machines took %.2f s, want at least 2 × (boot %v + grace %v) = %v", st.Seconds, boot, grace, min)
	}
	// The overview's chart shades the seconds the deploy ran.
	var cs clusterState
	getJSON(t, edge+"/.flylocal/state", &cs)
	if !slices.Contains(cs.History.Deploying, true) || len(cs.History.Deploying) != len(cs.History.Times) {
		t.Errorf(
			"the chart's history does not show the deploy: deploying %v over %d samples",
			cs.History.Deploying,
			len(cs.History.Times),
		)
	}
	// Once checked, a machine is routed again: its edge's requests reach it.
	for _, m := range info.Machines {
		before := machinesByID(t, edge)[m.ID].Routed
		resp, err := client.Get(info.Edges[machinesByID(t, edge)[m.ID].Region] + "/health")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if v := machinesByID(t, edge)[m.ID]; v.Routed != before+1 || v.Checks != checksPassing {
			t.Errorf(
				"after the deploy, machine %s: checks %q, routed %d → %d; want passing and its edge's request",
				m.ID,
				v.Checks,
				before,
				v.Routed,
			)
		}
	}
	t.Logf(
		"deploy of 2 machines with boot %v and grace %v: %.2f s; requests through an edge while its machine answered in grace: %v",
		boot,
		grace,
		st.Seconds,
		seenInGrace,
	)
	if !strings.Contains(strings.Join(st.Log, "\n"), "checks passing") {
		t.Errorf("the deploy log does not say when the checks passed:\n%s", strings.Join(st.Log, "\n"))
	}
}

func machinesByID(t *testing.T, edge string) map[string]machineView {
	t.Helper()
	var views []machineView
	getJSON(t, edge+"/.flylocal/machines", &views)
	out := map[string]machineView{}
	for _, v := range views {
		out[v.ID] = v
	}
	return out
}

func answers(client *http.Client, url string) bool {
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func post(t *testing.T, url string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, nil)
	req.Header.Set("X-Flylocal", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
