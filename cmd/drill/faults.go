package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Fault kinds, in the order a game night meets them (and their flags).
const (
	faultDeploy    = "deploy"     // a rolling deploy of every machine
	faultCut       = "cut"        // a set of players' networks cut
	faultDNS       = "dns"        // the internal DNS down
	faultKill      = "kill"       // kill -9 of two machines, restarted after a while
	faultFreeze    = "freeze"     // flylocal's freeze, then thaw
	faultRegion    = "region"     // both machines of a region stopped, then started
	faultDNSDeploy = "dns-deploy" // the DNS down during a rolling deploy
)

var faultOrder = []string{faultDeploy, faultCut, faultDNS, faultKill, faultFreeze, faultRegion, faultDNSDeploy}

// fault is one fault of the schedule as it ran.
type fault struct {
	Kind   string    `json:"kind"`
	Label  string    `json:"label"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"` // the action's end (the machines back, the DNS up)
	Err    string    `json:"error,omitempty"`
	Killed []string  `json:"killed_rooms,omitempty"` // room codes on the machines killed -9 when they died
}

// deployTiming is flylocal's boot and check timing, from a fault's slot.
type deployTiming struct{ boot, grace, interval time.Duration }

// timingFor makes a rolling deploy of machines take about 60% of slot:
// per machine a quarter of its share boots, a third is the check's grace.
func timingFor(slot time.Duration, machines int) deployTiming {
	per := slot * 6 / 10 / time.Duration(max(1, machines))
	return deployTiming{
		boot:     (per / 4).Round(time.Millisecond),
		grace:    (per / 3).Round(time.Millisecond),
		interval: max(20*time.Millisecond, (per / 10).Round(time.Millisecond)),
	}
}

// schedule expands the fault counts into the order they run: each kind
// once in faultOrder, then again for the kinds repeated, and so on.
func schedule(counts map[string]int) []string {
	var out []string
	for round := 0; ; round++ {
		added := false
		for _, k := range faultOrder {
			if counts[k] > round {
				out, added = append(out, k), true
			}
		}
		if !added {
			return out
		}
	}
}

// faultRunner runs faults against the fleet.
type faultRunner struct {
	f         *fleet
	pop       *population
	regions   []string
	slot      time.Duration
	dnsDown   time.Duration
	cutFor    time.Duration
	cutShare  float64
	freezeFor time.Duration
	r         *rand.Rand
}

// run runs one fault of kind and records it.
func (fr *faultRunner) run(ctx context.Context, kind string) *fault {
	ft := &fault{Kind: kind, Start: time.Now()}
	var err error
	switch kind {
	case faultDeploy:
		ft.Label, err = "rolling deploy", fr.f.deploy(ctx)
	case faultDNSDeploy:
		ft.Label, err = fmt.Sprintf("rolling deploy, DNS down %v in it", fr.dnsDown), fr.dnsInDeploy(ctx)
	case faultDNS:
		ft.Label, err = fmt.Sprintf("DNS down %v", fr.dnsDown), fr.dnsOutage(ctx)
	case faultKill:
		ft.Label, ft.Killed, err = fr.kill(ctx)
	case faultFreeze:
		ft.Label, err = fr.freeze(ctx)
	case faultRegion:
		ft.Label, err = fr.regionOutage(ctx)
	case faultCut:
		ft.Label = fr.cut()
	}
	ft.End = time.Now()
	if err != nil {
		ft.Err = err.Error()
	}
	return ft
}

func (fr *faultRunner) wait(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d): // the fault's length is the scenario
	}
}

func (fr *faultRunner) dnsOutage(ctx context.Context) error {
	if err := fr.f.post(ctx, "dns/down"); err != nil {
		return err
	}
	fr.wait(ctx, fr.dnsDown)
	return fr.f.post(context.WithoutCancel(ctx), "dns/up")
}

