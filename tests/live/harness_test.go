// Package live holds black-box tests over real sockets. They run against a
// deployed app when LIVE_URL is set, and otherwise against a local
// multi-region cluster (cmd/flylocal) that they start themselves. They do
// not import the server's packages.
package live

import (
	"bufio"
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

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// Machine is one machine of the app under test.
type Machine struct {
	ID     string `json:"id"`
	Region string `json:"region"`
	Addr   string `json:"addr"` // local cluster only
}

// Cluster is what the tests run against.
type Cluster struct {
	App      string            `json:"app"`
	Edges    map[string]string `json:"edges"` // region → base URL
	Machines []Machine         `json:"machines"`
	DNS      string            `json:"dns"`
	Proxy    string            `json:"proxy"` // local cluster only: the address its edges connect to machines from
	live     bool              // LIVE_URL: edges are one URL plus fly-prefer-region
	cmd      *exec.Cmd
}

var cluster *Cluster

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	var err error
	if u := os.Getenv("LIVE_URL"); u != "" {
		cluster, err = liveCluster(u)
	} else {
		cluster, err = startLocal()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "live tests:", err)
		return 1
	}
	defer cluster.stop()
	return m.Run()
}

func liveCluster(u string) (*Cluster, error) {
	c := &Cluster{Edges: map[string]string{}, live: true}
	spec := os.Getenv("LIVE_MACHINES")
	if spec == "" {
		out, err := exec.Command("fly", "machines", "list", "--json").Output()
		if err != nil {
			return nil, fmt.Errorf("LIVE_URL needs LIVE_MACHINES=id:region,... or the fly CLI: %w", err)
		}
		var list []struct{ ID, Region, State string }
		if err := json.Unmarshal(out, &list); err != nil {
			return nil, err
		}
		for _, m := range list {
			if m.State == "started" {
				c.Machines = append(c.Machines, Machine{ID: m.ID, Region: m.Region})
			}
		}
	} else {
		for _, part := range strings.Split(spec, ",") {
			id, region, _ := strings.Cut(part, ":")
			c.Machines = append(c.Machines, Machine{ID: id, Region: region})
		}
	}
	for _, m := range c.Machines {
		c.Edges[m.Region] = strings.TrimRight(u, "/")
	}
	return c, nil
}

// startLocal builds and starts cmd/flylocal with 2 regions × 2 machines on a
// random loopback /24 and port, and reads its JSON line.
func startLocal() (*Cluster, error) {
	dir, err := os.MkdirTemp("", "live")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "flylocal")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/flylocal")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("building flylocal: %w", err)
	}
	logFile, err := os.Create(filepath.Join(dir, "cluster.log"))
	if err != nil {
		return nil, err
	}
	ipBase := fmt.Sprintf("127.%d.%d.2", 10+rand.IntN(200), rand.IntN(250))
	// -fast: machines start at once, not on Fly's boot and check timing
	// (seconds a machine), or a deploy test would take minutes.
	cmd := exec.Command(bin, "-fast", "-regions", "fra,iad", "-per-region", "2", "-port", "0",
		"-machine-port", fmt.Sprint(20000+rand.IntN(20000)), "-ip-base", ipBase,
		"-kill-timeout", "5s", "-env", "HOST_GRACE=30s", "-env", "LOG_LEVEL=debug", "-env", "SERVER_API_KEY="+localAPIKey,
		"-env", "HANDOFF_SECRET="+localSecret, "-env", "TRUST_CHECK=on",
		// The edges connect from an address of the machines' /24
		// (cmd/flylocal): only they may send the proxy's headers.
		"-env", "TRUSTED_PROXIES="+strings.TrimSuffix(ipBase, ".2")+".0/24",
		// Every test player comes from 127.0.0.1, where on Fly each has its
		// own address: the per-address limits fit 80 players at once (a
		// deploy reconnects them all, and a rejoin that arrives before its
		// room counts as a miss, and may cost a probe round).
		"-env", "UPGRADES_PER_SEC=200", "-env", "UPGRADE_BURST=400", "-env", "JOIN_MISSES_PER_MIN=2000",
		"-env", "ADDR_PROBE_BURST=2000")
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
	}()
	select {
	case l, ok := <-line:
		if !ok {
			cmd.Process.Kill()
			return nil, fmt.Errorf("flylocal exited before announcing; see %s", logFile.Name())
		}
		c := &Cluster{cmd: cmd}
		if err := json.Unmarshal([]byte(l), c); err != nil {
			return nil, fmt.Errorf("flylocal printed %q: %w", l, err)
		}
		fmt.Fprintf(os.Stderr, "live tests: local cluster %s, machine logs in %s\n", l, logFile.Name())
		return c, nil
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		return nil, fmt.Errorf("flylocal did not announce within 3 minutes; see %s", logFile.Name())
	}
}

