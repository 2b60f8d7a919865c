package main

import (
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/party-sockets/party-sockets/internal/webhook"
	"github.com/party-sockets/party-sockets/regions"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/routing"
	"github.com/party-sockets/party-sockets/server"
)

// config is everything main reads from the environment, read once: the
// packages' own configs, filled by the table, and what only main uses.
type config struct {
	// Filled by the table and share. run adds what is made at start: the
	// budget, tokens, webhooks, version, logger, room events and the
	// prober's port.
	Server server.Config // Server.Prober: the peer prober, nil off Fly
	Rooms  rooms.Config

	Port         int
	Host         string
	InternalDNS  string // resolver for peer discovery, on Fly
	LogLevel     slog.Level
	DebugAddr    string  // pprof listener, off when empty
	MemoryBudget int64   // bytes; 0: a quarter of GOMEMLIMIT or of the machine's memory
	ProbesPerSec float64 // the prober's rounds, and a peer's unsigned lookups; 0: unbounded

	// The game's backend (docs/backend.md).
	CreateTokenSecret    string
	CreateTokenPublicKey string
	CreateTokenAudience  string // a token's aud must name it, when set
	WebhookURL           string
	WebhookSecret        string

	// Hand-off on stop (docs/deploys.md).
	Handoff        bool          // HANDOFF=off turns it off; so does a Fly app without HANDOFF_SECRET
	HandoffTimeout time.Duration // the whole hand-off, within kill_timeout

	// Warnings are said once at start: settings that turned something off.
	Warnings []string
}

// Defaults that depend on another setting, or that a check needs.
const (
	flyDashboard      = "https://fly-metrics.net/d/fly-app/fly-app?var-app="
	flyDNS            = "[fdaa::3]:53"
	maxHandoffTimeout = 5 * time.Minute // Fly's kill_timeout ends a machine by then
	unboundedRounds   = 1e9             // PROBES_PER_SEC=0: no bound the prober would reach
)

