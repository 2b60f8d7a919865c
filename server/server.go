// Package server serves the party-sockets protocol over HTTP and WebSocket:
// routes, sessions (a reader goroutine per connection, a writer only while
// frames wait), bounded send queues, heartbeats, draining, the limits, the
// server API and metrics.
//
// # Locks
//
// Each mutex says on its struct what it guards. The order, outermost
// first: a lock may be taken while those above it are held, never one
// above while it is:
//
//	rooms' Room.mu      one room (package rooms: Room.mu before Manager.mu)
//	Server.shedMu       one shedding pass (shed.go): rooms ask for stale work
//	                    to be freed with a room's lock held; under it, rooms'
//	                    windows are reclaimed (their locks by TryLock only)
//	Server.crowdMu      one MAX_CONNS fairness pass (conns.go makeRoomFor):
//	                    never with a room's lock held; under it, conn.mu
//	conn.mu             one socket's send queue (writer.go): rooms call Send
//	                    and Close with the room's lock held
//	corkConn.mu         the socket's write side (cork.go): a leaf, held
//	                    during socket writes, so never with conn.mu held; the
//	                    writer goroutine, and coder/websocket's pings, pongs
//	                    and closes (under that library's own write lock)
//
// cachedScrape.mu (metrics.go) is held while a scrape renders, which takes
// rooms' Manager.mu (read) and the LRU tables' own locks, never a room's.
// The rest are leaves, held for a few lines and never across a call that
// locks: registry.mu (conns.go), pending.mu (pending.go), addrLimits.mu,
// missWindow.mu and addrBucket.mu (limits.go), Server.movedMu and
// Server.goneMu, siblings.mu (handoff.go), peerauth's Verifier.mu,
// codeLocks.mu (restore.go: a restore holds a code's turn, not the mutex,
// across its sibling round), and the function-local ones that gather
// parallel answers (findSiblings, siblingHolding, askSiblings). With a room's lock held, what else is taken is
// conn.mu, rooms' Manager.mu, webhook.Sender's mu (the Events callback),
// and other rooms' locks only by TryLock (reclaiming windows); shedding,
// which conn.Send may start, runs on its own goroutine.
//
// A room's lock is held across calls to a sibling in one place: Move
// (rooms) holds it while the hand-off sends the room's snapshot
// (moveRoom → sendSnapshot: up to handoffTries × handoffTry, 6 s), so
// nothing happens in the room meanwhile; no other lock is held then. What
// waits is that room's own traffic (a member's message, a join, the
// backend's call), never a read: /metrics, GET /, GET /room/<code> and a
// sibling's /.internal/load read the manager's live counts and a room's
// static facts, which take no room's lock (rooms.Manager.Counts, Lookup,
// Snapshot). No lock is held across any other network call.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/party-sockets/party-sockets/closecode"
	"github.com/party-sockets/party-sockets/internal/budget"
	"github.com/party-sockets/party-sockets/internal/rate"
	"github.com/party-sockets/party-sockets/internal/ticket"
	"github.com/party-sockets/party-sockets/internal/wire"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/routing"
	"github.com/party-sockets/party-sockets/tokens"
)

// WebhookStats is what metrics show of webhook delivery.
type WebhookStats interface {
	Stats() (delivered, retried, failed, dropped uint64)
}

