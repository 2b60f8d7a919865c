// Command drill plays a game night on a local Fly fleet (cmd/flylocal)
// while deploys, crashes and outages hit it, and reports what the players
// saw: per fault and in total, as text, JSON and a self-contained HTML
// page. It exits 1 when a promise of the README is broken, and says which.
//
//	go run ./cmd/drill            # 6 regions × 2 machines, ~400 players, 5 minutes
//	go run ./cmd/drill -short     # the same in about a minute (CI)
//
// See the README, "The game-night drill".
package main

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// config is every flag of the drill.
type config struct {
	regions      []string
	perRegion    int
	players      int
	rooms        int
	duration     time.Duration
	short        bool
	recoverShare float64
	msgEvery     time.Duration
	counts       map[string]int // faults by kind
	dnsDown      time.Duration
	dnsSet       bool // -dns-down given: -short leaves it as it is
	freezeFor    time.Duration
	cutFor       time.Duration
	cutShare     float64
	killLoses    bool
	dnsLoses     bool
	tickets      bool
	out          string
	seed         uint64
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	c := config{counts: map[string]int{}}
	regions := fs.String("regions", "fra,iad,syd,gru,nrt,jnb", "regions, one edge each")
	fs.IntVar(&c.perRegion, "per-region", 2, "machines per region")
	fs.IntVar(&c.players, "players", 400, "players in all, hosts included")
	fs.IntVar(&c.rooms, "rooms", 60, "rooms (3 to 10 players each)")
	fs.DurationVar(&c.duration, "duration", 5*time.Minute, "how long the night plays (faults included; the settle comes after)")
	fs.BoolVar(&c.short, "short", false, "a one-minute night for CI: -duration 1m and a DNS outage that fits its slot")
	fs.Float64Var(
		&c.recoverShare,
		"recover-share",
		0.5,
		"share of members who opt in to recovery; the rest behave like old-relay clients",
	)
	fs.DurationVar(
		&c.msgEvery,
		"msg-every",
		2*time.Second,
		"a player sends once every this on average (uniform over half to one and a half times it)",
	)
	help := map[string]string{
		faultDeploy: "rolling deploys of every machine", faultCut: "network cuts of a set of players",
		faultDNS: "DNS outages on their own", faultKill: "kill -9 of two machines (restarted after a quarter of the slot)",
		faultFreeze: "freeze and thaw of one machine", faultRegion: "outages of a whole region (both machines stopped, then started)",
		faultDNSDeploy: "rolling deploys with the DNS down in them",
	}
	counts := map[string]*int{}
	for _, k := range faultOrder {
		counts[k] = fs.Int(k, 1, "how many "+help[k]+" (0: none)")
	}
	fs.DurationVar(&c.dnsDown, "dns-down", 10*time.Second, "how long each DNS outage lasts")
	fs.DurationVar(&c.freezeFor, "freeze-for", 5*time.Second, "how long a machine stays frozen")
	fs.DurationVar(&c.cutFor, "cut-for", 5*time.Second, "how long a cut player's network is down")
	fs.Float64Var(&c.cutShare, "cut-share", 0.1, "share of the live members whose network is cut")
	fs.BoolVar(&c.killLoses, "kill-loses-rooms", false, "allow a kill -9 to lose that machine's rooms (as without tickets); "+
		"false (the README's promise) holds every room with a member that holds its tickets to no loss")
	fs.BoolVar(&c.dnsLoses, "dns-deploy-loses-rooms", true, "a known limit (README): a machine that stops while the DNS is down "+
		"finds no sibling, and its rooms are lost; false holds a deploy in a DNS outage to no loss")
	fs.BoolVar(
		&c.tickets,
		"tickets",
		true,
		"members who opt in to recovery also hold crash-proof room tickets (the Go client's default)",
	)
	fs.StringVar(&c.out, "out", "bin/drill", "directory for report.html, report.json and cluster.log")
	fs.Uint64Var(&c.seed, "seed", 0, "random seed (0: from the clock); the same seed lays out the same night")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.regions = strings.Split(*regions, ",")
	for k, v := range counts {
		c.counts[k] = *v
	}
	if c.short {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["duration"] {
			c.duration = time.Minute
		}
		c.dnsSet = set["dns-down"]
	}
	return c, c.check()
}

func (c *config) check() error {
	var errs []error
	if len(c.regions) < 2 || c.perRegion < 1 || len(c.regions)*c.perRegion > 60 {
		errs = append(errs, errors.New("-regions: at least two; at most 60 machines in all"))
	}
	if c.players < 3 || c.players > 5000 || c.rooms < 1 {
		errs = append(errs, errors.New("-players: 3 to 5000, and -rooms at least 1"))
	}
	if c.duration < 30*time.Second || c.duration > 2*time.Hour {
		errs = append(errs, errors.New("-duration: 30s to 2h"))
	}
	if c.recoverShare < 0 || c.recoverShare > 1 || c.cutShare <= 0 || c.cutShare > 1 {
		errs = append(errs, errors.New("-recover-share and -cut-share: 0 to 1"))
	}
	if c.msgEvery < 100*time.Millisecond {
		errs = append(errs, errors.New("-msg-every: at least 100ms"))
	}
	for k, n := range c.counts {
		if n < 0 || n > 20 {
			errs = append(errs, fmt.Errorf("-%s: 0 to 20", k))
		}
	}
	return errors.Join(errs...)
}

func main() {
	c, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "drill:", err)
		os.Exit(2)
	}
	broken, err := run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "drill:", err)
		os.Exit(2)
	}
	if len(broken) > 0 {
		fmt.Println("drill: BROKEN PROMISES")
		for _, b := range broken {
			fmt.Println("  -", b)
		}
		os.Exit(1)
	}
	fmt.Println("drill: every promise held")
}

func run(c config) ([]string, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	if !filepath.IsAbs(c.out) {
		c.out = filepath.Join(root, c.out)
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return nil, err
	}
	seed := c.seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	r := rand.New(rand.NewPCG(seed, seed>>1))
	n := &night{c: c, r: r, seed: seed, root: root}
	return n.play()
}
