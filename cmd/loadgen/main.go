// Command loadgen drives any server speaking the party-sockets protocol with
// four load shapes and reports throughput, end-to-end latency, losses and,
// given the server's pid, its CPU seconds and RSS (from /proc).
//
//	loadgen -shape fanout -url ws://127.0.0.1:3000/ -rooms 50 -size 8 -rate 20 -duration 10s -pid 1234
//	loadgen -shape closed -window 32 ...
//	loadgen -shape idle -conns 10000 -size 4 ...
//	loadgen -shape churn -parallel 16 -size 4 ...
//
// Every loop is bounded by -duration (plus -drain) and counts; the target
// must be a loopback address.
package main

import (
	"github.com/party-sockets/party-sockets/internal/procstat"

	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"
)

type config struct {
	shape    string
	url      string
	rooms    int
	size     int
	rate     float64
	window   int
	conns    int
	parallel int
	duration time.Duration
	drain    time.Duration
	pid      int
	stall    int
	payload  int

	heartbeat time.Duration
}

// report is the JSON line.
type report struct {
	Shape               string        `json:"shape"`
	Duration            float64       `json:"duration_s"`
	SentPerSec          float64       `json:"sent_per_s,omitempty"`
	DeliveredPerSec     float64       `json:"delivered_per_s,omitempty"`
	Fanout              *fanoutResult `json:"fanout,omitempty"`
	Idle                *idleResult   `json:"idle,omitempty"`
	Churn               *churnResult  `json:"churn,omitempty"`
	ServerCPU           float64       `json:"server_cpu_s"`
	ServerRSS           int64         `json:"server_rss_bytes"`
	ServerRSSDelta      int64         `json:"server_rss_delta_bytes"`
	DeliveriesPerCPUSec float64       `json:"deliveries_per_cpu_s,omitempty"`
	RSSPerConn          float64       `json:"rss_per_conn_bytes,omitempty"`
	CPUPerCycleUs       float64       `json:"cpu_per_cycle_us,omitempty"`
	Failed              bool          `json:"failed"`
}