// Config is the server's part of the machine configuration.
type Config struct {
	Instance       string   // machine id, "" off Fly
	Region         string   // region label, "" off Fly
	AppName        string   // FLY_APP_NAME: enables routing
	DashboardURL   string   // where GET / redirects; "" serves a text summary
	AllowedOrigins []string // host patterns; empty allows every origin
	Version        string
	Prober         *routing.Prober  // same-region peer probe; nil off Fly
	Tokens         *tokens.Verifier // create tokens; nil or empty: creates are open
	APIKey         string           // SERVER_API_KEY: enables the server API
	Webhooks       WebhookStats     // for metrics; nil without webhooks
	HandoffSecret  string           // HANDOFF_SECRET: siblings sign their calls with a key derived from it; "": none is served
	TrustCheck     bool             // TRUST_CHECK=on: the operator's signed GET /.trust-check is answered (trustcheck.go)

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
	// New WebSockets and creates per client address: token buckets.
	UpgradesPerSec float64 // 0: unlimited
	UpgradeBurst   int
	CreatesPerMin  float64 // 0: unlimited
	CreateBurst    int
	// MachineMissesPerMin is the machine's budget of misses per minute;
	// past it, every address that has missed this minute is blocked.
	MachineMissesPerMin int
	// Peer probe rounds an address may start (lookups.go): found or not,
	// per minute, and the burst. 0: unlimited.
	AddrProbesPerMin float64
	AddrProbeBurst   int
	// PeerLookupsPerSec bounds unsigned lookups from one private address
	// (a peer of the old relay, or of this server without a secret), burst
	// twice that: a peer's probe rate, PROBES_PER_SEC. 0 means
	// routing.DefaultRoundsPerSec.
	PeerLookupsPerSec float64
	// TrustedProxies (TRUSTED_PROXIES): when set, Fly's proxy headers
	// count only on a request whose socket address is in one of these
	// ranges (peer.go's proxied); empty: on any.
	TrustedProxies []netip.Prefix

	HandshakeTimeout time.Duration  // request headers and body, and keep-alive idle time
	MaxHeaderBytes   int            // request header bytes (net/http adds 4 KiB of slack)
	MaxPendingConns  int            // HTTP connections not yet upgraded, machine-wide
	MaxConns         int            // live WebSockets, machine-wide; 0: DefaultMaxConns of the budget
	JoinTimeout      time.Duration  // a socket must create or join within this
	MessageTimeout   time.Duration  // a message must arrive whole within this of its first frame
	FramesPerSec     float64        // frames of any kind a client may send, per second (burst: 2 s); 0 unlimited
	BytesPerSec      float64        // bytes a client may send, per second (burst: 2 s); 0 unlimited
	AddrBytesPerSec  float64        // bytes one address's sockets together may send, per second (burst: 2 s); 0 unlimited
	Budget           *budget.Budget // bytes clients make the machine hold; nil: DefaultLimit

	// ScrapeTTL is how long a rendered /metrics page is reused: 0 means
	// DefaultScrapeTTL; below 0, every scrape renders (tests).
	ScrapeTTL time.Duration

	Logger *slog.Logger
}

// Defaults for the zero values of Config (main's config table uses them
// too, so each is written once).
const (
	DefaultMaxFrameBytes = 64 << 10
	DefaultQueueFrames   = 4096
	DefaultQueueBytes    = 2 << 20
	DefaultWriteTimeout  = 10 * time.Second
	DefaultPingInterval  = 15 * time.Second

	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxHeaderBytes   = 8 << 10
	DefaultMaxPendingConns  = 1000
	DefaultJoinTimeout      = 30 * time.Second
	DefaultMessageTimeout   = 10 * time.Second

	// MaxOriginBytes bounds the Origin header: a browser's is a scheme, a
	// host of at most 253 bytes and a port.
	MaxOriginBytes = 300
)

