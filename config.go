package main

import (
	"errors"

	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/party-sockets/party-sockets/internal/webhook"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/tokens"
)

// config is everything main reads from the environment, read once.
type config struct {
	Port           int
	Host           string
	Instance       string
	Region         string
	AppName        string
	DashboardURL   string
	InternalDNS    string
	HostGrace      time.Duration
	MaxFrameBytes  int64
	AllowedOrigins []string
	LogLevel       slog.Level
	DebugAddr      string // pprof listener, off when empty

	// Limits (README "Limits and abuse").
	MsgRate          float64
	MsgBurst         int
	MaxConnsPerIP    int
	JoinMissesPerMin int
	MaxRooms         int
	MaxRoomMembers   int
	MaxHeaderBytes   int
	MaxPendingConns  int
	MemoryBudget     int64 // bytes; 0: a quarter of GOMEMLIMIT or of the machine's memory
	JoinTimeout      time.Duration
	MessageTimeout   time.Duration

	RecoverFrames int
	RecoverBytes  int
	RecoverRoom   int           // bytes of a room's windows together
	RecoverAge    time.Duration // 0: HOST_GRACE

	// The game's backend (README "The game's backend in control").
	CreateTokenSecret    string
	CreateTokenPublicKey string
	CreateTokenAudience  string // a token's aud must name it, when set
	ServerAPIKey         string
	WebhookURL           string
	WebhookSecret        string

	FramesPerSec        float64
	BytesPerSec         float64
	UpgradesPerSec      float64
	UpgradeBurst        int
	CreatesPerMin       float64
	CreateBurst         int
	MachineMissesPerMin int
	ProbesPerSec        float64
	AddrProbesPerMin    float64
	AddrProbeBurst      int
	QueueFrames         int
	QueueBytes          int
	WriteTimeout        time.Duration
	HandshakeTimeout    time.Duration

	// Hand-off on stop (README "Deploys").
	Handoff        bool          // HANDOFF=off turns it off; so does a Fly app without HANDOFF_SECRET
	HandoffSecret  string        // HANDOFF_SECRET
	HandoffTimeout time.Duration // HANDOFF_TIMEOUT: the whole hand-off, within kill_timeout

	TrustCheck bool // TRUST_CHECK=on: the operator's trust check (README "What we trust of Fly, checked")
	// Warnings are said once at start: settings that turned something off.
	Warnings []string
}

