package ops

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// localCluster is what flylocal's JSON line says.
type localCluster struct {
	App      string            `json:"app"`
	Edges    map[string]string `json:"edges"`
	Machines []struct {
		ID     string `json:"id"`
		Region string `json:"region"`
	} `json:"machines"`
}

// Issue 25, item 9: the dashboard, locally. The real flylocal (2 regions
// × 2 machines) serves its machines to a real Prometheus through http_sd,
// with ops/prometheus.yml as the README runs it; real play moves the
// counters (rooms from two origins joined across regions, messages, a
// mistyped code a second, a machine stopped with a room, which moves);
// then every panel query of the dashboard must return a number.
func TestDashboardAgainstLocalCluster(t *testing.T) {
	prom := needTool(t, "prometheus")
	lc := startFlylocal(t)
	cfg, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	const readmeSD = "http://127.0.0.1:8080/.flylocal/prometheus/targets"
	if !strings.Contains(string(cfg), readmeSD) {
		t.Fatalf("prometheus.yml does not discover the machines at %s", readmeSD)
	}
	api := startPrometheus(t, prom, strings.ReplaceAll(string(cfg), "http://127.0.0.1:8080", lc.Edges["fra"]))
	testutil.Eventually(t, 60*time.Second, "the 4 machines discovered and scraped", func() bool {
		r, err := query(api, `count(up{job="flylocal"} == 1)`)
		return err == nil && len(r) == 1 && r[0].Value[1] == "4"
	})

	ctx := t.Context()
	byRegion := map[string][]string{}
	for _, m := range lc.Machines {
		byRegion[m.Region] = append(byRegion[m.Region], m.ID)
	}
	// Two games, each made on its own fra machine and joined by code
	// through the iad edge (a region replay, a probe, an instance replay).
	for i, origin := range []string{"https://quiz.example", "https://draw.example"} {
		host := dialEdge(t, lc.Edges["fra"]+"/?instance="+byRegion["fra"][i], origin)
		code := roomOf(t, host, fmt.Sprintf(`{"type":"create","clientId":"h%d","maxClients":8}`, i))
		guest := dialEdge(t, lc.Edges["iad"]+"/"+code, origin)
		guest.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"type":"join","room":%q,"clientId":"g%d"}`, code, i)))
		go readAll(ctx, guest)
		go readAll(ctx, host)
		go every(ctx, 50*time.Millisecond, 2400, func() { // two minutes at most
			host.Write(ctx, websocket.MessageText, []byte(`{"type":"send","data":{"tick":1}}`))
		})
	}
	// A mistyped code a second: a probe round and "Room not found" each.
	go every(ctx, time.Second, 120, func() {
		code := missingFraCode()
		c, _, err := websocket.Dial(
			ctx,
			wsURL(lc.Edges["fra"])+"/"+code,
			&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://quiz.example"}}},
		)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"`+code+`","clientId":"x"}`))
		c.Read(ctx)
	})
	// A deploy's step: a machine stopped with a room hands it to its
	// sibling, then starts again.
	moving := dialEdge(t, lc.Edges["iad"]+"/?instance="+byRegion["iad"][0], "https://draw.example")
	roomOf(t, moving, `{"type":"create","clientId":"m","maxClients":8}`)
	go readAll(ctx, moving)
	flylocalPost(t, lc.Edges["fra"]+"/.flylocal/machines/"+byRegion["iad"][0]+"/stop")
	flylocalPost(t, lc.Edges["fra"]+"/.flylocal/machines/"+byRegion["iad"][0]+"/start")

	// The play did move the counters the panels draw.
	for _, moved := range []string{`party_sockets_messages_total`, `party_sockets_deliveries_total`, `party_sockets_connections_total`,
		`party_sockets_rooms_created_total`, `party_sockets_replays_total`, `party_sockets_probes_total{outcome="found"}`,
		`party_sockets_probes_total{outcome="not_found"}`, `party_sockets_errors_total{kind="Room not found"}`,
		`party_sockets_handoff_rooms_total{result="received"}`} {
		testutil.Eventually(t, 60*time.Second, moved+" above 0 in Prometheus", func() bool {
			r, err := query(api, "sum(max_over_time("+moved+"[5m])) > 0")
			return err == nil && len(r) == 1
		})
	}

	d := readDashboard(t)
	subs := []map[string]string{
		{"$app": ".*", "$region": ".*", "$instance": ".*"},
		{"$app": lc.App, "$region": "fra", "$instance": ".*"},
		{"$app": lc.App, "$region": "FRA", "$instance": ".*"},
	}
	// Rates need a few scrapes after the traffic began: ask again until
	// every query has a number, for at most 90 s.
	var missing []panelResult
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(time.Second) {
		missing = missing[:0]
		for _, r := range evalPanels(t, api, d, subs) {
			_, known := knownEmpty[r.title]
			if r.err != nil || r.series == 0 || r.finite == 0 && !known {
				missing = append(missing, r)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, r := range missing {
		t.Errorf("panel %q: %d series, %d of them numbers, error %v: %s", r.title, r.series, r.finite, r.err, r.expr)
	}
	for title, why := range knownEmpty {
		t.Logf("panel %q: series but no number here: %s", title, why)
	}
	checkVariables(t, api, d, map[string]string{"app": lc.App, "region": "fra", "instance": byRegion["iad"][0]})
}

// knownEmpty are the panels whose queries return series but no number
// (NaN) against the local cluster, and why. Every other panel must have one.
var knownEmpty = map[string]string{
	// server/handoff.go observes it on the sender alone.
	"Hand-off duration per room": "only the stopping machine observes the duration, and it exits milliseconds after its " +
		"hand-off, before Prometheus scrapes it again (on Fly too, which scrapes every 15 s); the receivers' histograms stay empty",
}

// startFlylocal builds and runs flylocal (-fast, on free edge ports and a
// random loopback range) with this package's build of the server.
func startFlylocal(t *testing.T) localCluster {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "flylocal")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/flylocal").CombinedOutput(); err != nil {
		t.Fatalf("build flylocal: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-fast", "-bin", serverBinary(t), "-regions", "fra,iad", "-per-region", "2", "-port", "0", "-quiet",
		"-machine-port", fmt.Sprint(20000+rand.IntN(20000)), "-ip-base", fmt.Sprintf("127.%d.%d.2", 10+rand.IntN(200), rand.IntN(250)),
		"-kill-timeout", "3s", "-env", "JOIN_MISSES_PER_MIN=600", "-env", "ADDR_PROBE_BURST=600")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	var lc localCluster
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || json.Unmarshal(sc.Bytes(), &lc) != nil || len(lc.Machines) != 4 {
		t.Fatalf("flylocal announced %q", sc.Text())
	}
	return lc
}

func wsURL(u string) string { return "ws" + strings.TrimPrefix(u, "http") }

func dialEdge(t *testing.T, u, origin string) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.Dial(t.Context(), wsURL(u), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// roomOf sends a create and returns the room's code.
func roomOf(t *testing.T, c *websocket.Conn, create string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	c.Write(ctx, websocket.MessageText, []byte(create))
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for created: %v", err)
		}
		var m struct{ Type, Room string }
		if json.Unmarshal(b, &m) == nil && m.Type == "created" {
			return m.Room
		}
	}
}

func readAll(ctx context.Context, c *websocket.Conn) {
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return
		}
	}
}

// every runs f every d, at most n times, until ctx ends.
func every(ctx context.Context, d time.Duration, n int, f func()) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for range n {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			f()
		}
	}
}

// missingFraCode is a valid fra room code that nobody holds: fra is the
// 7th region of the wire contract's table, its index in the code's high
// bits above 30 random ones, in base58.
func missingFraCode() string {
	const b58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
	v := uint64(6)<<30 | uint64(rand.Uint32()&(1<<30-1))
	b := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		b[i] = b58[v%58]
		v /= 58
	}
	return string(b)
}

func flylocalPost(t *testing.T, u string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, nil)
	req.Header.Set("X-Flylocal", "1")
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %s", u, resp.Status)
	}
}
