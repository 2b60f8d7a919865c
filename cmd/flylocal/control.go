package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"
)

type machineView struct {
	ID      string `json:"id"`
	Region  string `json:"region"`
	State   string `json:"state"`
	Addr    string `json:"addr"`
	PID     int    `json:"pid"`
	Rooms   int    `json:"rooms"`
	Clients int    `json:"clients"`
	Load    int64  `json:"load"`
	Exit    string `json:"exit,omitempty"` // how the last process ended
	Frozen  bool   `json:"frozen,omitempty"`
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
//	POST /.flylocal/settings?stopping_replays=<0|1>
//	                                       an undocumented Fly behaviour, switched at run time
func (c *cluster) control(w http.ResponseWriter, r *http.Request) {
	path := strings.Trim(strings.TrimPrefix(r.URL.Path, "/.flylocal"), "/")
	parts := strings.Split(path, "/")
	switch {
	case path == "" && r.Method == http.MethodGet:
		c.overview(w)
	case path == "machines" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(c.views())
	case len(parts) == 2 && parts[0] == "dns" && r.Method == http.MethodPost && (parts[1] == "down" || parts[1] == "up" || parts[1] == "slow"):
		c.dnsDown.Store(parts[1] == "down")
		c.dnsDelay.Store(0)
		if parts[1] == "slow" {
			c.dnsDelay.Store(int64(4 * time.Second))
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]bool{"dns_down": c.dnsDown.Load()})
	case path == "deploy" && r.Method == http.MethodPost:
		if !c.deploy(r.URL.Query().Get("close_frames") != "0") {
			http.Error(w, "a deploy is running", http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(c.deployment.status(len(c.machines)))
	case path == "settings" && r.Method == http.MethodPost:
		if v := r.URL.Query().Get("stopping_replays"); v != "" {
			c.stoppingReplays.Store(v == "1")
			log.Printf("flylocal: stopping_replays=%v", v == "1")
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]bool{"stopping_replays": c.stoppingReplays.Load()})
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
		out[i] = machineView{ID: m.ID, Region: m.Region, State: m.State(), Addr: m.addr(), PID: m.pid(), Load: m.load.Load(), Exit: m.lastExit()}
		m.mu.Lock()
		out[i].Frozen = m.frozen
		m.mu.Unlock()
		if m.routable() && !out[i].Frozen {
			out[i].Rooms, out[i].Clients = scrape(m)
		}
	}
	return out
}

// scrape reads the rooms and clients gauges from a machine's /metrics.
func scrape(m *machine) (rooms, clients int) {
	client := &http.Client{Timeout: 500 * time.Millisecond}
	resp, err := client.Get("http://" + m.addr() + "/metrics")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, _, _ := strings.Cut(line, "{")
		fields := strings.Fields(line)
		v, _ := strconv.ParseFloat(fields[len(fields)-1], 64)
		switch name {
		case "party_sockets_rooms":
			rooms = int(v)
		case "party_sockets_clients":
			clients = int(v)
		}
	}
	return rooms, clients
}

var overviewPage = template.Must(template.New("overview").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>flylocal: {{.App}}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}
.started{color:#070}.stopped{color:#a00}.suspended{color:#a60}.stopping{color:#a60}</style></head>
<body><h1>flylocal: {{.App}}</h1>
<p>{{len .Machines}} machines · {{.Rooms}} rooms · {{.Clients}} clients · {{.WS}} WebSockets through the edges · {{.Replays}} replays</p>
<h2>Edges</h2><ul>{{range .Edges}}<li>{{.Region}}: <a href="{{.URL}}">{{.URL}}</a></li>{{end}}</ul>
<h2>Machines</h2>
<table><tr><th>region</th><th>id</th><th>state</th><th>address</th><th>pid</th><th>rooms</th><th>clients</th><th>load</th></tr>
{{range .Machines}}<tr><td>{{.Region}}</td><td><code>{{.ID}}</code></td><td class="{{.State}}">{{.State}}</td>
<td>{{.Addr}}</td><td>{{.PID}}</td><td>{{.Rooms}}</td><td>{{.Clients}}</td><td>{{.Load}}</td></tr>{{end}}
</table></body></html>`))

func (c *cluster) overview(w http.ResponseWriter) {
	views := c.views()
	data := struct {
		App            string
		Machines       []machineView
		Edges          []struct{ Region, URL string }
		Rooms, Clients int
		WS, Replays    int64
	}{App: c.app, Machines: views, WS: c.websockets.Load(), Replays: c.replays.Load()}
	for _, v := range views {
		data.Rooms += v.Rooms
		data.Clients += v.Clients
	}
	for _, e := range c.edges {
		data.Edges = append(data.Edges, struct{ Region, URL string }{e.region, e.url()})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	overviewPage.Execute(w, data)
}
