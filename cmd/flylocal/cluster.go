package main

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/party-sockets/party-sockets/internal/flydns"
)

// cluster is the local Fly: its machines, DNS and edges.
type cluster struct {
	app        string
	bin        string
	dns        *flydns.Server // Fly's internal DNS (dns.go); set by serveDNS before any machine starts
	machines   []*machine     // fixed after start; each machine guards its own state
	edges      []*edge
	proxyIP    net.IP // the edges' source address towards machines; nil: the system's choice
	machineEnv []string
	logs       io.Writer

	killSignal      os.Signal
	killTimeout     time.Duration
	timing          timing      // how a machine boots and passes its checks (health.go)
	stopCloseFrames bool        // close frames to WebSocket clients before stop/suspend
	fallbackSrc     bool        // a force_self fallback also carries fly-replay-src
	fallbackReplay  bool        // a fly-replay answer to a fallback delivery is honoured
	stoppingReplays atomic.Bool // a replay to a stopping machine is delivered, not failed over

	// What an edge does with a client's own proxy headers (settings.go).
	appendProxyHeaders atomic.Bool // the client's Fly-Region and Fly-Client-IP stay, before the edge's
	keepReplayHeaders  atomic.Bool // the client's fly-replay-src and fly-replay-failed reach the machine

	// The dashboard page (prometheus.go); static after construction.
	prometheusURL string
	panels        []panelView
	dashboardErr  string // why there are no panels

	deployment    deployment // the rolling deploy (deploy.go)
	watch         watch      // replays and history for the overview (watch.go)
	handoffSecret string     // HANDOFF_SECRET given to the machines, for their internal endpoints
	quit          chan struct{}
	quitOnce      sync.Once

	requests   atomic.Int64
	replays    atomic.Int64
	websockets atomic.Int64
}

func (c *cluster) dashboardURL() string {
	if len(c.edges) == 0 {
		return ""
	}
	return c.edges[0].url() + "/.flylocal/"
}

func (c *cluster) machine(id string) *machine {
	for _, m := range c.machines {
		if m.ID == id {
			return m
		}
	}
	return nil
}

// leastLoaded is the started machine of region with the least load (ties
// broken at random), skipping those in skip.
func (c *cluster) leastLoaded(region string, skip map[*machine]bool) *machine {
	if region == "" {
		return nil
	}
	var best []*machine
	var bestLoad int64
	for _, m := range c.machines {
		if m.Region != region || skip[m] || !m.routable() {
			continue
		}
		switch l := m.load.Load(); {
		case len(best) == 0 || l < bestLoad:
			best, bestLoad = []*machine{m}, l
		case l == bestLoad:
			best = append(best, m)
		}
	}
	if len(best) == 0 {
		return nil
	}
	return best[rand.IntN(len(best))]
}

// nearest is the least-loaded machine of region, else of the first other
// region (in cluster order) that has one routable.
func (c *cluster) nearest(region string, skip map[*machine]bool) *machine {
	if m := c.leastLoaded(region, skip); m != nil {
		return m
	}
	for _, r := range c.regions() {
		if m := c.leastLoaded(r, skip); m != nil {
			return m
		}
	}
	return nil
}

func (c *cluster) regions() []string {
	var out []string
	for _, m := range c.machines {
		if !slices.Contains(out, m.Region) {
			out = append(out, m.Region)
		}
	}
	return out
}

// wake starts a stopped machine or resumes a suspended one, as
// fly-force-instance-id does.
func (c *cluster) wake(m *machine) error {
	switch m.State() {
	case stateStopped:
		return m.start(context.Background())
	case stateSuspended:
		return m.resume()
	}
	return nil
}

// stopAll drains every machine at once, by pid, bounded by the kill timeout.
func (c *cluster) stopAll() {
	done := make(chan struct{})
	for _, m := range c.machines {
		go func() { m.stop(); done <- struct{}{} }()
	}
	for range c.machines {
		<-done
	}
}

// shutdown asks flylocal to stop every machine and exit, as SIGTERM does.
func (c *cluster) shutdown() { c.quitOnce.Do(func() { close(c.quit) }) }
