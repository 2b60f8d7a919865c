package ops

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// needTool finds a binary that .ci/run installs; locally it may be absent.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	testutil.Need(t, err == nil, name+" (apt-get install prometheus)")
	return p
}

type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// Panels that must show data while rooms are live.
var corePanels = []string{
	"Clients (fleet)", "Rooms (fleet)", "Machines reporting", "Messages relayed /s", "Fleet by region",
	"Clients by region", "Rooms by region", "Clients by instance", "Rooms by instance",
	"Connections /s by origin (top 10)", "Rooms created /s by origin (top 10)", "Clients by origin (top 10)",
	"Messages and deliveries /s", "Memory per machine (RSS)", "Uptime per machine", "Replays /s by kind",
}

func TestDashboardAgainstRealPrometheus(t *testing.T) {
	prom := needTool(t, "prometheus")
	addr := startServer(t, "REGION=fra", "INSTANCE_ID=e2e0machine01")
	liveRooms(t, addr)

	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: self            # a self-hosted Prometheus: our labels kept
    honor_labels: true
    static_configs: [{targets: ["%[1]s"]}]
  - job_name: fly             # like Fly's managed Prometheus: its own instance, lower-case region, app
    honor_labels: false
    static_configs: [{targets: ["%[1]s"]}]
    metric_relabel_configs:
      - {source_labels: [region], target_label: region, action: lowercase}
      - {target_label: app, replacement: party-sockets-test}
`, addr)
	api := startPrometheus(t, prom, cfg)

	// Enough scrapes for rate() over the substituted $__rate_interval.
	testutil.Eventually(t, 60*time.Second, "both scrape jobs with 5 samples", func() bool {
		r, err := query(api, `count(count_over_time(party_sockets_rooms[30s]) >= 5)`)
		return err == nil && len(r) == 1 && r[0].Value[1] == "2"
	})

	d := readDashboard(t)
	core := map[string]bool{}
	for _, c := range corePanels {
		core[c] = true
	}
	// Every panel query, with the variables as "All" and as one region in
	// either case (our FRA, Fly's fra): none may fail; core panels have data.
	subs := []map[string]string{
		{"$app": ".*", "$region": ".*", "$instance": ".*"},
		{"$app": ".*", "$region": "FRA", "$instance": ".*"},
		{"$app": "party-sockets-test", "$region": "fra", "$instance": ".*"},
	}
	for _, r := range evalPanels(t, api, d, subs) {
		switch {
		case r.err != nil:
			t.Errorf("panel %q: %s: %v", r.title, r.expr, r.err)
		case core[r.title] && r.series == 0:
			t.Errorf("core panel %q returned no data for %s", r.title, r.expr)
		}
	}
	seen := map[string]bool{}
	for _, p := range d.Panels {
		seen[p.Title] = true
	}
	for _, c := range corePanels {
		if !seen[c] {
			t.Errorf("dashboard has no panel %q", c)
		}
	}
	checkVariables(t, api, d, map[string]string{"app": "party-sockets-test", "region": "FRA", "instance": "e2e0machine01"})
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	return d
}

// panelResult is one panel query, evaluated with one set of variables.
type panelResult struct {
	title, expr    string
	series, finite int // series returned; those whose value is a number (not NaN or ±Inf)
	err            error
}

// evalPanels runs every panel query of d once per set of variables in
// subs, $__rate_interval as 30s, as instant queries at the present.
func evalPanels(t *testing.T, api string, d dashboard, subs []map[string]string) []panelResult {
	t.Helper()
	var out []panelResult
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, sub := range subs {
				expr := tg.Expr
				for k, v := range sub {
					expr = strings.ReplaceAll(expr, k, v)
				}
				expr = strings.ReplaceAll(expr, "$__rate_interval", "30s")
				r := panelResult{title: p.Title, expr: expr}
				if strings.Contains(expr, "$") {
					r.err = fmt.Errorf("unsubstituted variable")
					out = append(out, r)
					continue
				}
				var res []sample
				res, r.err = query(api, expr)
				for _, s := range res {
					r.series++
					if v, ok := s.Value[1].(string); ok && v != "NaN" && v != "+Inf" && v != "-Inf" {
						r.finite++
					}
				}
				out = append(out, r)
			}
		}
	}
	return out
}

// checkVariables runs the dashboard's label_values variables as the label
// API would, and wants each to offer want[name].
func checkVariables(t *testing.T, api string, d dashboard, want map[string]string) {
	t.Helper()
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)["query"].(string)
		m := regexp.MustCompile(`^label_values\((.*), (\w+)\)$`).FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: unexpected query %q", v.Name, q)
			continue
		}
		sel := strings.NewReplacer("$app", ".*", "$region", ".*").Replace(m[1])
		values, err := labelValues(api, m[2], sel)
		if err != nil {
			t.Errorf("variable %s: %v", v.Name, err)
			continue
		}
		if !contains(values, want[v.Name]) {
			t.Errorf("variable %s = %v, want it to offer %q", v.Name, values, want[v.Name])
		}
	}
}

// startPrometheus runs prometheus with the configuration cfg, a temporary
// data directory and its own port on loopback, and returns its API's URL.
func startPrometheus(t *testing.T, prom, cfg string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cmd := exec.Command(prom, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--log.level=warn")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return fmt.Sprintf("http://127.0.0.1:%d/api/v1/", port)
}

type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func query(api, expr string) ([]sample, error) {
	resp, err := http.Get(api + "query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string   `json:"resultType"`
			Result     []sample `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("prometheus: %s", out.Error)
	}
	return out.Data.Result, nil
}

func labelValues(api, label, match string) ([]string, error) {
	resp, err := http.Get(api + "label/" + label + "/values?match[]=" + url.QueryEscape(match))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string   `json:"status"`
		Data   []string `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out.Data, err
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// liveRooms opens rooms from two origins and relays messages, and leaves
// them open for the test's life.
func liveRooms(t *testing.T, addr string) {
	t.Helper()
	ctx := t.Context()
	for i, origin := range []string{"https://quiz.example", "https://draw.example"} {
		host := testutil.Dialer{Header: http.Header{"Origin": {origin}}}.Dial(t, "ws://"+addr)
		host.Create(fmt.Sprintf("h%d", i), 8) // the room exists once created is read
		host.Discard()
		go func() {
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for range 2400 { // bounded: two minutes at most
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					host.TrySend(`{"type":"send","data":{"tick":1}}`)
				}
			}
		}()
	}
}