// loadConfig reads the environment through getenv and reports every bad
// value at once, each naming its variable.
func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		Port:          3000,
		Host:          getenv("HOST"),
		Instance:      or(getenv("INSTANCE_ID"), getenv("FLY_MACHINE_ID")),
		Region:        or(getenv("REGION"), getenv("FLY_REGION")),
		AppName:       getenv("FLY_APP_NAME"),
		DashboardURL:  getenv("DASHBOARD_URL"),
		InternalDNS:   getenv("INTERNAL_DNS"),
		HostGrace:     2 * time.Minute,
		MaxFrameBytes: 64 << 10,

		MsgRate:          100,
		MsgBurst:         200,
		MaxConnsPerIP:    200,
		JoinMissesPerMin: 60,
		MaxRooms:         20000,
		MaxRoomMembers:   1000,
		MaxHeaderBytes:   8 << 10,
		MaxPendingConns:  1000,
		JoinTimeout:      30 * time.Second,
		MessageTimeout:   10 * time.Second,

		RecoverFrames: 256,
		RecoverBytes:  256 << 10,
		RecoverRoom:   rooms.DefaultRecoverRoomBytes,

		FramesPerSec:        200,
		BytesPerSec:         1 << 20,
		UpgradesPerSec:      10,
		UpgradeBurst:        60,
		CreatesPerMin:       30,
		CreateBurst:         30,
		MachineMissesPerMin: 1200,
		ProbesPerSec:        20,
		AddrProbesPerMin:    10,
		AddrProbeBurst:      60,
		QueueFrames:         4096,
		QueueBytes:          2 << 20,
		WriteTimeout:        10 * time.Second,
		HandshakeTimeout:    10 * time.Second,

		Handoff:        true,
		HandoffTimeout: 4 * time.Second, // within Fly's default kill_timeout of 5 s
	}
	var errs []error
	bad := func(name, value, why string) {
		errs = append(errs, fmt.Errorf("%s=%q: %s", name, value, why))
	}
	if v := getenv("PORT"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 || p > 65535 {
			bad("PORT", v, "want a TCP port number (0-65535)")
		}
		c.Port = p
	}
	if c.AppName != "" {
		if c.DashboardURL == "" {
			c.DashboardURL = "https://fly-metrics.net/d/fly-app/fly-app?var-app=" + url.QueryEscape(c.AppName)
		}
		if c.InternalDNS == "" {
			c.InternalDNS = "[fdaa::3]:53"
		}
	}
	if v := c.DashboardURL; v != "" {
		if u, err := url.Parse(v); err != nil || u.Scheme == "" || u.Host == "" {
			bad("DASHBOARD_URL", v, "want an absolute URL")
		}
	}
	if v := c.InternalDNS; v != "" {
		if _, _, err := net.SplitHostPort(v); err != nil {
			bad("INTERNAL_DNS", v, "want host:port, e.g. [fdaa::3]:53")
		}
	}
	if v := getenv("HOST_GRACE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			bad("HOST_GRACE", v, "want a non-negative Go duration, e.g. 2m or 30s")
		}
		c.HostGrace = d
	}
	if v := getenv("MAX_FRAME_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 || n > 16<<20 {
			bad("MAX_FRAME_BYTES", v, "want a byte count from 1024 to 16777216")
		}
		c.MaxFrameBytes = n
	}
	ints := []struct {
		name   string
		dst    *int
		lo, hi int
	}{
		{"MSG_BURST", &c.MsgBurst, 1, 1 << 20},
		{"MAX_CONNS_PER_IP", &c.MaxConnsPerIP, 0, 1 << 30},
		{"JOIN_MISSES_PER_MIN", &c.JoinMissesPerMin, 0, 1 << 30},
		{"MAX_ROOMS", &c.MaxRooms, 0, 1 << 30},
		{"MAX_ROOM_MEMBERS", &c.MaxRoomMembers, 1, 100000},
		{"MAX_HEADER_BYTES", &c.MaxHeaderBytes, 1024, 1 << 20},
		{"MAX_PENDING_CONNS", &c.MaxPendingConns, 1, 1 << 20},
		{"UPGRADE_BURST", &c.UpgradeBurst, 1, 1 << 20},
		{"RECOVER_FRAMES", &c.RecoverFrames, 1, 1 << 16},
		{"RECOVER_BYTES", &c.RecoverBytes, 1024, 64 << 20},
		{"RECOVER_ROOM_BYTES", &c.RecoverRoom, 64 << 10, 4 << 20}, // a room must fit in a hand-off (rooms.DefaultRecoverRoomBytes)
		{"CREATE_BURST", &c.CreateBurst, 1, 1 << 20},
		{"MACHINE_MISSES_PER_MIN", &c.MachineMissesPerMin, 0, 1 << 30},
		{"ADDR_PROBE_BURST", &c.AddrProbeBurst, 1, 1 << 20},
		{"SEND_QUEUE_FRAMES", &c.QueueFrames, 1, 1 << 20},
		{"SEND_QUEUE_BYTES", &c.QueueBytes, 1024, 1 << 30},
	}
	for _, in := range ints {
		if v := getenv(in.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < in.lo || n > in.hi {
				bad(in.name, v, fmt.Sprintf("want a whole number from %d to %d", in.lo, in.hi))
			}
			*in.dst = n
		}
	}
	rates := []struct {
		name, unit string
		dst        *float64
		hi         float64
	}{
		{"MSG_RATE", "messages per second", &c.MsgRate, 1e6},
		{"FRAMES_PER_SEC", "frames per second", &c.FramesPerSec, 1e7},
		{"BYTES_PER_SEC", "bytes per second", &c.BytesPerSec, 1 << 34},
		{"UPGRADES_PER_SEC", "new WebSockets per second", &c.UpgradesPerSec, 1e6},
		{"CREATES_PER_MIN", "rooms per minute", &c.CreatesPerMin, 1e7},
		{"PROBES_PER_SEC", "probe rounds per second", &c.ProbesPerSec, 1e5},
		{"ADDR_PROBES_PER_MIN", "probe rounds per minute", &c.AddrProbesPerMin, 1e7},
	}
	for _, r := range rates {
		if v := getenv(r.name); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || !(f >= 0 && f <= r.hi) {
				bad(r.name, v, "want "+r.unit+", 0 to disable")
			}
			*r.dst = f
		}
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"WRITE_TIMEOUT", &c.WriteTimeout}, {"HANDSHAKE_TIMEOUT", &c.HandshakeTimeout},
		{"JOIN_TIMEOUT", &c.JoinTimeout}, {"MESSAGE_TIMEOUT", &c.MessageTimeout}, {"RECOVER_AGE", &c.RecoverAge},
		{"HANDOFF_TIMEOUT", &c.HandoffTimeout}} {
		if v := getenv(d.name); v != "" {
			t, err := time.ParseDuration(v)
			if err != nil || t <= 0 {
				bad(d.name, v, "want a positive Go duration, e.g. 10s")
			}
			*d.dst = t
		}
	}
	if v := getenv("MEMORY_BUDGET"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1<<20 || n > 1<<40 {
			bad("MEMORY_BUDGET", v, "want a byte count from 1048576 to 1099511627776")
		}
		c.MemoryBudget = n
	}
	c.CreateTokenSecret = getenv("CREATE_TOKEN_SECRET")
	if v := c.CreateTokenSecret; v != "" && len(v) < 32 {
		bad("CREATE_TOKEN_SECRET", "(hidden)", "want at least 32 bytes")
	}
	if v := getenv("CREATE_TOKEN_PUBLIC_KEY"); v != "" {
		if _, err := tokens.ParsePublicKey(v); err != nil {
			bad("CREATE_TOKEN_PUBLIC_KEY", "(PEM)", "want a PEM Ed25519 public key: "+err.Error())
		}
		c.CreateTokenPublicKey = v
	}
	c.CreateTokenAudience = getenv("CREATE_TOKEN_AUDIENCE")
	if v := c.CreateTokenAudience; v != "" {
		switch {
		case len(v) > 256:
			bad("CREATE_TOKEN_AUDIENCE", v[:64]+"…", "want at most 256 bytes")
		case c.CreateTokenSecret == "" && c.CreateTokenPublicKey == "":
			// An audience alone checks nothing: every create is open.
			bad("CREATE_TOKEN_AUDIENCE", v, "set CREATE_TOKEN_SECRET or CREATE_TOKEN_PUBLIC_KEY too: without one, creates need no token")
		}
	}
	c.ServerAPIKey = getenv("SERVER_API_KEY")
	if v := c.ServerAPIKey; v != "" && len(v) < 32 {
		bad("SERVER_API_KEY", "(hidden)", "want at least 32 bytes")
	}
	switch v := getenv("HANDOFF"); v {
	case "", "on":
	case "off":
		c.Handoff = false
	default:
		bad("HANDOFF", v, "want on or off")
	}
	if c.HandoffTimeout > 5*time.Minute {
		bad("HANDOFF_TIMEOUT", getenv("HANDOFF_TIMEOUT"), "want at most 5m: Fly's kill_timeout ends a machine by then")
	}
	c.HandoffSecret = getenv("HANDOFF_SECRET")
	if v := c.HandoffSecret; v != "" && len(v) < 32 {
		bad("HANDOFF_SECRET", "(hidden)", "want at least 32 bytes")
	}
	switch v := getenv("TRUST_CHECK"); v {
	case "", "off":
	case "on":
		c.TrustCheck = true
		if c.HandoffSecret == "" {
			bad("TRUST_CHECK", v, "needs HANDOFF_SECRET: its calls are signed with a key derived from it")
		}
	default:
		bad("TRUST_CHECK", v, "want on or off")
	}
	if c.Handoff && c.AppName != "" && c.HandoffSecret == "" {
		// Siblings prove themselves with the secret only: without it none
		// would take a room. An app upgraded without it still starts.
		c.Handoff = false
		c.Warnings = append(c.Warnings, "hand-off is off: HANDOFF_SECRET is not set, so rooms drain on stop "+
			"instead of moving to a sibling (fly secrets set HANDOFF_SECRET=$(openssl rand -hex 32) turns it on)")
	}
	c.WebhookURL, c.WebhookSecret = getenv("WEBHOOK_URL"), getenv("WEBHOOK_SECRET")
	if v := c.WebhookURL; v != "" {
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(v) > 2048 {
			bad("WEBHOOK_URL", redactURL(v), "want an absolute http(s) URL")
		}
		if _, err := webhook.ParseSecret(c.WebhookSecret); err != nil {
			bad("WEBHOOK_SECRET", "(hidden)", err.Error())
		}
	}
	if v := getenv("ALLOWED_ORIGINS"); v != "" {
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				c.AllowedOrigins = append(c.AllowedOrigins, o)
			}
		}
	}
	if v := getenv("DEBUG_ADDR"); v != "" {
		if _, _, err := net.SplitHostPort(v); err != nil {
			bad("DEBUG_ADDR", v, "want host:port, e.g. 127.0.0.1:6060")
		}
		c.DebugAddr = v
	}
	if v := getenv("LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			bad("LOG_LEVEL", v, "want debug, info, warn or error")
		}
	}
	return c, errors.Join(errs...)
}

// redactURL is a URL as an error may print it: only its scheme and host
// are shown. Its user and password, query and fragment are replaced, and
// so is its path, which is the secret of many webhook URLs (a Slack or
// Discord hook's); a value that does not parse shows only its length.
func redactURL(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.Opaque != "" || len(u.Host) > 253 {
		return fmt.Sprintf("(%d bytes, not shown)", len(v))
	}
	shown := url.URL{Scheme: u.Scheme, Host: u.Host}
	if u.User != nil {
		shown.User = url.User("redacted")
	}
	if u.Path != "" && u.Path != "/" {
		shown.Path = "/redacted"
	}
	if u.RawQuery != "" {
		shown.RawQuery = "redacted"
	}
	if u.Fragment != "" {
		shown.Fragment = "redacted"
	}
	return shown.String()
}

// self is this machine's id in what is ours (logs, webhooks, tokens,
// siblings): rooms.LocalID off Fly. On the wire it is empty there, as the
// old relay had it.
func (c config) self() string { return or(c.Instance, rooms.LocalID) }

// region is this machine's region in what is ours, as self.
func (c config) region() string { return or(c.Region, rooms.LocalID) }

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// addr is the listen address.
func (c config) addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }
