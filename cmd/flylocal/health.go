package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"time"
)

// How long a start takes on Fly, and so here by default: the machine boots
// (no process yet: "starting"), its process starts ("started"), and the
// proxy sends it nothing until its service check passes. The first check
// runs a grace period after the start, then one every interval; a start
// (and a deploy's step) fails if none passes within wait_timeout. The
// check's figures are fly.toml's (health_test.go holds them to it).
const (
	// defaultBootDelay is a guess: Fly publishes no figure for a deploy's
	// machine update (pull, replace, boot); a stopped machine's start is
	// quicker, a first deploy slower.
	defaultBootDelay   = 2 * time.Second
	flyGracePeriod     = 5 * time.Second  // [[http_service.checks]] grace_period
	flyCheckInterval   = 15 * time.Second // interval
	flyCheckTimeout    = 2 * time.Second  // timeout
	flyWaitTimeout     = 6 * time.Minute  // [deploy] wait_timeout
	fastCheckInterval  = 20 * time.Millisecond
	maxConfiguredDelay = 10 * time.Minute
)

// Check states, as fly machines list shows a machine's checks.
const (
	checksWaiting = "waiting"  // started, first check not run yet (the grace period)
	checksFailing = "critical" // the last check failed; the next is an interval away
	checksPassing = "passing"  // routed to
)

// timing is how a machine comes up. Static after construction.
type timing struct {
	boot     time.Duration // machine start to process start
	grace    time.Duration // process start to the first check
	interval time.Duration // between checks until one passes
	timeout  time.Duration // one check's
	wait     time.Duration // process start to a passing check, at most
}

// timingFlags registers the start-timing flags on fs; the function it
// returns reads them after fs.Parse.
func timingFlags(fs *flag.FlagSet) func() (timing, error) {
	tm := timing{timeout: flyCheckTimeout}
	fs.DurationVar(&tm.boot, "boot-delay", defaultBootDelay, "a start: wait this long before the process runs (the machine's boot)")
	fs.DurationVar(
		&tm.grace,
		"health-grace",
		flyGracePeriod,
		"first health check this long after the process starts (fly.toml grace_period); not routed before one passes",
	)
	fs.DurationVar(
		&tm.interval,
		"health-interval",
		flyCheckInterval,
		"then a check every interval until one passes (fly.toml interval)",
	)
	fs.DurationVar(
		&tm.wait,
		"wait-timeout",
		flyWaitTimeout,
		"a start fails when no check passed this long after the process started (fly.toml wait_timeout)",
	)
	fast := fs.Bool(
		"fast",
		false,
		"start machines at once: -boot-delay 0 -health-grace 0 -health-interval 20ms (what the tests use)",
	)
	return func() (timing, error) {
		if *fast {
			var clash []string
			fs.Visit(func(f *flag.Flag) {
				if f.Name == "boot-delay" || f.Name == "health-grace" || f.Name == "health-interval" {
					clash = append(clash, "-"+f.Name)
				}
			})
			if len(clash) > 0 {
				return timing{}, fmt.Errorf(
					"-fast sets -boot-delay, -health-grace and -health-interval: leave out %s",
					strings.Join(clash, ", "),
				)
			}
			tm.boot, tm.grace, tm.interval = 0, 0, fastCheckInterval
		}
		return tm, tm.check()
	}
}

// check bounds every delay: none negative or above ten minutes (the wait
// an hour), checks no more often than every 10 ms, and a wait that a first
// check can meet.
func (tm timing) check() error {
	var errs []error
	for _, d := range []struct {
		name           string
		v, least, most time.Duration
	}{{"-boot-delay", tm.boot, 0, maxConfiguredDelay}, {"-health-grace", tm.grace, 0, maxConfiguredDelay},
		{"-health-interval", tm.interval, 10 * time.Millisecond, maxConfiguredDelay}, {"-wait-timeout", tm.wait, time.Second, time.Hour}} {
		if d.v < d.least || d.v > d.most {
			errs = append(errs, fmt.Errorf("%s %v: want %v to %v", d.name, d.v, d.least, d.most))
		}
	}
	if tm.grace >= tm.wait {
		errs = append(
			errs,
			fmt.Errorf("-health-grace %v is not below -wait-timeout %v: no machine would ever be healthy", tm.grace, tm.wait),
		)
	}
	return errors.Join(errs...)
}

// bootWait is the machine's boot: it ends early, with an error, when the
// start is cancelled (a stop) or flylocal quits.
func (c *cluster) bootWait(cancel <-chan struct{}) error {
	if c.timing.boot <= 0 {
		return nil
	}
	t := time.NewTimer(c.timing.boot)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-cancel:
	case <-c.quit:
	}
	return errors.New("stopped while booting")
}

// awaitChecks runs the service check of cmd's process on Fly's schedule
// until one passes (the machine is routed from then on), the process
// exits, or wait_timeout passes.
func (m *machine) awaitChecks(ctx context.Context, cmd *exec.Cmd, exited <-chan struct{}) error {
	tm := m.c.timing
	ctx, cancel := context.WithTimeout(ctx, tm.wait)
	defer cancel()
	client := &http.Client{Timeout: tm.timeout}
	next := time.NewTimer(tm.grace)
	defer next.Stop()
	for {
		select {
		case <-exited:
			return fmt.Errorf("machine %s exited while starting", m.ID)
		case <-ctx.Done():
			return fmt.Errorf("machine %s: no passing check within %v: %w", m.ID, tm.wait, ctx.Err())
		case <-next.C:
		}
		if m.setChecks(cmd, m.checkOnce(ctx, client)) {
			return nil
		}
		next.Reset(tm.interval)
	}
}

// checkOnce is one GET /health, as fly.toml's check asks it.
func (m *machine) checkOnce(ctx context.Context, client *http.Client) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.addr()+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// setChecks records a check's result for cmd's process, if it is still
// the machine's and started; true when the machine is now routed.
func (m *machine) setChecks(cmd *exec.Cmd, ok bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != cmd || m.state != stateStarted {
		return false
	}
	m.checks = checksFailing
	if ok {
		m.checks = checksPassing
	}
	return ok
}
