package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"log"
	"net/http"
	"strconv"
	"strings"
)

type machineView struct {
	ID       string     `json:"id"`
	Region   string     `json:"region"`
	State    string     `json:"state"`
	Addr     string     `json:"addr"`
	PID      int        `json:"pid"`
	Rooms    int        `json:"rooms"`
	Clients  int        `json:"clients"`
	Load     int64      `json:"load"`
	Exit     string     `json:"exit,omitempty"` // how the last process ended
	Frozen   bool       `json:"frozen,omitempty"`
	Checks   string     `json:"checks,omitempty"`     // the service check: waiting, critical, passing (routed)
	Started  string     `json:"started_at,omitempty"` // when the running process started (RFC 3339)
	Routed   int64      `json:"routed"`               // requests and WebSockets the edges delivered to it
	RoomList []roomView `json:"roomList,omitempty"`   // at most 200
}

// control serves the edges' /.flylocal/ API:
//
//	GET  /.flylocal/                       HTML overview of the cluster
//	GET  /.flylocal/machines               machines as JSON
//	POST /.flylocal/machines/<id>/<action> stop, start, suspend, resume, kill, freeze, thaw
//	                                       (stop?close_frames=0: a deploy's drain, no close frames)
//	POST /.flylocal/dns/<down|slow|up>     the internal resolver stops answering, answers after 4 s, or recovers
//	POST /.flylocal/deploy                 a rolling deploy, one machine at a time (202; 409 while one runs;
//	                                       ?close_frames=0: no close frames)
//	GET  /.flylocal/deploy                 its progress as JSON
//	POST /.flylocal/settings?stopping_replays=<0|1>&client_proxy_headers=<replace|append>&client_replay_headers=<strip|keep>
//	                                       undocumented Fly behaviours, switched at run time (settings.go)
//	GET  /.flylocal/state                  everything the overview shows, as JSON
//	GET  /.flylocal/prometheus/targets     the running machines in Prometheus' http_sd format (prometheus.go)
//	GET  /.flylocal/dashboard              ops/grafana-dashboard.json's panels, drawn from the local Prometheus
//	POST /.flylocal/shutdown               stop every machine and exit, as SIGTERM does
//
// Only this machine's own pages and tools are answered (controlRefusal).
// Every POST is logged, and every refusal.
func (c *cluster) control(w http.ResponseWriter, r *http.Request) {
	if status, why := c.controlRefusal(r); status != 0 {
		log.Printf("flylocal: refused control %s %.200s from %s: %s", r.Method, r.URL.RequestURI(), r.RemoteAddr, why)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": why})
		return
	}
	path := strings.Trim(strings.TrimPrefix(r.URL.Path, "/.flylocal"), "/")
	parts := strings.Split(path, "/")
	if r.Method == http.MethodPost {
		log.Printf("flylocal: control %s from %s", r.URL.RequestURI(), r.RemoteAddr)
	}
	switch {
	case path == "" && r.Method == http.MethodGet:
		c.overview(w)
	case path == "state" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(c.state())
	case path == "shutdown" && r.Method == http.MethodPost:
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]bool{"stopping": true})
		c.shutdown()
	case path == "prometheus/targets" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(c.prometheusTargets())
	case path == "dashboard" && r.Method == http.MethodGet:
		c.serveDashboard(w)
	case path == "machines" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(c.views())
	case len(parts) == 2 && parts[0] == "dns" && r.Method == http.MethodPost &&
		(parts[1] == "down" || parts[1] == "up" || parts[1] == "slow"):
		c.setDNS(parts[1])
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]bool{"dns_down": c.dns.Down()})
	case path == "deploy" && r.Method == http.MethodPost:
		if !c.deploy(r.URL.Query().Get("close_frames") != "0") {
			http.Error(w, "a deploy is running", http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(c.deployment.status(len(c.machines)))
	case path == "settings" && r.Method == http.MethodPost:
		c.serveSettings(w, r.URL.Query())
	case path == "deploy" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(c.deployment.status(len(c.machines)))
	case len(parts) == 3 && parts[0] == "machines" && r.Method == http.MethodPost:
		m := c.machine(parts[1])
		if m == nil {
			http.Error(w, "no machine "+parts[1], http.StatusNotFound)
			return
		}
		if err := c.act(m, parts[2], r.URL.Query().Get("close_frames") != "0"); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"id": m.ID, "state": m.State()})
	default:
		http.Error(w, "unknown flylocal control request", http.StatusNotFound)
	}
}