func (c *Cluster) stop() {
	if c.cmd == nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			fmt.Fprintln(os.Stderr, "live tests: flylocal exited with", err)
		}
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
	}
}

// local skips a test that needs the local cluster's control API.
func local(t *testing.T) {
	t.Helper()
	testutil.TrackModule(t) // the cluster runs binaries built from the whole module
	if cluster.live {
		t.Skip("needs the local cluster (machine lifecycle or DNS control)")
	}
}

func (c *Cluster) regions() []string {
	var out []string
	for r := range c.Edges {
		out = append(out, r)
	}
	return sortStrings(out)
}

func (c *Cluster) inRegion(region string) []Machine {
	var out []Machine
	for _, m := range c.Machines {
		if m.Region == region {
			out = append(out, m)
		}
	}
	return out
}

func (c *Cluster) machine(id string) Machine {
	for _, m := range c.Machines {
		if m.ID == id {
			return m
		}
	}
	return Machine{}
}

// edgeRequest builds a request that enters through region's edge.
func (c *Cluster) edgeRequest(t *testing.T, method, region, path string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, c.Edges[region]+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.live {
		req.Header.Set("Fly-Prefer-Region", region)
	}
	return req
}

// edgeHeader is what a WebSocket dial through region's edge carries.
func (c *Cluster) edgeHeader(region string) http.Header {
	h := http.Header{}
	if c.live {
		h.Set("Fly-Prefer-Region", region)
	}
	return h
}

// control calls the local cluster's control API.
func (c *Cluster) control(t *testing.T, path string) {
	t.Helper()
	if status := c.post(path); status != 200 {
		t.Fatalf("control %s: status %d", path, status)
	}
}

// restore puts a machine back for the next test: a 409 (already in that
// state) is fine.
func (c *Cluster) restore(t *testing.T, path string) {
	t.Helper()
	status := c.post(path)
	if status != 200 && status != 409 {
		t.Errorf("control %s: status %d", path, status)
	}
	if status == 200 && strings.HasSuffix(path, "/start") {
		// The other machines' DNS answers (kept up to 5 s) may still say
		// it is stopped: a room the next test makes on it would not be
		// found by code through them until they ask again.
		time.Sleep(6 * time.Second)
	}
}

func (c *Cluster) post(path string) int {
	resp, err := c.postControl(path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// postControl POSTs to the local cluster's control API with the header
// flylocal asks of every POST (X-Flylocal: 1); the caller closes the body.
func (c *Cluster) postControl(path string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, c.Edges[c.regions()[0]]+"/.flylocal/"+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Flylocal", "1")
	return http.DefaultClient.Do(req)
}

// localSecret is the local cluster's HANDOFF_SECRET; against a deployed
// app the trust check uses LIVE_SECRET (and is skipped without it).
const localSecret = "local-cluster-handoff-secret-0123456789abcdef"

// localAPIKey is the local cluster's SERVER_API_KEY; against a deployed
// app the tests use LIVE_API_KEY (and skip the server API without it).
const localAPIKey = "local-cluster-server-api-key-0123456789"

func apiKey(t *testing.T) string {
	t.Helper()
	if !cluster.live {
		return localAPIKey
	}
	k := os.Getenv("LIVE_API_KEY")
	if k == "" {
		t.Skip("LIVE_API_KEY is not set")
	}
	return k
}

// metricsTTL is a little over how long a machine reuses a rendered
// /metrics page: a read after it is fresh.
const metricsTTL = 1100 * time.Millisecond

// machineMetric reads one counter (summed over its series) straight from a
// local machine's /metrics, bypassing the edges.
func machineMetric(t *testing.T, m Machine, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + m.Addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			total += v
		}
	}
	return total
}