// settings is the table: every variable the server reads, the field it
// fills, its default and its bounds, in the README's order. A default is
// written here once: where a package has its own for a zero value, the
// row uses that package's constant (config_table_test.go holds them
// equal).
func (c *config) settings() []setting {
	s, r := &c.Server, &c.Rooms
	return []setting{
		count("PORT", &c.Port, 3000, 0, 65535).wanting("want a TCP port number (0-65535)"),
		text("HOST", &c.Host, 0),
		text("INSTANCE_ID", &s.Instance, 0).or("FLY_MACHINE_ID"),
		text("REGION", &s.Region, 0).or("FLY_REGION"),
		text("FLY_APP_NAME", &s.AppName, 0),
		absURL("DASHBOARD_URL", &s.DashboardURL),         // on Fly: flyDashboard
		hostPort("INTERNAL_DNS", &c.InternalDNS, flyDNS), // on Fly: flyDNS
		prefixes("TRUSTED_PROXIES", &s.TrustedProxies),
		duration("HOST_GRACE", &r.HostGrace, 2*time.Minute, 0),
		byteCount("MAX_FRAME_BYTES", &s.MaxFrameBytes, server.DefaultMaxFrameBytes, 1024, 16<<20),
		list("ALLOWED_ORIGINS", &s.AllowedOrigins),
		logLevel("LOG_LEVEL", &c.LogLevel),
		hostPort("DEBUG_ADDR", &c.DebugAddr, "127.0.0.1:6060"),

		// Limits (docs/limits.md).
		rate("MSG_RATE", &s.MsgRate, 100, 1e6, "messages per second"),
		count("MSG_BURST", &s.MsgBurst, 200, 1, 1<<20),
		count("MAX_CONNS_PER_IP", &s.MaxConnsPerIP, 200, 0, 1<<30),
		count("JOIN_MISSES_PER_MIN", &s.JoinMissesPerMin, 60, 0, 1<<30),
		count("MAX_ROOMS", &r.MaxRooms, 20000, 0, 1<<30),
		count("MAX_ROOM_MEMBERS", &r.MaxMembers, rooms.DefaultMaxMembers, 1, 100000),
		count("SEND_QUEUE_FRAMES", &s.QueueFrames, server.DefaultQueueFrames, 1, 1<<20),
		count("SEND_QUEUE_BYTES", &s.QueueBytes, server.DefaultQueueBytes, 1024, 1<<30),
		byteCount("MEMORY_BUDGET", &c.MemoryBudget, 0, 1<<20, 1<<40),
		duration("WRITE_TIMEOUT", &s.WriteTimeout, server.DefaultWriteTimeout, 1),
		duration("HANDSHAKE_TIMEOUT", &s.HandshakeTimeout, server.DefaultHandshakeTimeout, 1),
		count("MAX_HEADER_BYTES", &s.MaxHeaderBytes, server.DefaultMaxHeaderBytes, 1024, 1<<20),
		count("MAX_PENDING_CONNS", &s.MaxPendingConns, server.DefaultMaxPendingConns, 1, 1<<20),
		count("MAX_CONNS", &s.MaxConns, 0, 0, 1<<24), // 0: server.DefaultMaxConns of the budget
		duration("JOIN_TIMEOUT", &s.JoinTimeout, server.DefaultJoinTimeout, 1),
		duration("MESSAGE_TIMEOUT", &s.MessageTimeout, server.DefaultMessageTimeout, 1),
		rate("FRAMES_PER_SEC", &s.FramesPerSec, 200, 1e7, "frames per second"),
		rate("BYTES_PER_SEC", &s.BytesPerSec, 1<<20, 1<<34, "bytes per second"),
		rate("ADDR_BYTES_PER_SEC", &s.AddrBytesPerSec, 4<<20, 1<<34, "bytes per second"),
		rate("UPGRADES_PER_SEC", &s.UpgradesPerSec, 10, 1e6, "new WebSockets per second"),
		count("UPGRADE_BURST", &s.UpgradeBurst, 60, 1, 1<<20),
		rate("CREATES_PER_MIN", &s.CreatesPerMin, 30, 1e7, "rooms per minute"),
		count("CREATE_BURST", &s.CreateBurst, 30, 1, 1<<20),
		count("MACHINE_MISSES_PER_MIN", &s.MachineMissesPerMin, 1200, 0, 1<<30),
		rate("PROBES_PER_SEC", &c.ProbesPerSec, routing.DefaultRoundsPerSec, 1e5, "probe rounds per second"),
		rate("ADDR_PROBES_PER_MIN", &s.AddrProbesPerMin, 10, 1e7, "probe rounds per minute"),
		count("ADDR_PROBE_BURST", &s.AddrProbeBurst, 60, 1, 1<<20),

		// Message recovery (docs/protocol.md "Catch-up after a blip").
		count("RECOVER_FRAMES", &r.RecoverFrames, rooms.DefaultRecoverFrames, 1, 1<<16),
		count("RECOVER_BYTES", &r.RecoverBytes, rooms.DefaultRecoverBytes, 1024, 64<<20),
		duration("RECOVER_AGE", &r.RecoverAge, 0, 1), // 0: the host grace (rooms)
		// A room must fit in a hand-off (rooms.DefaultRecoverRoomBytes).
		count("RECOVER_ROOM_BYTES", &r.RecoverRoomBytes, rooms.DefaultRecoverRoomBytes, 64<<10, 4<<20),

		// The game's backend.
		secret("CREATE_TOKEN_SECRET", &c.CreateTokenSecret, 32),
		publicKey("CREATE_TOKEN_PUBLIC_KEY", &c.CreateTokenPublicKey),
		text("CREATE_TOKEN_AUDIENCE", &c.CreateTokenAudience, 256),
		secret("SERVER_API_KEY", &s.APIKey, 32),
		hookURL("WEBHOOK_URL", &c.WebhookURL),
		secret("WEBHOOK_SECRET", &c.WebhookSecret, 0), // checked with WEBHOOK_URL

		// Hand-off, and the checks of what we trust of Fly.
		onOff("HANDOFF", &c.Handoff, true),
		secret("HANDOFF_SECRET", &s.HandoffSecret, 32),
		onOff("TRUST_CHECK", &s.TrustCheck, false),
		duration("HANDOFF_TIMEOUT", &c.HandoffTimeout, 4*time.Second, 1), // within Fly's default kill_timeout of 5 s
	}
}

