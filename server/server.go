// Package server serves the party-sockets protocol over HTTP and WebSocket:
// routes, sessions (one reader and one writer goroutine per connection),
// bounded send queues, heartbeats, draining and metrics.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"party-sockets/rooms"
	"party-sockets/routing"
)

// Config is the server's part of the machine configuration.
type Config struct {
	Instance       string   // machine id, "" off Fly
	Region         string   // region label, "" off Fly
	AppName        string   // FLY_APP_NAME: enables routing
	DashboardURL   string   // where GET / redirects; "" serves a text summary
	AllowedOrigins []string // host patterns; empty allows every origin
	Version        string
	Prober         *routing.Prober // same-region peer probe; nil off Fly

	MaxFrameBytes int64         // largest client frame; larger closes with 1009
	QueueFrames   int           // per-connection send queue, in frames
	QueueBytes    int           // per-connection send queue, in bytes
	WriteTimeout  time.Duration // bound on one frame write
	PingInterval  time.Duration // heartbeat period; a silent peer dies within two

	// Abuse limits; zero means unlimited (rate) or the default.
	MsgRate          float64 // messages per second per connection (token bucket); 0 disables
	MsgBurst         int     // bucket size: the burst a game may send at once
	MaxConnsPerIP    int     // concurrent connections per client address; 0 disables
	JoinMissesPerMin int     // failed joins and /room misses per address per minute; 0 disables

	Logger *slog.Logger
}

// Defaults for the zero values of Config.
const (
	DefaultMaxFrameBytes = 64 << 10
	DefaultQueueFrames   = 4096
	DefaultQueueBytes    = 2 << 20
	DefaultWriteTimeout  = 10 * time.Second
	DefaultPingInterval  = 15 * time.Second
)

// Server is the HTTP handler of one machine.
type Server struct {
	cfg      Config
	rooms    *rooms.Manager
	metrics  *metrics
	log      *slog.Logger
	accept   websocket.AcceptOptions
	draining atomic.Bool
	ipl      *ipLimits
	baseCtx  context.Context
	cancel   context.CancelFunc
}

// New returns a server for the rooms in mgr, registering its metrics in reg.
func New(cfg Config, mgr *rooms.Manager, reg prometheus.Registerer, gatherer prometheus.Gatherer) *Server {
	if cfg.MaxFrameBytes <= 0 {
		cfg.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if cfg.QueueFrames <= 0 {
		cfg.QueueFrames = DefaultQueueFrames
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MsgBurst <= 0 {
		cfg.MsgBurst = max(1, int(2*cfg.MsgRate))
	}
	s := &Server{cfg: cfg, rooms: mgr, log: cfg.Logger, ipl: newIPLimits(cfg.MaxConnsPerIP, cfg.JoinMissesPerMin)}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	s.metrics = newMetrics(cfg, mgr, reg, gatherer)
	// Game pages are served from other hosts than the relay: every origin
	// may connect unless ALLOWED_ORIGINS says otherwise.
	if len(cfg.AllowedOrigins) == 0 {
		s.accept.InsecureSkipVerify = true
	} else {
		s.accept.OriginPatterns = cfg.AllowedOrigins
	}
	return s
}

// Drain stops new rooms from being created; everything else goes on.
func (s *Server) Drain() { s.draining.Store(true) }

// Draining reports whether Drain was called.
func (s *Server) Draining() bool { return s.draining.Load() }

// Rooms returns the number of rooms held here.
func (s *Server) Rooms() int { return s.rooms.Len() }

// CloseAll closes every session with 1012 (service restart): the last step
// of a drain that ran out of time. Clients reconnect elsewhere.
func (s *Server) CloseAll() { s.cancel() }

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	origin := cleanOrigin(r.Header.Get("Origin"))
	ip := s.clientIP(r)
	counted := !s.exempt(r)
	if counted && !s.ipl.acquire(ip) {
		s.metrics.errorSent(errTooManyConns)
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": errTooManyConns.Error()})
		return
	}
	hw := &hijacker{ResponseWriter: w, writeTimeout: s.cfg.WriteTimeout}
	ws, err := websocket.Accept(hw, r, &s.accept)
	if err != nil {
		if counted {
			s.ipl.release(ip)
		}
		s.log.Debug("websocket accept failed", "origin", origin, "error", err)
		return
	}
	ws.SetReadLimit(s.cfg.MaxFrameBytes)
	s.metrics.connectionOpened(origin)
	// The session reads on a fresh goroutine and this handler returns: the
	// net/http goroutine, whose stack grew while parsing the handshake, ends.
	se := &session{s: s, c: newConn(ws, hw.conn, s.cfg), origin: origin, ip: ip, counted: counted,
		bucket: newBucket(s.cfg.MsgRate, s.cfg.MsgBurst)}
	go se.serve()
}

// serve runs the session's reader until the socket ends.
func (se *session) serve() {
	c := se.c
	stopOnShutdown := context.AfterFunc(se.s.baseCtx, func() { c.Close(CloseRestarting, "server restarting") })
	err := se.run(context.Background())
	stopOnShutdown()
	if errors.Is(err, websocket.ErrMessageTooBig) {
		c.setReason(reasonTooBig)
	}
	c.finish()
	if se.counted {
		se.s.ipl.release(se.ip)
	}
	se.s.metrics.connectionClosed(c.closedReason())
	se.logClose(err)
}

// cleanOrigin bounds what a client-controlled Origin header can become in
// logs and metric labels.
func cleanOrigin(o string) string {
	if o == "" {
		return "unknown"
	}
	if len(o) > 200 {
		o = o[:200]
	}
	if !utf8.ValidString(o) {
		o = strings.ToValidUTF8(o, "\uFFFD")
	}
	return o
}
