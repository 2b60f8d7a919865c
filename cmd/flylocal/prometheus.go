package main

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// The dashboard, locally: flylocal tells a local Prometheus where its
// machines' /metrics are (http_sd), and draws ops/grafana-dashboard.json's
// panels from that Prometheus on a page of its own, since Grafana is not
// at hand. ops/prometheus.yml is the Prometheus side.

// targetGroup is one entry of Prometheus' http_sd format.
type targetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// prometheusTargets is GET /.flylocal/prometheus/targets: every machine
// whose process runs (started, or stopping, whose hand-off is worth
// seeing), labelled as Fly's managed Prometheus labels its series: app,
// region in lower case, instance the machine id. Never null: http_sd
// wants a list.
func (c *cluster) prometheusTargets() []targetGroup {
	out := []targetGroup{}
	for _, m := range c.machines {
		if st := m.State(); st != stateStarted && st != stateStopping {
			continue
		}
		out = append(out, targetGroup{Targets: []string{m.addr()},
			Labels: map[string]string{"app": c.app, "region": strings.ToLower(m.Region), "instance": m.ID}})
	}
	return out
}

// panelView is one panel of the dashboard as the local page draws it.
type panelView struct {
	Title   string      `json:"title"`
	Type    string      `json:"type"` // Grafana's: stat, timeseries, table, geomap
	Unit    string      `json:"unit,omitempty"`
	Queries []queryView `json:"queries"`
}

type queryView struct {
	Expr   string `json:"expr"`  // as the dashboard has it
	Query  string `json:"query"` // with the variables filled in (localQuery)
	Legend string `json:"legend,omitempty"`
}

// maxDashboardBytes bounds the dashboard file read at start (ours is 40 KB).
const maxDashboardBytes = 4 << 20

// dashboardRate is what $__rate_interval becomes: Grafana's would be four
// scrapes (4 s at ops/prometheus.yml's 1 s), too jumpy to read.
const dashboardRate = "30s"

// localQuery fills in the dashboard's variables as "All" (every app,
// region and instance), as the dashboard opens.
func localQuery(expr string) string {
	return strings.NewReplacer("$__rate_interval", dashboardRate, "$app", ".*", "$region", ".*", "$instance", ".*").Replace(expr)
}

// loadDashboard reads a Grafana dashboard file's panels.
func loadDashboard(path string) ([]panelView, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDashboardBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxDashboardBytes {
		return nil, fmt.Errorf("%s: over %d bytes", path, maxDashboardBytes)
	}
	var d struct {
		Panels []struct {
			Title       string `json:"title"`
			Type        string `json:"type"`
			FieldConfig struct {
				Defaults struct {
					Unit string `json:"unit"`
				} `json:"defaults"`
			} `json:"fieldConfig"`
			Targets []struct {
				Expr         string `json:"expr"`
				LegendFormat string `json:"legendFormat"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make([]panelView, 0, len(d.Panels))
	for _, p := range d.Panels {
		v := panelView{Title: p.Title, Type: p.Type, Unit: p.FieldConfig.Defaults.Unit, Queries: []queryView{}}
		for _, t := range p.Targets {
			v.Queries = append(v.Queries, queryView{Expr: t.Expr, Query: localQuery(t.Expr), Legend: t.LegendFormat})
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no panels", path)
	}
	return out, nil
}

// setDashboard loads the panels for the local page: from path, or when
// path is "" from this module's ops/grafana-dashboard.json, whose absence
// (flylocal run outside the module) only leaves the page empty.
func (c *cluster) setDashboard(path, prometheus string) error {
	u, err := url.Parse(prometheus)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("-prometheus %.100q: want an http:// or https:// URL with a host", prometheus)
	}
	c.prometheusURL = strings.TrimRight(prometheus, "/")
	explicit := path != ""
	if !explicit {
		root, err := moduleRoot()
		if err != nil {
			c.dashboardErr = "no dashboard: " + err.Error() + " (or pass -dashboard)"
			return nil
		}
		path = filepath.Join(root, "ops", "grafana-dashboard.json")
	}
	panels, err := loadDashboard(path)
	switch {
	case err == nil:
		c.panels = panels
	case explicit:
		return fmt.Errorf("-dashboard: %w", err)
	case errors.Is(err, os.ErrNotExist):
		c.dashboardErr = "no dashboard at " + path + " (pass -dashboard)"
	default:
		return err
	}
	return nil
}

//go:embed dashboard.html
var dashboardHTML string

var dashboardPage = template.Must(template.New("dashboard").Parse(dashboardHTML))

// serveDashboard is GET /.flylocal/dashboard: the panels, drawn in the
// browser from the Prometheus at -prometheus (its HTTP API allows any
// origin by default).
func (c *cluster) serveDashboard(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	dashboardPage.Execute(w, struct {
		App, Prometheus, Error, Rate string
		Panels                       []panelView
	}{c.app, c.prometheusURL, c.dashboardErr, dashboardRate, c.panels})
}
