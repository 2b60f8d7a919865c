package server

import (
	"bytes"
	"cmp"
	"fmt"
	"net/http"
	"os"
	"runtime"
	runtimemetrics "runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/party-sockets/party-sockets/closecode"
	"github.com/party-sockets/party-sockets/internal/budget"
	"github.com/party-sockets/party-sockets/internal/wire"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/routing"
)

// Bounds of the per-origin table, the old relay's 500 origins and 100 with
// series of their own (ops/README.md, "Origins tracked").
const (
	originTableSize = 500
	originSeries    = 100
	tenantTableSize = 100
	otherOrigin     = "__other__"
)

type originStats struct {
	connections  atomic.Uint64
	roomsCreated atomic.Uint64
}

// metrics holds the counters the server updates and collects the gauges
// from the room manager at scrape time.
type metrics struct {
	tenants *lru.Cache[string, *originStats] // create tokens' sub, bounded like origins
	mgr     *rooms.Manager
	budget  *budget.Budget
	origins *lru.Cache[string, *originStats]
	start   time.Time
	handler http.Handler

	messages   prometheus.Counter
	deliveries prometheus.Counter
	bytes      prometheus.Counter
	errors     *prometheus.CounterVec
	closes     *prometheus.CounterVec
	replays    *prometheus.CounterVec
	probes     *prometheus.CounterVec
	probeTime  prometheus.Histogram
	handoffs   *prometheus.CounterVec
	handoffDur prometheus.Histogram
	tickets    ticketMetrics // tickets.go

	descs map[string]*prometheus.Desc
}

func newMetrics(cfg Config, mgr *rooms.Manager, reg prometheus.Registerer, gatherer prometheus.Gatherer) *metrics {
	origins, _ := lru.New[string, *originStats](originTableSize)
	tenants, _ := lru.New[string, *originStats](tenantTableSize)
	m := &metrics{mgr: mgr, budget: cfg.Budget, origins: origins, tenants: tenants, start: time.Now()}
	instance, region, version := cfg.Instance, strings.ToUpper(cfg.Region), cfg.Version
	if instance == "" {
		instance = "local"
	}
	if region == "" {
		region = "LOCAL"
	}
	if version == "" {
		version = "dev"
	}
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"instance": instance, "region": region, "version": version}, reg)
	f := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m.messages = f("party_sockets_messages_total", "Client send messages relayed.")
	m.deliveries = f("party_sockets_deliveries_total", "Message frames queued to receivers.")
	m.bytes = f("party_sockets_delivered_bytes_total", "Bytes of message frames queued to receivers.")
	vec := func(name, help, label string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
	}
	m.errors = vec("party_sockets_errors_total", "Error messages sent to clients, by kind.", "kind")
	m.closes = vec("party_sockets_connections_closed_total", "WebSocket connections ended, by reason.", "reason")
	m.replays = vec("party_sockets_replays_total", "fly-replay and redirect answers, by kind.", "kind")
	m.probes = vec("party_sockets_probes_total", "Same-region peer probe rounds, by outcome.", "outcome")
	m.probeTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "party_sockets_probe_duration_seconds", Help: "Duration of a peer probe round.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2, 3, 5},
	})
	m.handoffs = vec("party_sockets_handoff_rooms_total",
		"Rooms handed to a sibling on stop (sent), taken from one (received), and that could not move (failed).", "result")
	m.handoffDur = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "party_sockets_handoff_duration_seconds", Help: "Duration of one room's hand-off, from its lock to the sibling's answer.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	m.descs = map[string]*prometheus.Desc{
		"clients":       d("party_sockets_clients", "Live members in rooms on this machine."),
		"rooms":         d("party_sockets_rooms", "Live rooms on this machine."),
		"tracked":       d("party_sockets_origins_tracked", "Origins in the bounded per-origin table."),
		"clientsOrigin": d("party_sockets_clients_by_origin", "Live members by room origin.", "origin"),
		"roomsOrigin":   d("party_sockets_rooms_by_origin", "Live rooms by origin.", "origin"),
		"connections":   d("party_sockets_connections_total", "WebSocket connections opened.", "origin"),
		"created":       d("party_sockets_rooms_created_total", "Rooms created.", "origin"),
		"rss":           d("process_resident_memory_bytes", "Resident set size in bytes."),
		"heap":          d("process_heap_used_bytes", "Heap bytes in use by live and unswept objects."),
		"uptime":        d("process_uptime_seconds", "Seconds since the process started."),
		"goroutines":    d("go_goroutines", "Goroutines that currently exist."),
		"budgetLimit":   d("party_sockets_memory_budget_limit_bytes", "The memory budget; over it, the largest send queues are shed."),

		"tenantCreated": d("party_sockets_rooms_created_by_tenant_total",
			"Rooms created, by the create token's sub (at most 100 tenants).", "tenant"),
		"budgetUsed": d("party_sockets_memory_budget_used_bytes",
			"Bytes clients make the machine hold: queues, partial messages, slot history, state."),
	}
	if cfg.Webhooks != nil {
		for i, result := range []string{"delivered", "retried", "failed", "dropped"} {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "party_sockets_webhooks_total",
				Help:        "Webhook events delivered, attempts retried, events given up on, and events dropped on a full queue.",
				ConstLabels: prometheus.Labels{"result": result},
			}, func() float64 {
				d, r, f, x := cfg.Webhooks.Stats()
				return float64([]uint64{d, r, f, x}[i])
			}))
		}
	}
	// Every label set is fixed: start each series at zero so rates and
	// dashboards have data before the first event.
	for _, r := range closecode.Labels() {
		m.closes.WithLabelValues(r)
	}
	for _, k := range []string{"instance", "region", "redirect"} {
		m.replays.WithLabelValues(k)
	}
	for _, o := range routing.Outcomes {
		m.probes.WithLabelValues(o)
	}
	for _, r := range []string{handoffSent, handoffReceived, handoffFailed} {
		m.handoffs.WithLabelValues(r)
	}
	// Every error a client can see is a wire.Error with a fixed label.
	for _, l := range wire.Labels() {
		m.errors.WithLabelValues(l)
	}
	reg.MustRegister(m, m.messages, m.deliveries, m.bytes, m.errors, m.closes, m.replays, m.probes, m.probeTime,
		m.handoffs, m.handoffDur)
	m.tickets = newTicketMetrics(reg)
	m.handler = &cachedScrape{g: gatherer, ttl: or(cfg.ScrapeTTL, DefaultScrapeTTL)}
	return m
}

func (m *metrics) connectionOpened(o string) { getOrAdd(m.origins, o).connections.Add(1) }
func (m *metrics) roomCreated(o string)      { getOrAdd(m.origins, o).roomsCreated.Add(1) }

// tenantCreated counts a create by a token's sub: at most tenantTableSize
// tenants, the least recent forgotten.
func (m *metrics) tenantCreated(sub string) {
	if sub != "" {
		getOrAdd(m.tenants, sub).roomsCreated.Add(1)
	}
}
func (m *metrics) connectionClosed(end closecode.End) {
	m.closes.WithLabelValues(end.Label()).Inc()
}

func (m *metrics) relayed(receivers, frameBytes int) {
	m.messages.Inc()
	m.deliveries.Add(float64(receivers))
	m.bytes.Add(float64(receivers * frameBytes))
}

// probeTimer starts timing a probe round; the returned func records it.
func (m *metrics) probeTimer() func(outcome string) {
	start := time.Now()
	return func(outcome string) {
		m.probeTime.Observe(time.Since(start).Seconds())
		m.probes.WithLabelValues(outcome).Inc()
	}
}

// errorSent counts an error sent to a client, by its wire label (a fixed
// set: an error that is no wire.Error counts as "other").
func (m *metrics) errorSent(err error) { m.errors.WithLabelValues(wire.Label(err)).Inc() }

// DefaultScrapeTTL is how long a rendered /metrics page is reused
// (Config.ScrapeTTL). Fly scrapes every 15 s; a scrape from anyone else
// costs at most one render a second (a render of a busy machine measured
// 6.4 ms of CPU).
const DefaultScrapeTTL = time.Second

// cachedScrape serves the Prometheus text exposition, rendered at most once
// per ttl whoever asks and however often.
type cachedScrape struct {
	g   prometheus.Gatherer
	ttl time.Duration

	mu      sync.Mutex // guards body, at, renders; held while rendering
	body    []byte
	at      time.Time
	renders int
}

var textFormat = expfmt.NewFormat(expfmt.TypeTextPlain)

func (c *cachedScrape) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	if c.body == nil || time.Since(c.at) >= c.ttl {
		c.body, c.at = c.render(), time.Now()
		c.renders++
	}
	body := c.body
	c.mu.Unlock()
	w.Header().Set("Content-Type", string(textFormat))
	w.Write(body)
}

func (c *cachedScrape) render() []byte {
	var buf bytes.Buffer
	mfs, err := c.g.Gather()
	enc := expfmt.NewEncoder(&buf, textFormat)
	for _, mf := range mfs {
		enc.Encode(mf)
	}
	if err != nil {
		fmt.Fprintf(&buf, "# gather error: %q\n", err.Error())
	}
	return buf.Bytes()
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range m.descs {
		ch <- d
	}
}

type originRow struct {
	origin                        string
	clients, rooms                int
	connections, created, ranking uint64
}

// Collect implements prometheus.Collector: gauges come from the room
// manager's live counts, which wait for no room's lock (a room being moved
// holds its own across the hand-off), per-origin series from the LRU
// table, top 100 by live clients × 1000 + connections, the rest summed
// into __other__.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	byOrigin := map[string]*originRow{}
	row := func(o string) *originRow {
		r := byOrigin[o]
		if r == nil {
			r = &originRow{origin: o}
			byOrigin[o] = r
		}
		return r
	}
	totalRooms, totalClients := m.mgr.Counts()
	for _, in := range m.mgr.Snapshot() {
		r := row(in.Origin)
		r.rooms++
		r.clients += in.Clients
	}
	for _, o := range m.origins.Keys() {
		if st, ok := m.origins.Peek(o); ok {
			r := row(o)
			r.connections = st.connections.Load()
			r.created = st.roomsCreated.Load()
		}
	}
	rows := make([]*originRow, 0, len(byOrigin))
	for _, r := range byOrigin {
		r.ranking = uint64(r.clients)*1000 + r.connections
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b *originRow) int {
		return cmp.Or(cmp.Compare(b.ranking, a.ranking), strings.Compare(a.origin, b.origin))
	})
	if len(rows) > originSeries {
		other := &originRow{origin: otherOrigin}
		for _, r := range rows[originSeries:] {
			other.clients += r.clients
			other.rooms += r.rooms
			other.connections += r.connections
			other.created += r.created
		}
		rows = append(rows[:originSeries], other)
	}
	gauge := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(m.descs[name], prometheus.GaugeValue, v, labels...)
	}
	counter := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(m.descs[name], prometheus.CounterValue, v, labels...)
	}
	gauge("clients", float64(totalClients))
	gauge("rooms", float64(totalRooms))
	gauge("tracked", float64(m.origins.Len()))
	for _, r := range rows {
		gauge("clientsOrigin", float64(r.clients), r.origin)
		gauge("roomsOrigin", float64(r.rooms), r.origin)
		counter("connections", float64(r.connections), r.origin)
		counter("created", float64(r.created), r.origin)
	}
	gauge("rss", float64(residentBytes()))
	gauge("heap", float64(heapBytes()))
	counter("uptime", time.Since(m.start).Seconds())
	gauge("goroutines", float64(runtime.NumGoroutine()))
	for _, tn := range m.tenants.Keys() {
		if st, ok := m.tenants.Peek(tn); ok {
			counter("tenantCreated", float64(st.roomsCreated.Load()), tn)
		}
	}
	gauge("budgetUsed", float64(m.budget.Used()))
	gauge("budgetLimit", float64(m.budget.Limit()))
}

// residentBytes reads the RSS from /proc (Linux); 0 elsewhere.
func residentBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(fields[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

func heapBytes() uint64 {
	s := []runtimemetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	runtimemetrics.Read(s)
	if s[0].Value.Kind() != runtimemetrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
