package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/party-sockets/party-sockets/internal/peerauth"
)

// What the overview shows beyond the machine table: the last replays the
// edges followed, and a per-second history of clients and messages per
// region, sampled from every machine's /metrics.

// replayEvent is one replay or fallback an edge followed.
type replayEvent struct {
	At   string `json:"at"`
	Edge string `json:"edge"`
	Kind string `json:"kind"` // instance, region, probe, moved, elsewhere, fallback
	From string `json:"from"` // the machine that answered fly-replay (or failed)
	To   string `json:"to"`   // a machine id or a region
	Path string `json:"path"`
}

const (
	replayLogSize = 30
	historySize   = 120 // samples, one a second
)

// watch holds the replay log and the history; safe for concurrent use.
type watch struct {
	mu      sync.Mutex
	replays []replayEvent // newest last
	times   []string
	deploy  []bool               // a rolling deploy ran at the sample
	clients map[string][]float64 // region → one value per sample
	msgs    map[string][]float64 // region → messages relayed per second
	last    map[string]float64   // machine id → its last messages_total
}

func (w *watch) replay(ev replayEvent) {
	ev.At = time.Now().Format("15:04:05.000")
	if len(ev.Path) > 80 {
		ev.Path = ev.Path[:80]
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.replays = append(w.replays, ev)
	if len(w.replays) > replayLogSize {
		w.replays = w.replays[len(w.replays)-replayLogSize:]
	}
}

// replayKind names a fly-replay answer for the log: its state says when a
// probe found the holder or the room moved (the server adds it).
func replayKind(value string) string {
	f := map[string]string{}
	for _, part := range strings.Split(value, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		f[k] = strings.Trim(v, `"`)
	}
	switch {
	case f["state"] == "probe" || f["state"] == "moved":
		return f["state"]
	case f["instance"] != "":
		return "instance"
	case f["region"] != "":
		return "region"
	}
	return "elsewhere"
}

// sample reads every running machine's gauges and counters once.
func (c *cluster) sample() {
	clients, msgs := map[string]float64{}, map[string]float64{}
	for _, m := range c.machines {
		clients[m.Region] += 0 // every region has a line, even at zero
		msgs[m.Region] += 0
		if !m.running() || m.isFrozen() {
			continue
		}
		g := scrapeMetrics(m, "party_sockets_clients", "party_sockets_messages_total")
		clients[m.Region] += g["party_sockets_clients"]
		total := g["party_sockets_messages_total"]
		c.watch.mu.Lock()
		prev, seen := c.watch.last[m.ID]
		c.watch.last[m.ID] = total
		c.watch.mu.Unlock()
		if seen && total >= prev {
			msgs[m.Region] += total - prev // one second apart
		}
	}
	deploying := c.deployment.status(0).Running
	w := &c.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	w.times = append(w.times, time.Now().Format("15:04:05"))
	w.deploy = append(w.deploy, deploying)
	for region := range clients {
		w.clients[region] = append(w.clients[region], clients[region])
		w.msgs[region] = append(w.msgs[region], msgs[region])
	}
	if len(w.times) > historySize {
		cut := len(w.times) - historySize
		w.times, w.deploy = w.times[cut:], w.deploy[cut:]
		for region := range w.clients {
			w.clients[region] = w.clients[region][cut:]
			w.msgs[region] = w.msgs[region][cut:]
		}
	}
}

// sampleEvery samples once a second until stop is closed.
func (c *cluster) sampleEvery(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			c.sample()
		}
	}
}

// history is what the overview's chart draws.
type history struct {
	Times     []string             `json:"times"`
	Deploying []bool               `json:"deploying"` // per sample: a rolling deploy ran
	Clients   map[string][]float64 `json:"clients"`
	Msgs      map[string][]float64 `json:"msgs"`
}

func (w *watch) snapshot() ([]replayEvent, history) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := history{
		Times:     append([]string{}, w.times...),
		Deploying: append([]bool{}, w.deploy...),
		Clients:   map[string][]float64{},
		Msgs:      map[string][]float64{},
	}
	for r, v := range w.clients {
		h.Clients[r] = append([]float64{}, v...)
	}
	for r, v := range w.msgs {
		h.Msgs[r] = append([]float64{}, v...)
	}
	return append([]replayEvent{}, w.replays...), h
}

var scrapeClient = &http.Client{Timeout: 500 * time.Millisecond}

// scrapeMetrics sums the named series (over their labels) from a machine's
// /metrics; a failure reads as zeros.
func scrapeMetrics(m *machine, names ...string) map[string]float64 {
	out := map[string]float64{}
	resp, err := scrapeClient.Get("http://" + m.addr() + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		for _, want := range names {
			if name == want {
				fields := strings.Fields(line)
				v, _ := strconv.ParseFloat(fields[len(fields)-1], 64)
				out[name] += v
			}
		}
	}
	return out
}

// roomView is one room of a machine, from its GET /.internal/rooms.
type roomView struct {
	Code    string `json:"code"`
	Clients int    `json:"clients"`
}

// listRooms asks a machine how many rooms and members it holds, and which
// rooms (at most 200 are listed).
func (c *cluster) listRooms(m *machine) (rooms, clients int, list []roomView) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+m.addr()+"/.internal/rooms", nil)
	if c.handoffSecret != "" {
		// Signed as a sibling signs: the room list takes nothing else.
		key := peerauth.DeriveKey([]byte(c.handoffSecret), peerauth.LabelInternal)
		req.Header.Set(peerauth.Header, peerauth.Sign(key, "flylocal", m.ID, req.Method, req.URL.RequestURI(), nil, time.Now()))
	}
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return 0, 0, nil
	}
	defer resp.Body.Close()
	var body struct {
		Total   int        `json:"total"`
		Clients int        `json:"clients"`
		Rooms   []roomView `json:"rooms"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	return body.Total, body.Clients, body.Rooms
}