// Server is the HTTP handler of one machine.
type Server struct {
	// Static after construction.
	cfg       Config
	rooms     *rooms.Manager
	metrics   *metrics
	log       *slog.Logger
	accept    websocket.AcceptOptions
	perAddr   *addrLimits
	upgrades  addrRate // new WebSockets per address
	creates   addrRate // rooms created per address
	probes    addrRate // probe rounds started per client address (lookups.go)
	peerLooks addrRate // unsigned lookups per private source address (lookups.go)
	budget    *budget.Budget
	peer      *peerKeys      // siblings' signed calls; nil without HANDOFF_SECRET (peer.go)
	sealer    *ticket.Sealer // rooms' tickets; nil without HANDOFF_SECRET (tickets.go)
	restoring codeLocks      // one restore of a code at a time (restore.go)
	restores  addrRate       // the machine's restore rounds, under one key (restore.go)
	confirmed atomic.Int64   // confirmOwner calls done (restore.go); tests wait for them
	decoding  chan struct{}  // one hand-off body decodes at a time (receive.go)
	joinTicks int64          // cfg.JoinTimeout in sweeper ticks
	msgTicks  int64          // cfg.MessageTimeout in sweeper ticks
	baseCtx   context.Context
	cancel    context.CancelFunc

	trust *trustCheck // the operator's trust check; nil when off (trustcheck.go). Static after construction.

	// Safe for concurrent use.
	draining atomic.Bool
	shedding atomic.Bool  // a shedding pass is running
	tick     atomic.Int64 // coarse clock, advanced by the sweeper
	conns    registry
	pending  *pending
	movedMu  sync.Mutex                 // guards moved
	moved    map[string]string          // code → the sibling a room held here went to
	goneMu   sync.Mutex                 // guards gone
	gone     routing.Expiring[struct{}] // machine ids a pin to is ignored, for goneTTL (route.go)

	// The memory budget's (shed.go, conns.go); maxConns is static after
	// construction, the rest safe for concurrent use.
	maxConns  int64        // cfg.MaxConns, or DefaultMaxConns of the budget
	wsLive    atomic.Int64 // live WebSockets and upgrades admitted (admitConn), against maxConns
	reading   atomic.Int64 // bytes reserved by messages being read, all sockets (readingShare)
	shedAfter atomic.Int64 // no stale pass for a reservation before this (Unix ns)
	shedMu    sync.Mutex   // held by the one shedding pass at a time; taken with a room's lock held
	crowdMu   sync.Mutex   // held by the one MAX_CONNS fairness pass at a time (makeRoomFor)
	// crowdLogAfter: makeRoomFor logs at most one line a second (unix ns).
	crowdLogAfter atomic.Int64
	crowdPasses   rate.Bucket // guarded by crowdMu: makeRoomFor's passes a second (crowdPassesPerSec)
}

// New returns a server for the rooms in mgr, registering its metrics in reg.
func New(cfg Config, mgr *rooms.Manager, reg prometheus.Registerer, gatherer prometheus.Gatherer) *Server {
	cfg = cfg.WithDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Budget == nil {
		cfg.Budget = budget.New(budget.DefaultLimit())
	}
	s := &Server{cfg: cfg, rooms: mgr, log: cfg.Logger, budget: cfg.Budget,
		perAddr:   newAddrLimits(cfg.MaxConnsPerIP, cfg.JoinMissesPerMin, cfg.MachineMissesPerMin),
		joinTicks: ticks(cfg.JoinTimeout), msgTicks: ticks(cfg.MessageTimeout)}
	s.maxConns = int64(cfg.MaxConns)
	if s.maxConns == 0 {
		s.maxConns = DefaultMaxConns(s.budget.Limit())
	}
	mgr.SetStaleReclaimer(s.shedStale)
	s.perAddr.bytesPerSec = cfg.AddrBytesPerSec
	s.peer = newPeerKeys(cfg.HandoffSecret, s.selfID())
	s.trust = newTrustCheck(cfg.TrustCheck, cfg.HandoffSecret)
	if s.sealer = newSealer(cfg.HandoffSecret); s.sealer != nil {
		mgr.SetIssuer(s.issueTicket)
	}
	s.decoding = make(chan struct{}, 1)
	s.upgrades = newAddrRate(cfg.UpgradesPerSec, float64(cfg.UpgradeBurst))
	s.creates = newAddrRate(cfg.CreatesPerMin/60, float64(cfg.CreateBurst))
	s.probes = newAddrRate(cfg.AddrProbesPerMin/60, float64(cfg.AddrProbeBurst))
	s.peerLooks = newAddrRate(cfg.PeerLookupsPerSec, 2*cfg.PeerLookupsPerSec)
	s.restores = newAddrRate(restoreRoundsPerSec, 2*restoreRoundsPerSec)
	if cfg.Prober != nil && s.peer != nil && cfg.Prober.Sign == nil {
		cfg.Prober.Sign = func(req *http.Request, to string) { s.signPeer(req, to, nil) } // probes and listings are GETs
	}
	s.conns.all = map[*conn]struct{}{}
	s.moved = map[string]string{}
	s.gone = routing.Expiring[struct{}]{TTL: goneTTL, Max: goneMax}
	s.pending = newPending(cfg.MaxPendingConns, 0)
	if cfg.AppName == "" {
		// Off Fly the socket's address is the client's.
		s.pending.perAddr = cfg.MaxConnsPerIP
	}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	s.metrics = newMetrics(cfg, mgr, reg, gatherer)
	go s.sweep()
	go s.watchFreeze() // oneowner.go
	// Game pages are served from other hosts than the relay: every origin
	// may connect unless ALLOWED_ORIGINS says otherwise.
	if len(cfg.AllowedOrigins) == 0 {
		s.accept.InsecureSkipVerify = true
	} else {
		s.accept.OriginPatterns = cfg.AllowedOrigins
	}
	return s
}

