package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// settleFor bounds the wait, once play stops, for every member to be
// back and on its room's final state: a room wait (10 s) and a backoff.
const settleFor = 30 * time.Second

// night is one run of the drill.
type night struct {
	c    config
	r    *rand.Rand
	seed uint64
	root string

	env    flyEnv // fly.toml's
	slot   time.Duration
	timing deployTiming
	faults []*fault
	start  time.Time
	end    time.Time
}

func (n *night) play() ([]string, error) {
	kinds := schedule(n.c.counts)
	warm := n.c.duration / 12
	n.slot = (n.c.duration - warm) / time.Duration(max(1, len(kinds)))
	machines := len(n.c.regions) * n.c.perRegion
	n.timing = timingFor(n.slot, machines)
	if n.c.short && !n.c.dnsSet && n.c.dnsDown > n.slot*7/10 {
		n.c.dnsDown = (n.slot * 7 / 10).Round(time.Second)
	}
	env, err := readFlyToml(filepath.Join(n.root, "fly.toml"))
	if err != nil {
		return nil, err
	}
	n.env = env
	bins, err := os.MkdirTemp("", "drill")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(bins)
	server, flylocal, err := buildBinaries(n.root, bins)
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(n.c.out, "cluster.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Printf("drill: %d regions × %d machines, %d players in ~%d rooms, %v (slot %v a fault; deploy timing boot %v, "+
		"grace %v, interval %v), seed %d; fleet log in %s\n", len(n.c.regions), n.c.perRegion, n.c.players, n.c.rooms,
		n.c.duration, n.slot.Round(time.Millisecond), n.timing.boot, n.timing.grace, n.timing.interval, n.seed, logf.Name())
	f, err := startFleet(fleetSpec{flylocal: flylocal, server: server, regions: n.c.regions, perRegion: n.c.perRegion,
		env: env, timing: n.timing, killTimeout: killTimeout(env), log: logf})
	if err != nil {
		return nil, err
	}
	defer f.stop()
	pop, err := newPopulation(f, n.c.regions, roomSizes(n.c.players, n.c.rooms, n.r), n.c.recoverShare, n.c.tickets, n.r)
	if err != nil {
		return nil, err
	}
	defer pop.closeAll()
	return n.run(f, pop, kinds, warm)
}

func (n *night) run(f *fleet, pop *population, kinds []string, warm time.Duration) ([]string, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &sampler{f: f, pop: pop}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampled sync.WaitGroup
	sampled.Go(func() { s.run(sampleCtx) })
	n.start = time.Now()
	if err := pop.join(ctx, warm/2); err != nil {
		stopSampling()
		return nil, err
	}
	fmt.Printf("drill: %d of %d members in %d rooms after %v\n", len(pop.live()), len(pop.members), len(pop.rooms),
		time.Since(n.start).Round(time.Millisecond))
	playCtx, stopPlay := context.WithCancel(ctx)
	var playing sync.WaitGroup
	for _, m := range pop.live() {
		playing.Go(func() { m.play(playCtx, n.c.msgEvery) })
	}
	n.faultsUntil(ctx, f, pop, kinds, n.start.Add(n.c.duration))
	stopPlay()
	playing.Wait()
	n.settle(ctx, pop)
	n.end = time.Now()
	held, err := n.held(ctx, f, pop)
	if err != nil {
		stopSampling()
		return nil, err
	}
	stopSampling()
	sampled.Wait()
	samples, use := s.result()
	pop.closeAll()
	a := analyse(pop, n.faults, held, s.seen(), samples, n.end, n.c.killLoses, n.c.dnsLoses)
	rep := &report{Config: n.describe(), Faults: n.faults, Slots: append([]*figures{a.before}, a.slots...),
		Total: a.total, Machines: use, Samples: samples, Regions: n.c.regions, Start: n.start, End: n.end,
		Rejoins: a.total.rejoinSet, LostRooms: lostRooms(pop, held), EndedOutside: a.endedOut, LostOutside: a.lostOut}
	rep.Broken = promises(a.total, n.c.killLoses, n.c.dnsLoses)
	rep.print(os.Stdout)
	for _, e := range a.endedOut {
		fmt.Println("drill: ended for good:", e)
	}
	return rep.Broken, rep.write(n.c.out)
}

// faultsUntil runs the schedule, one fault at the start of each slot,
// then lets the night play on until its end.
func (n *night) faultsUntil(ctx context.Context, f *fleet, pop *population, kinds []string, end time.Time) {
	fr := &faultRunner{
		f:         f,
		pop:       pop,
		regions:   n.c.regions,
		slot:      n.slot,
		dnsDown:   n.c.dnsDown,
		cutFor:    min(n.c.cutFor, n.slot/2).Round(100 * time.Millisecond),
		cutShare:  n.c.cutShare,
		freezeFor: min(n.c.freezeFor, n.slot/2).Round(100 * time.Millisecond),
		r:         n.r,
	}
	warm := n.c.duration / 12
	for i, kind := range kinds {
		at := n.start.Add(warm + time.Duration(i)*n.slot)
		time.Sleep(time.Until(at)) // the schedule is the scenario
		ft := fr.run(ctx, kind)
		n.faults = append(n.faults, ft)
		fmt.Printf("drill: %6.1fs %-44s %v%s\n", ft.Start.Sub(n.start).Seconds(), ft.Label,
			ft.End.Sub(ft.Start).Round(time.Millisecond), errNote(ft.Err))
	}
	time.Sleep(time.Until(end)) // the night plays on to its end
}

// killTimeout is how long a stopping machine may drain before SIGKILL:
// fly.toml's kill_timeout (300 s) would let one machine whose rooms
// cannot move hold a deploy for five minutes, longer than the night, so
// the drill gives it the hand-off's own bound (HANDOFF_TIMEOUT, which the
// README keeps under kill_timeout) and 5 s more.
func killTimeout(env flyEnv) time.Duration {
	d, err := time.ParseDuration(env.Env["HANDOFF_TIMEOUT"])
	if err != nil || d <= 0 {
		d = 4 * time.Second // the server's default
	}
	if env.KillTimeout > 0 {
		d = min(d, time.Duration(env.KillTimeout)*time.Second)
	}
	return d + 5*time.Second
}

// held asks, through each room's home edge, whether it still exists. A
// lookup that fails three times is an error, not a lost room.
func (n *night) held(ctx context.Context, f *fleet, pop *population) (map[*room]bool, error) {
	held := map[*room]bool{}
	for i, rm := range pop.rooms {
		if rm.code == "" {
			continue
		}
		src := net.IPv4(127, 251, byte(i/250), byte(i%250+1))
		var err error
		for try := 0; try < 3; try++ {
			if held[rm], err = f.roomHeld(ctx, f.Edges[rm.home], rm.code, src); err == nil {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("room %s: %w", rm.code, err)
		}
	}
	return held, nil
}

func errNote(e string) string {
	if e == "" {
		return ""
	}
	return " (error: " + e + ")"
}

// settle sets every room's final state and waits, at most settleFor, for
// every member still playing to be connected and on it.
func (n *night) settle(ctx context.Context, pop *population) {
	sctx, cancel := context.WithTimeout(ctx, settleFor)
	defer cancel()
	var wg sync.WaitGroup
	for _, rm := range pop.rooms {
		if h := rm.members[0]; h.c != nil && !h.hasEnded() {
			wg.Go(func() { h.setFinal(sctx, finalState) })
		}
	}
	wg.Wait()
	for sctx.Err() == nil {
		settled := true
		for _, m := range pop.live() {
			if !m.isConnected() || (!m.host && m.room.members[0].finalSet && m.latestState() != finalState) {
				settled = false
				break
			}
		}
		if settled {
			return
		}
		select {
		case <-sctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (n *night) describe() map[string]any {
	return map[string]any{
		"regions": n.c.regions, "per_region": n.c.perRegion, "players": n.c.players, "rooms": n.c.rooms,
		"duration": n.c.duration.String(), "short": n.c.short, "recover_share": n.c.recoverShare,
		"msg_every": n.c.msgEvery.String(), "faults": n.c.counts, "dns_down": n.c.dnsDown.String(),
		"slot": n.slot.Round(time.Millisecond).String(), "boot_delay": n.timing.boot.String(),
		"health_grace": n.timing.grace.String(), "health_interval": n.timing.interval.String(),
		"kill_timeout": killTimeout(
			n.env,
		).String(),
		"kill_loses_rooms": n.c.killLoses, "dns_deploy_loses_rooms": n.c.dnsLoses, "seed": n.seed, "cpus": cpuModel(),
	}
}

// cpuModel names the machine's CPU and its count, for the report.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	model, count := "unknown", 0
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			model = strings.TrimSpace(v)
			count++
		}
	}
	return fmt.Sprintf("%d × %s", count, model)
}