// dnsInDeploy starts a rolling deploy and takes the DNS down once a
// machine or two have rolled.
func (fr *faultRunner) dnsInDeploy(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- fr.f.deploy(ctx) }()
	fr.wait(ctx, fr.slot/8)
	dnsErr := fr.dnsOutage(ctx)
	if err := <-done; err != nil {
		return err
	}
	return dnsErr
}

// started is every machine flylocal lists as started and not frozen.
func (fr *faultRunner) started(ctx context.Context) ([]machineView, error) {
	ms, err := fr.f.machines(ctx)
	var out []machineView
	for _, m := range ms {
		if m.State == "started" && !m.Frozen {
			out = append(out, m)
		}
	}
	return out, err
}

// kill kill -9s two started machines of different regions at once, the
// two that hold the most rooms (a deploy gathers a region's rooms on one
// machine: a random pick often kills an empty one, which shows nothing),
// and starts them again after a quarter of the slot (Fly restarts a
// machine that crashed). It returns the codes they held.
func (fr *faultRunner) kill(ctx context.Context) (string, []string, error) {
	ms, err := fr.started(ctx)
	if err != nil {
		return "kill -9", nil, err
	}
	fr.r.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
	slices.SortStableFunc(ms, func(a, b machineView) int { return len(b.RoomList) - len(a.RoomList) })
	var victims []machineView
	for _, m := range ms {
		if len(victims) < 2 && (len(victims) == 0 || victims[0].Region != m.Region) {
			victims = append(victims, m)
		}
	}
	var codes []string
	label := "kill -9"
	for _, v := range victims {
		label += " " + v.Region
		for _, r := range v.RoomList {
			codes = append(codes, r.Code)
		}
	}
	if err := fr.each(ctx, victims, "kill"); err != nil {
		return label, codes, err
	}
	fr.wait(ctx, fr.slot/4)
	return label, codes, fr.each(context.WithoutCancel(ctx), victims, "start")
}

// each runs a machine action on every machine at once.
func (fr *faultRunner) each(ctx context.Context, ms []machineView, action string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(ms))
	for i, m := range ms {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = fr.f.act(ctx, m.ID, action) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (fr *faultRunner) freeze(ctx context.Context) (string, error) {
	ms, err := fr.started(ctx)
	if err != nil || len(ms) == 0 {
		return "freeze", fmt.Errorf("no machine to freeze: %v", err)
	}
	m := ms[fr.r.IntN(len(ms))]
	label := fmt.Sprintf("freeze %s %v", m.Region, fr.freezeFor)
	if err := fr.f.act(ctx, m.ID, "freeze"); err != nil {
		return label, err
	}
	fr.wait(ctx, fr.freezeFor)
	return label, fr.f.act(context.WithoutCancel(ctx), m.ID, "thaw")
}

// regionOutage stops every machine of one region at once (their rooms
// go abroad), waits, and starts them again.
func (fr *faultRunner) regionOutage(ctx context.Context) (string, error) {
	region := fr.regions[fr.r.IntN(len(fr.regions))]
	ms, err := fr.f.machines(ctx)
	if err != nil {
		return "region " + region + " down", err
	}
	var in []machineView
	for _, m := range ms {
		if m.Region == region {
			in = append(in, m)
		}
	}
	label := "region " + region + " down"
	if err := fr.each(ctx, in, "stop"); err != nil {
		return label, err
	}
	fr.wait(ctx, fr.slot/3)
	return label, fr.each(context.WithoutCancel(ctx), in, "start")
}

// cut cuts cutShare of the live members' networks at once for cutFor.
func (fr *faultRunner) cut() string {
	live := fr.pop.live()
	fr.r.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
	n := max(1, int(float64(len(live))*fr.cutShare))
	var wg sync.WaitGroup
	for _, m := range live[:min(n, len(live))] {
		wg.Add(1)
		go func() { defer wg.Done(); m.net.cut(fr.cutFor) }()
	}
	wg.Wait()
	return fmt.Sprintf("%d players' network cut %v", n, fr.cutFor)
}