// WithDefaults is c as New uses it: every zero setting that has a default
// takes it (the Logger and Budget are New's). The others (the rates, the
// per-address limits) mean what their zero says: no limit.
func (c Config) WithDefaults() Config {
	c.MaxFrameBytes = positive(c.MaxFrameBytes, DefaultMaxFrameBytes)
	c.QueueFrames = positive(c.QueueFrames, DefaultQueueFrames)
	c.QueueBytes = positive(c.QueueBytes, DefaultQueueBytes)
	c.WriteTimeout = positive(c.WriteTimeout, DefaultWriteTimeout)
	c.PingInterval = positive(c.PingInterval, DefaultPingInterval)
	c.MsgBurst = positive(c.MsgBurst, max(1, int(2*c.MsgRate)))
	c.HandshakeTimeout = or(c.HandshakeTimeout, DefaultHandshakeTimeout)
	c.MaxHeaderBytes = or(c.MaxHeaderBytes, DefaultMaxHeaderBytes)
	c.MaxPendingConns = or(c.MaxPendingConns, DefaultMaxPendingConns)
	c.JoinTimeout = or(c.JoinTimeout, DefaultJoinTimeout)
	c.MessageTimeout = or(c.MessageTimeout, DefaultMessageTimeout)
	c.PeerLookupsPerSec = or(c.PeerLookupsPerSec, routing.DefaultRoundsPerSec)
	return c
}

// Drain stops new rooms from being created; everything else goes on.
func (s *Server) Drain() { s.draining.Store(true) }

// Rooms returns the number of rooms held here.
func (s *Server) Rooms() int { return s.rooms.Len() }

// CloseAll closes every session with 1012 (service restart): the last step
// of a drain that ran out of time. Clients reconnect elsewhere. It also
// stops the sweeper: call it only when the server is done.
func (s *Server) CloseAll() { s.cancel() }

