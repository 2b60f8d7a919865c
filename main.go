// Command party-sockets is a WebSocket room relay for party games.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/party-sockets/party-sockets/internal/budget"
	"github.com/party-sockets/party-sockets/internal/webhook"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/server"
	"github.com/party-sockets/party-sockets/tokens"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	if len(os.Args) > 1 && os.Args[1] == "token" {
		if err := runToken(os.Args[2:], os.Getenv, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "party-sockets token:", err)
			os.Exit(2)
		}
		return
	}
	if err := run(os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "party-sockets:", err)
		os.Exit(1)
	}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func run(getenv func(string) string) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("bad configuration:\n%w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	slog.SetDefault(log)
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}

	limit := cfg.MemoryBudget
	if limit == 0 {
		limit = budget.DefaultLimit()
	}
	mem := budget.New(limit)
	hooks, err := startWebhooks(cfg)
	if err != nil {
		return err
	}
	rc := cfg.Rooms
	rc.Events, rc.Budget = roomEvents(hooks, cfg, log), mem
	mgr := rooms.NewManager(rc)
	// Catch the signals before serving anything: a stop that arrives right
	// after start must drain, not kill (the default action).
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	ln, err := net.Listen("tcp", cfg.addr())
	if err != nil {
		return err
	}
	sc := cfg.Server
	prober := sc.Prober // nil off Fly
	if prober != nil {
		prober.Port = ln.Addr().(*net.TCPAddr).Port
	}
	sc.Budget, sc.Tokens, sc.Webhooks = mem, verifier(cfg), webhookStats(hooks)
	sc.Version, sc.Logger = buildVersion(), log
	reg := prometheus.NewRegistry()
	srv := server.New(sc, mgr, reg, reg)

	hs := srv.HTTPServer()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	if prober != nil {
		// Where did a hand-off take this region's rooms while this machine
		// was away? Asked once now (signed; only with hand-off on and a
		// secret), and again rarely (routing/away.go).
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			prober.Learn(ctx, cfg.region())
		}()
	}
	if cfg.Handoff && prober != nil {
		// Keep the siblings' addresses fresh, so a stop during a DNS
		// outage still finds them (server/warm.go).
		warmCtx, stopWarm := context.WithCancel(context.Background())
		defer stopWarm()
		go srv.WarmSiblings(warmCtx)
	}
	if cfg.DebugAddr != "" {
		go func() {
			// net/http/pprof registers on http.DefaultServeMux, served only here.
			log.Info("pprof listening", "addr", cfg.DebugAddr)
			if err := http.ListenAndServe(cfg.DebugAddr, http.DefaultServeMux); err != nil {
				log.Error("pprof listener", "error", err)
			}
		}()
	}
	log.Info("listening", "addr", ln.Addr().String(), "instance", cfg.self(), "region", cfg.region(), "version", buildVersion(),
		"memory_budget", limit)

	select {
	case err := <-served:
		return err
	case s := <-sig:
		log.Info("draining: no new rooms; exiting when the last room ends", "signal", s.String(), "rooms", srv.Rooms())
		srv.Drain()
	}
	var again func() // a hand-off of what is left, while the rooms drain
	if cfg.Handoff && prober != nil && srv.Rooms() > 0 {
		handOff := func() {
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), cfg.HandoffTimeout)
			moved, left := srv.HandOff(ctx)
			cancel()
			log.Info("hand-off done", "moved", moved, "left", left, "ms", time.Since(start).Milliseconds())
		}
		handOff()
		again = handOff
	}
	waitEmpty(srv, sig, log, again)
	// Close what is left (sockets that never joined) with 1012, and let
	// every close frame reach its client before the process ends.
	srv.CloseAll()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	srv.WaitClosed(ctx)
	cancel()
	if hooks != nil {
		// The last events (room.moved, room.closed) go out before exit.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if left := hooks.Flush(ctx); left > 0 {
			log.Warn("exiting with webhook events undelivered", "events", left)
		}
		cancel()
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	log.Info("drained, exiting")
	return nil
}

// verifier checks create tokens when a secret or key is configured, and
// remembers the ones this machine has spent.
func verifier(cfg config) *tokens.Verifier {
	v := &tokens.Verifier{Secret: []byte(cfg.CreateTokenSecret), Audience: cfg.CreateTokenAudience, Instance: cfg.self()}
	if cfg.CreateTokenPublicKey != "" {
		v.PublicKey, _ = tokens.ParsePublicKey(cfg.CreateTokenPublicKey) // checked by loadConfig
	}
	return v
}

// startWebhooks starts the sender when WEBHOOK_URL is set; nil otherwise.
func startWebhooks(cfg config) (*webhook.Sender, error) {
	if cfg.WebhookURL == "" {
		return nil, nil
	}
	s, err := webhook.New(cfg.WebhookURL, cfg.WebhookSecret, webhook.Options{})
	if err != nil {
		return nil, err
	}
	go s.Run(context.Background())
	return s, nil
}

// webhookStats is hooks as metrics see it: nil (not a nil pointer) when off.
func webhookStats(hooks *webhook.Sender) server.WebhookStats {
	if hooks == nil {
		return nil
	}
	return hooks
}

// eventData is a webhook's data: never a clientId.
type eventData struct {
	Room     string `json:"room"`
	Instance string `json:"instance"`
	Region   string `json:"region"`
	Index    *int   `json:"index,omitempty"`
	Reason   string `json:"reason,omitempty"`
	To       string `json:"to,omitempty"` // room.moved: the machine that took it
}

// roomEvents logs how every room ends (the server logs its creation and
// its hand-off), and turns every event into a webhook when they are on.
func roomEvents(hooks *webhook.Sender, cfg config, log *slog.Logger) func(rooms.Event) {
	return func(e rooms.Event) {
		if e.Type == rooms.EventRoomClosed {
			log.Info("room ended", "room", e.Room, "reason", e.Reason)
		}
		if hooks == nil {
			return
		}
		d := eventData{Room: e.Room, Instance: cfg.self(), Region: cfg.region(), Reason: e.Reason, To: e.To}
		if e.Type == rooms.EventPlayerJoined || e.Type == rooms.EventPlayerLeft || e.Type == rooms.EventRoomRestored {
			d.Index = &e.Index
		}
		hooks.Send(e.Room, e.Owner, e.Type, d)
	}
}

// waitEmpty returns once no room is left. A second signal closes every
// session with 1012 so clients reconnect elsewhere at once.
//
// again, when not nil, hands off what is left every handOffAgain: rooms
// that found no sibling (the DNS down through the whole HANDOFF_TIMEOUT,
// siblings not yet started) would otherwise drain on a machine the proxy
// no longer routes to, their members' rejoins answered Room not found;
// once a sibling answers, they move and their members follow.
func waitEmpty(srv drainer, sig <-chan os.Signal, log *slog.Logger, again func()) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	next := time.Now().Add(handOffAgain)
	for srv.Rooms() > 0 {
		select {
		case s := <-sig:
			log.Info("second signal: closing every session", "signal", s.String())
			srv.CloseAll()
		case now := <-tick.C:
			if again != nil && now.After(next) {
				again()
				next = time.Now().Add(handOffAgain)
			}
		}
	}
}

// handOffAgain is how often a draining machine tries again to hand off
// the rooms it still holds.
var handOffAgain = 2 * time.Second

// drainer is what waitEmpty needs of the server.
type drainer interface {
	Rooms() int
	CloseAll()
}