func main() {
	var cfg config
	flag.StringVar(&cfg.shape, "shape", "fanout", "fanout (open loop), closed (closed loop), idle, churn")
	flag.StringVar(&cfg.url, "url", "ws://127.0.0.1:3000/", "server WebSocket URL (loopback only)")
	flag.IntVar(&cfg.rooms, "rooms", 50, "rooms (fanout, closed)")
	flag.IntVar(&cfg.size, "size", 8, "members per room")
	flag.Float64Var(&cfg.rate, "rate", 20, "messages per second per member (fanout)")
	flag.IntVar(&cfg.window, "window", 32, "messages in flight per member (closed)")
	flag.IntVar(&cfg.conns, "conns", 10000, "connections (idle)")
	flag.DurationVar(&cfg.heartbeat, "heartbeat", 0, "idle: each connection sends {\"type\":\"ping\"} this often (0: none)")
	flag.IntVar(&cfg.parallel, "parallel", 16, "parallel room cycles (churn)")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to send (at most 10m)")
	flag.DurationVar(&cfg.drain, "drain", 5*time.Second, "how long to wait for in-flight messages after sending")
	flag.IntVar(&cfg.pid, "pid", 0, "server pid, for its CPU seconds and RSS from /proc")
	flag.IntVar(&cfg.stall, "stall", 0, "members per room that stop reading (fanout, closed): the others' latency must stay flat")
	flag.IntVar(&cfg.payload, "payload", 64, "bytes of data per message (fanout, closed)")
	recoverOn := flag.Bool("recover", false, `members opt in to message recovery ("recover": true)`)
	flag.Parse()
	if *recoverOn {
		recoverFields = `,"recover":true`
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-url %s: load goes only to loopback addresses", raw)
}

func run(cfg config) error {
	if err := checkLoopback(cfg.url); err != nil {
		return err
	}
	if cfg.stall < 0 || cfg.stall > cfg.size-2 {
		return errors.New("-stall must leave at least two healthy members per room")
	}
	if cfg.duration <= 0 || cfg.duration > 10*time.Minute || cfg.drain > time.Minute {
		return errors.New("-duration must be in (0, 10m] and -drain at most 1m")
	}
	if cfg.heartbeat != 0 && (cfg.heartbeat < 100*time.Millisecond || cfg.heartbeat > time.Minute) {
		return errors.New("-heartbeat must be 0 or in [100ms, 1m]")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.duration+cfg.drain+5*time.Minute)
	defer cancel()

	rep := report{Shape: cfg.shape}
	var before, after procstat.Sample
	var ended bool
	begin := func() { before, _ = procstat.Read(cfg.pid) }
	end := func() { after, _ = procstat.Read(cfg.pid); ended = true }
	var err error
	var window time.Duration
	switch cfg.shape {
	case "fanout", "closed":
		if cfg.shape == "fanout" {
			cfg.window = 0
		}
		// Rooms are built before the measured window starts:
		// runFanoutMeasured calls begin once they are.
		var res fanoutResult
		res, window, err = runFanoutMeasured(ctx, cfg, begin, end)
		rep.Fanout = &res
		rep.SentPerSec = float64(res.Sent) / window.Seconds()
		rep.DeliveredPerSec = float64(res.Delivered) / window.Seconds()
		rep.Failed = res.Lost > 0 || res.Reordered > 0 || res.Errors > 0
	case "idle":
		var res idleResult
		before, _ = procstat.Read(cfg.pid)
		start := time.Now()
		res, err = runIdle(ctx, cfg, func() {
			after, _ := procstat.Read(cfg.pid)
			rep.ServerRSSDelta = after.RSSBytes - before.RSSBytes
			rep.ServerRSS = after.RSSBytes
		})
		window = time.Since(start)
		rep.Idle = &res
		if res.Connections > 0 {
			rep.RSSPerConn = float64(rep.ServerRSSDelta) / float64(res.Connections)
		}
	case "churn":
		begin()
		start := time.Now()
		var res churnResult
		res, err = runChurn(ctx, cfg)
		window = time.Since(start)
		rep.Churn = &res
		rep.Failed = res.Errors > 0
	default:
		return fmt.Errorf("unknown -shape %q", cfg.shape)
	}
	if err != nil {
		return err
	}
	if !ended {
		after, _ = procstat.Read(cfg.pid)
	}
	rep.Duration = window.Seconds()
	if cfg.pid > 0 {
		rep.ServerCPU = after.CPUSeconds - before.CPUSeconds
		if cfg.shape != "idle" {
			rep.ServerRSS = after.RSSBytes
			rep.ServerRSSDelta = after.RSSBytes - before.RSSBytes
		}
		if rep.Fanout != nil && rep.ServerCPU > 0 {
			rep.DeliveriesPerCPUSec = float64(rep.Fanout.Delivered) / rep.ServerCPU
		}
		if rep.Churn != nil && rep.Churn.Cycles > 0 {
			rep.CPUPerCycleUs = rep.ServerCPU / float64(rep.Churn.Cycles) * 1e6
		}
	}
	printSummary(os.Stderr, cfg, rep)
	b, _ := json.Marshal(rep)
	fmt.Println(string(b))
	if rep.Failed {
		return errors.New("run failed: messages lost or reordered, or errors")
	}
	return nil
}

func printSummary(w *os.File, cfg config, r report) {
	fmt.Fprintf(w, "shape %s against %s, %.1fs\n", r.Shape, cfg.url, r.Duration)
	if f := r.Fanout; f != nil {
		fmt.Fprintf(w, "  sent %d (%.0f/s), delivered %d of %d (%.0f/s)\n",
			f.Sent, r.SentPerSec, f.Delivered, f.Expected, r.DeliveredPerSec)
		fmt.Fprintf(w, "  latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
			f.Latency.P50, f.Latency.P90, f.Latency.P99, f.Latency.Max)
		if f.SendLag.Max > 0 {
			fmt.Fprintf(w, "  of which the tool's own send lag ms: p50 %.2f  p99 %.2f\n", f.SendLag.P50, f.SendLag.P99)
		}
		fmt.Fprintf(w, "  lost %d  reordered %d  errors %d\n", f.Lost, f.Reordered, f.Errors)
	}
	if i := r.Idle; i != nil {
		fmt.Fprintf(w, "  %d connections in %d rooms; RSS %+d bytes = %.0f bytes per connection\n",
			i.Connections, i.Rooms, r.ServerRSSDelta, r.RSSPerConn)
	}
	if c := r.Churn; c != nil {
		fmt.Fprintf(w, "  %d cycles (%.0f/s), %d errors; cycle ms p50 %.2f p99 %.2f\n",
			c.Cycles, float64(c.Cycles)/r.Duration, c.Errors, c.Latency.P50, c.Latency.P99)
	}
	if cfg.pid > 0 {
		fmt.Fprintf(w, "  server: %.2f CPU s, RSS %d MiB", r.ServerCPU, r.ServerRSS>>20)
		if r.DeliveriesPerCPUSec > 0 {
			fmt.Fprintf(w, ", %.0f deliveries per CPU s", r.DeliveriesPerCPUSec)
		}
		if r.CPUPerCycleUs > 0 {
			fmt.Fprintf(w, ", %.0f µs CPU per cycle", r.CPUPerCycleUs)
		}
		fmt.Fprintln(w)
	}
}

func containsBytes(b []byte, s string) bool { return strings.Contains(string(b), s) }
