// Command flylocal runs a whole multi-region Fly app on one machine: real
// server processes of this repo on 127.0.0.N, Fly's internal DNS, and one
// edge proxy per region with Fly's replay engine. See the README.
//
//	go run ./cmd/flylocal -regions fra,iad,syd -per-region 2 -port 8080
//
// When everything answers it prints one JSON line on stdout describing the
// cluster, then runs until SIGINT/SIGTERM, when it drains and stops every
// machine it started and exits 0.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type envList []string

func (e *envList) String() string     { return strings.Join(*e, ",") }
func (e *envList) Set(v string) error { *e = append(*e, v); return nil }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "flylocal:", err)
		os.Exit(1)
	}
}

func (e *edge) url() string { return "http://127.0.0.1:" + strconv.Itoa(e.port) }

// Help of the flags too long for one line of run's.
const (
	helpCloseFrames     = "send WebSocket close frames to a machine's clients before stop/suspend"
	helpFallbackSrc     = "a force_self fallback delivery also carries fly-replay-src (undocumented on Fly)"
	helpStoppingReplays = "deliver a replay to a machine that is stopping; off, it fails over like an " +
		"unreachable one (undocumented on Fly)"
	helpProxyHeaders = "a client's own Fly-Region and Fly-Client-IP: replace them, or append the edge's " +
		"after them (undocumented on Fly)"
	helpReplayHeaders = "a client's own fly-replay-src and fly-replay-failed: strip or keep them (undocumented on Fly)"
)

