package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// GET /.flylocal/prometheus/targets is Prometheus' http_sd format: the
// machines whose process runs, labelled as Fly labels them; behind the
// control API's Host check like the rest.
func TestPrometheusTargets(t *testing.T) {
	c, port := controlEdge(t)
	c.app = "my-app"
	for i, st := range []string{stateStarted, stateStopping, stateStopped, stateSuspended, stateStarting} {
		c.machines = append(
			c.machines,
			&machine{ID: "m" + strconv.Itoa(i), Region: "FRA", IP: "127.0.9." + strconv.Itoa(i+2), Port: 3000, c: c, state: st},
		)
	}
	host := "127.0.0.1:" + strconv.Itoa(port)
	status, body, h := call(t, port, "GET", "/.flylocal/prometheus/targets", host, nil)
	var got []targetGroup
	if err := json.Unmarshal([]byte(body), &got); status != 200 || err != nil || h.Get("Content-Type") != "application/json" {
		t.Fatalf("GET targets = %d %s %q: %q", status, h.Get("Content-Type"), err, body)
	}
	want := []targetGroup{
		{Targets: []string{"127.0.9.2:3000"}, Labels: map[string]string{"app": "my-app", "region": "fra", "instance": "m0"}},
		{Targets: []string{"127.0.9.3:3000"}, Labels: map[string]string{"app": "my-app", "region": "fra", "instance": "m1"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("targets = %+v, want the started and the stopping machine: %+v", got, want)
	}
	if status, _, _ := call(t, port, "GET", "/.flylocal/prometheus/targets", "rebind.evil.example:"+strconv.Itoa(port), nil); status != http.StatusForbidden {
		t.Errorf("targets for a foreign Host: %d, want 403", status)
	}
	c.machines = nil
	if _, body, _ := call(t, port, "GET", "/.flylocal/prometheus/targets", host, nil); strings.TrimSpace(body) != "[]" {
		t.Errorf("no machine running: %q, want []", body)
	}
}

// The page draws every panel of ops/grafana-dashboard.json, each query
// with the variables filled in.
func TestDashboardPanels(t *testing.T) {
	panels, err := loadDashboard("../../ops/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	b, _ := os.ReadFile("../../ops/grafana-dashboard.json")
	json.Unmarshal(b, &raw)
	if len(panels) != len(raw.Panels) {
		t.Fatalf("%d panels, the dashboard has %d", len(panels), len(raw.Panels))
	}
	for i, p := range panels {
		if p.Title != raw.Panels[i].Title || len(p.Queries) != len(raw.Panels[i].Targets) || len(p.Queries) == 0 {
			t.Errorf(
				"panel %d: %q with %d queries, want %q with %d",
				i,
				p.Title,
				len(p.Queries),
				raw.Panels[i].Title,
				len(raw.Panels[i].Targets),
			)
			continue
		}
		for _, q := range p.Queries {
			if strings.Contains(q.Query, "$") || !strings.Contains(q.Expr, "$") {
				t.Errorf("panel %q: %q became %q", p.Title, q.Expr, q.Query)
			}
		}
	}
	if got := localQuery(`rate(x{app=~"$app", region=~"(?i)$region", instance=~"$instance"}[$__rate_interval])`); got !=
		`rate(x{app=~".*", region=~"(?i).*", instance=~".*"}[30s])` {
		t.Errorf("localQuery = %s", got)
	}
}

func TestDashboardFileIsBounded(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"big.json":       `{"panels":[` + strings.Repeat(" ", maxDashboardBytes) + `]}`,
		"not-json.json":  `{"panels":`,
		"no-panels.json": `{"panels":[]}`,
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		if _, err := loadDashboard(p); err == nil {
			t.Errorf("loadDashboard(%s) took it", name)
		}
	}
	c := &cluster{}
	for _, u := range []string{"", "127.0.0.1:9090", "javascript:alert(1)", "http://", "http://h/?q=1", "file:///etc/passwd"} {
		if err := c.setDashboard(filepath.Join(dir, "no-panels.json"), u); err == nil || !strings.Contains(err.Error(), "-prometheus") {
			t.Errorf("-prometheus %q: %v, want refused", u, err)
		}
	}
	if err := c.setDashboard(filepath.Join(dir, "missing.json"), "http://127.0.0.1:9090"); err == nil {
		t.Error("-dashboard naming no file was taken")
	}
}

// GET /.flylocal/dashboard: the page, with the panels and the Prometheus
// URL as JavaScript values (html/template escapes them), and no panel
// text as markup.
func TestDashboardPage(t *testing.T) {
	c, port := controlEdge(t)
	if err := c.setDashboard("../../ops/grafana-dashboard.json", "http://127.0.0.1:9090"); err != nil {
		t.Fatal(err)
	}
	c.panels = append(c.panels, panelView{Title: `</script><img src=x onerror=alert(1)>`, Type: "stat", Queries: []queryView{}})
	status, body, _ := call(t, port, "GET", "/.flylocal/dashboard", "localhost:"+strconv.Itoa(port), nil)
	if status != 200 || !strings.Contains(body, `"Clients (fleet)"`) || !strings.Contains(body, `"http://127.0.0.1:9090"`) {
		t.Fatalf("GET dashboard = %d %.300q", status, body)
	}
	if strings.Contains(body, "<img src=x") {
		t.Error("a panel title reached the page as markup")
	}
}