// controlRefusal says why a control request is refused, or 0. The
// control API can stop the cluster and shows room codes, and every page
// the developer's browser opens can send it requests:
//   - a DNS-rebound page reaches 127.0.0.1 under its own name, so the Host
//     must be a loopback name of one of our edges (ownHost);
//   - a cross-site form or no-cors fetch can POST but cannot set a header,
//     so a POST needs X-Flylocal: 1; a fetch that sets it is preflighted,
//     and the OPTIONS is refused here with no CORS headers, so the browser
//     never sends it.
func (c *cluster) controlRefusal(r *http.Request) (int, string) {
	if !c.ownHost(r.Host) {
		return http.StatusForbidden, "Foreign host"
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		if v := r.Header.Values("X-Flylocal"); len(v) != 1 || v[0] != "1" {
			return http.StatusForbidden, "Missing X-Flylocal: 1"
		}
	default:
		return http.StatusMethodNotAllowed, "Method not allowed"
	}
	return 0, ""
}

// ownHost reports whether host (a request's Host) names one of the edges
// by a loopback name: 127.0.0.1:<port>, localhost:<port> or [::1]:<port>,
// the port left out only for port 80. An exact match, so a name that only
// looks like one (evil.localhost, 127.0.0.1.evil.example) is foreign.
func (c *cluster) ownHost(host string) bool {
	if len(host) > len("localhost:65535") {
		return false
	}
	host = strings.ToLower(host)
	for _, e := range c.edges {
		port := strconv.Itoa(e.port)
		for _, name := range []string{"127.0.0.1", "localhost", "[::1]"} {
			if host == name+":"+port || (e.port == 80 && host == name) {
				return true
			}
		}
	}
	return false
}

func (c *cluster) act(m *machine, action string, closeFrames bool) error {
	switch action {
	case "stop":
		m.stopWith(closeFrames && c.stopCloseFrames)
	case "freeze":
		return m.freeze(true)
	case "thaw":
		return m.freeze(false)
	case "start":
		return m.start(context.Background())
	case "suspend":
		return m.suspend()
	case "resume":
		return m.resume()
	case "kill":
		m.kill()
	default:
		return fmt.Errorf("unknown action %q (stop, start, suspend, resume, kill, freeze, thaw)", action)
	}
	return nil
}

func (c *cluster) views() []machineView {
	out := make([]machineView, len(c.machines))
	for i, m := range c.machines {
		v := machineView{ID: m.ID, Region: m.Region, State: m.State(), Addr: m.addr(), PID: m.pid(), Load: m.load.Load(),
			Exit: m.lastExit(), Frozen: m.isFrozen(), Routed: m.routed.Load()}
		v.Checks, v.Started = m.checkState()
		if v.State == stateStarted && !v.Frozen {
			v.Rooms, v.Clients, v.RoomList = c.listRooms(m) // one call, not a /metrics scrape besides
		}
		out[i] = v
	}
	return out
}

//go:embed overview.html
var overviewHTML string

// overviewPage is the live overview: it draws GET /.flylocal/state every
// second and its buttons call the control API.
var overviewPage = template.Must(template.New("overview").Parse(overviewHTML))

// clusterState is GET /.flylocal/state: what the overview draws.
type clusterState struct {
	App      string            `json:"app"`
	Edges    map[string]string `json:"edges"`
	DNS      string            `json:"dns"` // up, down or slow
	Machines []machineView     `json:"machines"`
	Replays  []replayEvent     `json:"replays"` // newest last
	History  history           `json:"history"`
	Deploy   deployStatus      `json:"deploy"`
	WS       int64             `json:"websockets"`
	Requests int64             `json:"requests"`
	Settings map[string]any    `json:"settings"`
}

func (c *cluster) state() clusterState {
	st := clusterState{App: c.app, Edges: map[string]string{}, DNS: c.dnsMode(), Machines: c.views(),
		Deploy: c.deployment.status(len(c.machines)), WS: c.websockets.Load(), Requests: c.requests.Load(),
		Settings: c.settings()}
	for _, e := range c.edges {
		st.Edges[e.region] = e.url()
	}
	st.Replays, st.History = c.watch.snapshot()
	return st
}

func (c *cluster) overview(w http.ResponseWriter) {
	initial, _ := json.Marshal(c.state())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	overviewPage.Execute(w, struct {
		App     string
		Initial template.JS
	}{c.app, template.JS(initial)})
}