func run() error {
	var (
		regionsFlag = flag.String("regions", "fra,iad", "comma-separated regions, one edge each")
		perRegion   = flag.Int("per-region", 2, "machines per region")
		port        = flag.Int("port", 8080, "first edge port (edges take consecutive ports); 0 picks free ports")
		machinePort = flag.Int("machine-port", 3000, "port every machine listens on, at its own address")
		ipBase      = flag.String("ip-base", "127.0.0.2", "loopback address of the first machine; the rest count up")
		app         = flag.String("app", "party-sockets-local", "app name (FLY_APP_NAME)")
		bin         = flag.String("bin", "", "server binary to run (default: build this repo)")
		killTimeout = flag.Duration("kill-timeout", 10*time.Second, "stop: wait this long after the kill signal before SIGKILL")
		killSignal  = flag.String("kill-signal", "SIGINT", "stop signal, SIGINT or SIGTERM (fly.toml kill_signal)")
		closeFrames = flag.Bool("stop-close-frames", true, helpCloseFrames)
		fallbackSrc = flag.Bool("fallback-src", true, helpFallbackSrc)
		fallbackRep = flag.Bool("fallback-replay", false, "honour fly-replay from a fallback delivery (undocumented on Fly)")
		stoppingRep = flag.Bool("stopping-replays", false, helpStoppingReplays)
		proxyHdrs   = flag.String("client-proxy-headers", proxyHeadersReplace, helpProxyHeaders)
		replayHdrs  = flag.String("client-replay-headers", replayHeadersStrip, helpReplayHeaders)
		quiet       = flag.Bool("quiet", false, "do not copy machine logs to stderr")
		withParent  = flag.Bool(
			"exit-with-parent",
			true,
			"stop every machine and exit when the process that started flylocal ends (go run killed by kill %1)",
		)
		promURL = flag.String(
			"prometheus",
			"http://127.0.0.1:9090",
			"the local Prometheus that /.flylocal/dashboard draws from (ops/prometheus.yml)",
		)
		dashboard = flag.String(
			"dashboard",
			"",
			"Grafana dashboard whose panels /.flylocal/dashboard draws (default: this module's ops/grafana-dashboard.json)",
		)
		readTiming = timingFlags(flag.CommandLine)
		env        envList
	)
	flag.Var(&env, "env", "KEY=VALUE for every machine (repeatable)")
	flag.Parse()
	tm, err := readTiming()
	if err != nil {
		return err
	}

	regionList := strings.Split(*regionsFlag, ",")
	base := net.ParseIP(*ipBase).To4()
	if base == nil || base[0] != 127 {
		return fmt.Errorf("-ip-base %q: want a 127.x.y.z address", *ipBase)
	}
	sig := map[string]os.Signal{"SIGINT": syscall.SIGINT, "SIGTERM": syscall.SIGTERM}[strings.ToUpper(*killSignal)]
	if sig == nil {
		return fmt.Errorf("-kill-signal %q: want SIGINT or SIGTERM", *killSignal)
	}
	c := &cluster{
		app: *app, machineEnv: env, logs: os.Stderr, killSignal: sig, killTimeout: *killTimeout,
		stopCloseFrames: *closeFrames, fallbackSrc: *fallbackSrc, fallbackReplay: *fallbackRep, timing: tm,
	}
	c.stoppingReplays.Store(*stoppingRep)
	if err := c.setDashboard(*dashboard, *promURL); err != nil {
		return err
	}
	if err := c.setClientHeaderModes(*proxyHdrs, *replayHdrs); err != nil {
		return err
	}
	c.quit = make(chan struct{})
	if *withParent {
		watchParent(c.shutdown, c.quit)
	}
	c.watch.clients, c.watch.msgs, c.watch.last = map[string][]float64{}, map[string][]float64{}, map[string]float64{}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "HANDOFF_SECRET="); ok {
			c.handoffSecret = v
		}
	}
	if c.handoffSecret == "" {
		// The machines' hand-offs carry a secret, as on a deployed app, and
		// the overview needs it to list their rooms.
		c.handoffSecret = newSecret()
		c.machineEnv = append(c.machineEnv, "HANDOFF_SECRET="+c.handoffSecret)
	}
	if *quiet {
		c.logs = nil
	}
	c.bin = *bin
	if c.bin == "" {
		dir, err := os.MkdirTemp("", "flylocal")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if c.bin, err = buildServer(dir); err != nil {
			return err
		}
	}
	stopDNS, err := c.serveDNS()
	if err != nil {
		return err
	}
	defer stopDNS()
	for i, region := range regionList {
		p := 0
		if *port != 0 {
			p = *port + i
		}
		e := &edge{c: c, region: region}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return fmt.Errorf("edge %s: %w", region, err)
		}
		e.port, e.ln = ln.Addr().(*net.TCPAddr).Port, ln
		c.edges = append(c.edges, e)
	}
	for _, e := range c.edges { // once c.edges is whole: control requests read it
		go (&http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}).Serve(e.ln)
	}
	if int(base[3])+len(regionList)**perRegion > 254 {
		return fmt.Errorf("-ip-base %s: %d machines and the edges' address do not fit in its /24", *ipBase, len(regionList)**perRegion)
	}
	n := 0
	for _, region := range regionList {
		for range *perRegion {
			ip := net.IPv4(base[0], base[1], base[2], base[3]+byte(n)).String()
			m := &machine{ID: newMachineID(), Region: region, IP: ip, Port: *machinePort, c: c, state: stateStopped}
			c.machines = append(c.machines, m)
			n++
		}
	}
	// Fly's proxy is never the client: the edges connect to machines from
	// the address after the last machine's.
	c.proxyIP = net.IPv4(base[0], base[1], base[2], base[3]+byte(n))
	defer c.stopAll()
	errs := make(chan error, len(c.machines))
	for _, m := range c.machines {
		go func() { errs <- m.start(context.Background()) }()
	}
	for range c.machines {
		if err := <-errs; err != nil {
			return err
		}
	}
	if err := c.announce(); err != nil {
		return err
	}
	go c.sampleEvery(c.quit)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-stop:
	case <-c.quit: // POST /.flylocal/shutdown
	}
	c.shutdown()
	fmt.Fprintln(os.Stderr, "flylocal: stopping every machine")
	return nil
}

// announce prints the one JSON line that describes the running cluster.
func (c *cluster) announce() error {
	type machineOut struct {
		ID     string `json:"id"`
		Region string `json:"region"`
		Addr   string `json:"addr"`
	}
	out := struct {
		PID      int               `json:"pid"` // flylocal's own: kill it, not go run
		App      string            `json:"app"`
		Edges    map[string]string `json:"edges"`
		Machines []machineOut      `json:"machines"`
		DNS      string            `json:"dns"`
		Proxy    string            `json:"proxy"` // the address the edges connect to machines from
	}{PID: os.Getpid(), App: c.app, Edges: map[string]string{}, DNS: c.dns.Addr, Proxy: c.proxyIP.String()}
	for _, e := range c.edges {
		out.Edges[e.region] = e.url()
	}
	for _, m := range c.machines {
		out.Machines = append(out.Machines, machineOut{m.ID, m.Region, m.addr()})
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(b))
	return err
}

// buildServer builds this repo's server into dir.
func buildServer(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "party-sockets")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the server: %w", err)
	}
	return out, nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run flylocal inside the party-sockets module, or pass -bin")
	}
	return filepath.Dir(gomod), nil
}