// WaitClosed waits until every session has ended (their close frames are
// written), at most until ctx is done: the process may exit then.
func (s *Server) WaitClosed(ctx context.Context) {
	for len(s.conns.list()) > 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// errOriginTooLong refuses an Origin header no browser sends.
var errOriginTooLong = wire.Define("Origin header too long")

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if len(r.Header.Get("Origin")) > MaxOriginBytes {
		s.apiError(w, http.StatusBadRequest, errOriginTooLong)
		return
	}
	origin := cleanOrigin(r.Header.Get("Origin"))
	ip := s.clientIP(r)
	counted := !s.exempt(r)
	if counted && !s.upgrades.take(ip, time.Now()) {
		s.apiError(w, http.StatusTooManyRequests, errTooManyUpgrades)
		return
	}
	var addr *addrConns
	var addrBytes *sharedBucket
	if counted {
		var ok bool
		if addr, ok = s.perAddr.acquire(ip); !ok {
			s.apiError(w, http.StatusTooManyRequests, errTooManyConns)
			return
		}
		addrBytes = addr.bytes
	}
	if !s.admitConn(addr) { // MAX_CONNS and the socket's own cost (conns.go)
		if counted {
			s.perAddr.release(ip, false)
		}
		s.apiError(w, http.StatusServiceUnavailable, errServerBusy)
		return
	}
	hw := &hijacker{ResponseWriter: w, writeTimeout: s.cfg.WriteTimeout,
		framesPerSec: s.cfg.FramesPerSec, bytesPerSec: s.cfg.BytesPerSec, addrBytes: addrBytes}
	ws, err := websocket.Accept(hw, r, &s.accept)
	if err != nil {
		s.releaseConn()
		if counted {
			s.perAddr.release(ip, false)
		}
		s.log.Debug("websocket accept failed", "origin", origin, "error", err)
		return
	}
	ws.SetReadLimit(s.cfg.MaxFrameBytes)
	s.metrics.connectionOpened(origin)
	// The session reads on a fresh goroutine and this handler returns: the
	// net/http goroutine, whose stack grew while parsing the handshake, ends.
	se := &session{s: s, c: newConn(ws, hw.conn, s), origin: origin, ip: ip, counted: counted,
		msgs: newMsgLimit(s.cfg.MsgRate, s.cfg.MsgBurst)}
	se.c.addr = addr
	if counted {
		se.c.owner = ip
	}
	s.conns.add(se.c)
	go se.serve()
}

// serve runs the session's reader until the socket ends.
func (se *session) serve() {
	c := se.c
	stopOnShutdown := context.AfterFunc(se.s.baseCtx, func() { c.Close(closecode.EndRestart) })
	err := se.run(context.Background())
	stopOnShutdown()
	switch {
	case errors.Is(err, websocket.ErrMessageTooBig):
		c.setReason(closecode.EndTooBig)
		// coder/websocket has sent 1009. Read what the client is still
		// sending of the oversized frame (bounded in bytes and time)
		// before the socket closes: closing on unread data resets the
		// connection, and the client could lose the close frame.
		c.raw.drain(time.Second, se.s.cfg.MaxFrameBytes)
	case errors.Is(err, errBusy):
		// Closed with 1013: as for 1009, what the client is still
		// sending of the message is read first, so that the close frame
		// is not lost to a reset.
		c.raw.drain(time.Second, se.s.cfg.MaxFrameBytes)
	case errors.Is(err, errTooManyFragments):
		c.setReason(closecode.EndFragments)
	case errors.Is(err, errOverRate):
		c.setReason(closecode.EndFrameRate)
	}
	c.finish()
	se.s.conns.remove(c)
	se.s.releaseConn()
	if se.counted {
		c.mu.Lock()
		crowded := c.crowded
		c.mu.Unlock()
		se.s.perAddr.release(se.ip, crowded)
	}
	se.s.metrics.connectionClosed(c.closedReason())
	se.logClose(err)
}

// cleanOrigin is what a client-controlled Origin header (at most
// MaxOriginBytes) becomes in logs, metric labels and the room: valid UTF-8,
// and a copy, so no label or field keeps a request's buffers alive.
func cleanOrigin(o string) string {
	if o == "" {
		return "unknown"
	}
	return validCopy(o)
}

// validCopy is s as valid UTF-8, always a copy: it never keeps the request
// buffer s may point into alive.
func validCopy(s string) string {
	if !utf8.ValidString(s) {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.Clone(s)
}

// cleanLabel bounds a client-chosen string used as a metric label: valid
// UTF-8, at most 64 bytes, a copy.
func cleanLabel(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return validCopy(s)
}

// positive is v, or def when v is not above zero.
func positive[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// or is v, or def when v is the zero value.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
