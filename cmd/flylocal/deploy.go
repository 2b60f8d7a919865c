package main

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"
)

// deployment is a rolling deploy like `fly deploy` with max_unavailable =
// 1: one machine at a time, the proxy's close frames (unless turned off),
// the kill signal, a wait for exit or kill_timeout, a restart on the binary
// (which may have been rebuilt in place): the boot delay, then the service
// check's grace and interval until one passes (health.go), then the next
// machine. While a machine stops, its state is "stopping": edges
// route it no new connections, and a replay to it fails over as Fly's do.
type deployment struct {
	mu       sync.Mutex // guards the fields below
	running  bool
	started  time.Time
	finished time.Time
	current  string   // the machine being replaced
	done     []string // machines replaced, in order
	err      string
	log      []string
}

// deployStatus is GET /.flylocal/deploy.
type deployStatus struct {
	Running  bool     `json:"running"`
	Current  string   `json:"current,omitempty"`
	Done     []string `json:"done"`
	Total    int      `json:"total"`
	Error    string   `json:"error,omitempty"`
	Seconds  float64  `json:"seconds"`
	Log      []string `json:"log"`
	Finished bool     `json:"finished"`
}

func (d *deployment) status(total int) deployStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	end := d.finished
	if d.running || end.IsZero() {
		end = time.Now()
	}
	secs := 0.0
	if !d.started.IsZero() {
		secs = end.Sub(d.started).Seconds()
	}
	return deployStatus{Running: d.running, Current: d.current, Done: append([]string{}, d.done...), Total: total,
		Error: d.err, Seconds: secs, Log: append([]string{}, d.log...), Finished: !d.running && !d.finished.IsZero()}
}

func (d *deployment) note(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	log.Print("flylocal deploy: " + line)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log = append(d.log, time.Now().Format("15:04:05.000")+" "+line)
}

// deploy starts a rolling deploy in the background; false when one runs.
func (c *cluster) deploy(closeFrames bool) bool {
	d := &c.deployment
	d.mu.Lock()
	if d.running {
		d.mu.Unlock()
		return false
	}
	d.running, d.started, d.finished, d.current = true, time.Now(), time.Time{}, ""
	d.done, d.err, d.log = nil, "", nil
	d.mu.Unlock()
	go func() {
		err := c.roll(closeFrames)
		d.mu.Lock()
		d.running, d.finished, d.current = false, time.Now(), ""
		if err != nil {
			d.err = err.Error()
		}
		d.mu.Unlock()
		if err != nil {
			d.note("failed: %v", err)
		} else {
			d.note("done")
		}
	}()
	return true
}

func (c *cluster) roll(closeFrames bool) error {
	d := &c.deployment
	for _, m := range c.machines {
		if m.State() != stateStarted {
			d.note("%s (%s) is %s: skipped", m.ID, m.Region, m.State())
			continue
		}
		d.mu.Lock()
		d.current = m.ID
		d.mu.Unlock()
		start := time.Now()
		d.note("%s (%s): stopping (close frames %v, %s, kill_timeout %v)", m.ID, m.Region, closeFrames, m.c.killSignal, m.c.killTimeout)
		m.stopWith(closeFrames && c.stopCloseFrames)
		d.note("%s: %s after %v", m.ID, m.lastExit(), time.Since(start).Round(time.Millisecond))
		if err := m.start(context.Background()); err != nil {
			return err
		}
		d.note("%s: checks passing %v after its stop began (boot %v, grace %v)", m.ID, time.Since(start).Round(time.Millisecond),
			c.timing.boot, c.timing.grace)
		d.mu.Lock()
		d.done = append(d.done, m.ID)
		d.mu.Unlock()
	}
	return nil
}