// loadConfig reads the environment through getenv and reports every bad
// value at once, one line each, naming its variable.
func loadConfig(getenv func(string) string) (config, error) {
	var c config
	var rep report
	for _, s := range c.settings() {
		s.reset()
		v := getenv(s.env)
		if v == "" && s.alt != "" {
			v = getenv(s.alt)
		}
		if v == "" {
			continue
		}
		if err := s.set(v); err != nil {
			rep.bad(s.env, s.show(v), err.Error())
		}
	}
	c.check(getenv, &rep)
	c.share()
	return c, rep.err()
}

// check is what one row cannot say: the defaults that depend on Fly, and
// the settings that need another.
func (c *config) check(getenv func(string) string, rep *report) {
	s := &c.Server
	if s.AppName != "" {
		s.DashboardURL = or(s.DashboardURL, flyDashboard+url.QueryEscape(s.AppName))
		c.InternalDNS = or(c.InternalDNS, flyDNS)
	}
	if v := c.CreateTokenAudience; v != "" && c.CreateTokenSecret == "" && c.CreateTokenPublicKey == "" {
		// An audience alone checks nothing: every create is open.
		rep.bad("CREATE_TOKEN_AUDIENCE", v,
			"set CREATE_TOKEN_SECRET or CREATE_TOKEN_PUBLIC_KEY too: without one, creates need no token")
	}
	if c.HandoffTimeout > maxHandoffTimeout {
		rep.bad("HANDOFF_TIMEOUT", getenv("HANDOFF_TIMEOUT"), "want at most 5m: Fly's kill_timeout ends a machine by then")
	}
	if s.TrustCheck && s.HandoffSecret == "" {
		rep.bad("TRUST_CHECK", getenv("TRUST_CHECK"), "needs HANDOFF_SECRET: its calls are signed with a key derived from it")
	}
	if getenv("WEBHOOK_URL") != "" {
		if _, err := webhook.ParseSecret(c.WebhookSecret); err != nil {
			rep.bad("WEBHOOK_SECRET", hidden, err.Error())
		}
	}
	if len(s.TrustedProxies) > 0 && s.AppName == "" {
		c.Warnings = append(c.Warnings, "TRUSTED_PROXIES is set but FLY_APP_NAME is not: off Fly no proxy header "+
			"is read, so it changes nothing")
	}
	if c.Handoff && s.AppName != "" && s.HandoffSecret == "" {
		// Siblings prove themselves with the secret only: without it none
		// would take a room. An app upgraded without it still starts.
		c.Handoff = false
		c.Warnings = append(c.Warnings, "hand-off is off: HANDOFF_SECRET is not set, so rooms drain on stop "+
			"instead of moving to a sibling (fly secrets set HANDOFF_SECRET=$(openssl rand -hex 32) turns it on)")
	}
}

// share hands the values that more than one package uses to each, and
// makes the prober on Fly.
func (c *config) share() {
	s := &c.Server
	c.Rooms.Instance, c.Rooms.Region = s.Instance, s.Region
	c.Rooms.Codes = regions.NewGenerator(s.Region, nil)
	rounds := c.ProbesPerSec
	if rounds == 0 {
		rounds = unboundedRounds
	}
	s.PeerLookupsPerSec = rounds // a sibling probes at most this fast
	if s.AppName != "" {
		s.Prober = &routing.Prober{
			App:          s.AppName,
			Self:         c.self(),
			Resolver:     &routing.CachingResolver{Inner: routing.DNSResolver{Server: c.InternalDNS}},
			RoundsPerSec: rounds,
			Wide:         c.Handoff, // rooms may be handed out of their region
		}
	}
}

// self is this machine's id in what is ours (logs, webhooks, tokens,
// siblings): rooms.LocalID off Fly. On the wire it is empty there.
func (c config) self() string { return or(c.Server.Instance, rooms.LocalID) }

// region is this machine's region in what is ours, as self.
func (c config) region() string { return or(c.Server.Region, rooms.LocalID) }

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// addr is the listen address.
func (c config) addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }
