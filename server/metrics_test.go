package server

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/party-sockets/party-sockets/closecode"
	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/rooms"
)

func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func TestMetricNamesAndLabels(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{Instance: "m1", Region: "syd", Version: "v1.2.3"})
	h := testutil.Dialer{Header: http.Header{"Origin": {"https://a.example"}}}.Dial(t, ts.URL)
	code := h.Create("h", 4)
	g := testutil.Dialer{Header: http.Header{"Origin": {"https://b.example"}}}.Dial(t, ts.URL)
	g.Join(code, "g")
	g.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0]}`)
	g.Send(`{"type":"send","data":"x"}`)
	h.Expect(`{"type":"peer_joined","index":1}`)
	h.Expect(`{"type":"message","from":1,"data":"x"}`)
	g.Send(`nope`)
	g.ExpectErr("Invalid JSON")
	// The host's session counts its create after the room has sent
	// created, and nothing the test reads after it waits for that count:
	// wait for it. (Read at once, it was sometimes 0 on a busy machine.)
	// What g's session counted is in, as g's error came after it.
	testutil.Eventually(t, 5*time.Second, "the create to be counted", func() bool {
		return originValue(gather(t, ts.reg), "party_sockets_rooms_created_total", "https://a.example") > 0
	})

	mfs := gather(t, ts.reg)
	want := map[string]dto.MetricType{
		"party_sockets_clients":                  dto.MetricType_GAUGE,
		"party_sockets_rooms":                    dto.MetricType_GAUGE,
		"party_sockets_origins_tracked":          dto.MetricType_GAUGE,
		"party_sockets_clients_by_origin":        dto.MetricType_GAUGE,
		"party_sockets_rooms_by_origin":          dto.MetricType_GAUGE,
		"party_sockets_connections_total":        dto.MetricType_COUNTER,
		"party_sockets_rooms_created_total":      dto.MetricType_COUNTER,
		"process_resident_memory_bytes":          dto.MetricType_GAUGE,
		"process_heap_used_bytes":                dto.MetricType_GAUGE,
		"process_uptime_seconds":                 dto.MetricType_COUNTER,
		"party_sockets_messages_total":           dto.MetricType_COUNTER,
		"party_sockets_deliveries_total":         dto.MetricType_COUNTER,
		"party_sockets_errors_total":             dto.MetricType_COUNTER,
		"party_sockets_probe_duration_seconds":   dto.MetricType_HISTOGRAM,
		"party_sockets_delivered_bytes_total":    dto.MetricType_COUNTER,
		"party_sockets_connections_closed_total": dto.MetricType_COUNTER,
	}
	for name, typ := range want {
		mf, ok := mfs[name]
		if !ok {
			t.Errorf("metric %s missing", name)
			continue
		}
		if mf.GetType() != typ {
			t.Errorf("%s is %v, want %v", name, mf.GetType(), typ)
		}
	}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := labels(m)
			if l["instance"] != "m1" || l["region"] != "SYD" || l["version"] != "v1.2.3" {
				t.Errorf("%s%v: want instance=m1 region=SYD version=v1.2.3", name, l)
			}
		}
	}
	value := func(name, origin string) float64 { return originValue(mfs, name, origin) }
	checks := []struct {
		name, origin string
		want         float64
	}{
		{"party_sockets_clients", "", 2},
		{"party_sockets_rooms", "", 1},
		{"party_sockets_clients_by_origin", "https://a.example", 2}, // by room origin
		{"party_sockets_rooms_by_origin", "https://a.example", 1},
		{"party_sockets_connections_total", "https://a.example", 1},
		{"party_sockets_connections_total", "https://b.example", 1},
		{"party_sockets_rooms_created_total", "https://a.example", 1},
		{"party_sockets_messages_total", "", 1},
		{"party_sockets_deliveries_total", "", 1},
	}
	for _, c := range checks {
		if got := value(c.name, c.origin); got != c.want {
			t.Errorf("%s{origin=%q} = %v, want %v", c.name, c.origin, got, c.want)
		}
	}
	for _, m := range mfs["party_sockets_errors_total"].GetMetric() {
		want := 0.0
		if labels(m)["kind"] == "Invalid JSON" {
			want = 1
		}
		if m.GetCounter().GetValue() != want {
			t.Errorf("errors_total%v = %v, want %v", labels(m), m.GetCounter().GetValue(), want)
		}
	}
}

// originValue is the value of metric name's series for origin ("": the
// series without one), -1 when there is none.
func originValue(mfs map[string]*dto.MetricFamily, name, origin string) float64 {
	for _, m := range mfs[name].GetMetric() {
		if labels(m)["origin"] == origin {
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return -1
}

// A scanner cycling Origin headers must not grow memory or series: the
// table stays at 500 origins and at most 100 (+ __other__) get series.
func TestOriginFloodIsBounded(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{})
	for i := range 1000 {
		c := testutil.Dialer{Header: http.Header{"Origin": {fmt.Sprintf("https://scan%d.example", i)}}}.Dial(t, ts.URL)
		c.Drop()
	}
	for i := range 20000 {
		ts.metrics.connectionOpened(fmt.Sprintf("https://direct%d.example", i))
	}
	mfs := gather(t, ts.reg)
	if got := mfs["party_sockets_origins_tracked"].GetMetric()[0].GetGauge().GetValue(); got != 500 {
		t.Fatalf("origins_tracked = %v, want 500", got)
	}
	for _, name := range []string{"party_sockets_connections_total", "party_sockets_rooms_created_total", "party_sockets_clients_by_origin", "party_sockets_rooms_by_origin"} {
		if n := len(mfs[name].GetMetric()); n > 101 {
			t.Errorf("%s has %d series, want at most 101", name, n)
		}
	}
	var total float64
	for _, m := range mfs["party_sockets_connections_total"].GetMetric() {
		total += m.GetCounter().GetValue()
	}
	// The table forgets evicted origins; what it keeps is summed, not lost.
	if total != 500 {
		t.Errorf("connections_total over all series = %v, want 500 (one per tracked origin)", total)
	}
}

// fakeMember is a room member without a socket.
type fakeMember struct{}

func (fakeMember) Send([]byte)         {}
func (fakeMember) Close(closecode.End) {}

func TestOriginRanking(t *testing.T) {
	t.Parallel()
	mgr := rooms.NewManager(rooms.Config{Codes: &seq{}, Clock: &testutil.FakeClock{}})
	reg := prometheus.NewRegistry()
	m := newMetrics(Config{}, mgr, reg, reg)
	// 150 origins: origin i has i connections; origins 0..9 also have live
	// clients, which outrank any number of connections below 1000.
	for i := range 150 {
		o := fmt.Sprintf("o%03d", i)
		for range i {
			m.connectionOpened(o)
		}
	}
	for i := range 10 {
		r, err := mgr.Create(rooms.CreateRequest{Member: fakeMember{}, ClientID: "h", MaxClients: 10, Origin: fmt.Sprintf("o%03d", i)})
		if err != nil {
			t.Fatal(err)
		}
		_ = r
	}
	mfs := gather(t, reg)
	var got []string
	other := 0.0
	for _, mm := range mfs["party_sockets_connections_total"].GetMetric() {
		o := labels(mm)["origin"]
		if o == "__other__" {
			other = mm.GetCounter().GetValue()
			continue
		}
		got = append(got, o)
	}
	sort.Strings(got)
	if len(got) != 100 {
		t.Fatalf("%d origins with series, want 100", len(got))
	}
	// Kept: o000..o009 (live clients) and the 90 with most connections, o060..o149.
	for _, o := range got {
		var i int
		fmt.Sscanf(o, "o%d", &i)
		if i >= 10 && i < 60 {
			t.Errorf("origin %s (rank too low) has its own series", o)
		}
	}
	wantOther := 0.0
	for i := 10; i < 60; i++ {
		wantOther += float64(i)
	}
	if other != wantOther {
		t.Errorf("__other__ connections = %v, want %v", other, wantOther)
	}
	if !strings.HasPrefix(got[0], "o000") {
		t.Errorf("o000 (live clients, no connections) lost its series: %v", got[:3])
	}
}
