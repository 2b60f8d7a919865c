package server

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/party-sockets/party-sockets/internal/rate"
	"github.com/party-sockets/party-sockets/internal/wire"
)

// Errors for the limits this server adds, in the old relay's shape (README
// "Limits and abuse").
var (
	errRateLimited     = wire.Define("Too many messages, slow down")
	errTooManyMisses   = wire.Define("Too many failed joins, try again later")
	errTooManyConns    = wire.Define("Too many connections from this address")
	errTooManyRequests = wire.Define("Too many requests")
	errTooManyUpgrades = wire.Define("Too many new connections, slow down")
	errTooManyCreates  = wire.Define("Too many rooms created, slow down")
)

// addrBucket is one client address's token bucket, in an LRU so a
// scanner cycling addresses cannot grow memory. It starts as a zero value
// (getOrAdd), which is unlimited, and takes its rate on first use.
type addrBucket struct {
	mu sync.Mutex // guards b
	b  rate.Bucket
}

// addrRate is a rate and burst shared by every address's bucket.
type addrRate struct {
	perSec, burst float64 // perSec 0: unlimited
	buckets       *lru.Cache[string, *addrBucket]
}

func newAddrRate(perSec, burst float64) addrRate {
	c, _ := lru.New[string, *addrBucket](missTableSize)
	return addrRate{perSec: perSec, burst: max(1, burst), buckets: c}
}

// take spends one token of ip's bucket; false when it has none.
func (a addrRate) take(ip string, now time.Time) bool {
	if a.perSec <= 0 {
		return true
	}
	ab := getOrAdd(a.buckets, ip)
	ab.mu.Lock()
	defer ab.mu.Unlock()
	if ab.b.Unlimited() {
		ab.b = rate.NewBucket(a.perSec, a.burst)
	}
	return ab.b.Take(now)
}

// give puts back a token ip took (rate.Bucket.Give).
func (a addrRate) give(ip string, now time.Time) {
	if a.perSec <= 0 {
		return
	}
	if ab, ok := a.buckets.Peek(ip); ok {
		ab.mu.Lock()
		ab.b.Give(now)
		ab.mu.Unlock()
	}
}

// level is ip's tokens now, without spending one: a full bucket for an
// address not seen yet (or when unlimited).
func (a addrRate) level(ip string, now time.Time) float64 {
	if a.perSec <= 0 {
		return a.burst
	}
	ab, ok := a.buckets.Peek(ip)
	if !ok {
		return a.burst
	}
	ab.mu.Lock()
	defer ab.mu.Unlock()
	if ab.b.Unlimited() {
		return a.burst
	}
	return ab.b.Level(now)
}

// addrLimits counts live connections and failed lookups per client address.
// Live counts (and the bytes the address's sockets may send) live in a map
// bounded by the live connections themselves; miss windows live in an LRU
// so a scanner cycling addresses cannot grow it.
type addrLimits struct {
	maxConns            int     // 0: unlimited
	missesPerMin        int     // 0: unlimited
	machineMissesPerMin int     // 0: unlimited
	bytesPerSec         float64 // what an address's sockets together may send (ADDR_BYTES_PER_SEC); 0: unlimited
	now                 func() time.Time
	machine             missWindow // every address's misses together

	mu    sync.Mutex // guards conns
	conns map[string]*addrConns

	misses    *lru.Cache[string, *missWindow]
	missed    *lru.Cache[string, time.Time] // "address code" → when it was last counted (missCode)
	newcomers *newcomers                    // lookups by code while the machine's misses are spent (newcomers.go)
}

type missWindow struct {
	mu    sync.Mutex // guards start, count
	start time.Time
	count int
}

const missTableSize = 10000

func newAddrLimits(maxConns, missesPerMin, machineMissesPerMin int) *addrLimits {
	misses, _ := lru.New[string, *missWindow](missTableSize)
	missed, _ := lru.New[string, time.Time](missTableSize)
	return &addrLimits{maxConns: maxConns, missesPerMin: missesPerMin, machineMissesPerMin: machineMissesPerMin,
		now: time.Now, conns: map[string]*addrConns{}, misses: misses, missed: missed, newcomers: newNewcomers(machineMissesPerMin)}
}

// addrConns is one address's live WebSockets: how many, the byte bucket
// they share (meter.go charges it beside each socket's own), and what
// their messages being read hold of the budget together (session.grow:
// an address's share of what messages being read may hold).
type addrConns struct {
	n       int // guarded by addrLimits.mu
	leaving int // of n, closed to make room for another address (makeRoomFor); guarded by addrLimits.mu
	bytes   *sharedBucket
	reading atomic.Int64
}

// sharedBucket is a token bucket several goroutines charge.
type sharedBucket struct {
	mu sync.Mutex // guards b
	b  rate.Bucket
}

// charge spends n tokens, into debt if need be, and returns how long the
// debt takes to pay back (rate.Bucket.Charge).
func (sb *sharedBucket) charge(now time.Time, n float64) time.Duration {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return sb.b.Charge(now, n)
}

// acquire takes a connection slot for ip, and returns what ip's sockets
// share (the byte bucket's burst is 2 s of the rate); false when ip is at
// its limit.
func (l *addrLimits) acquire(ip string) (*addrConns, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.conns[ip]
	if a == nil {
		a = &addrConns{bytes: &sharedBucket{b: rate.NewBucket(l.bytesPerSec, 2*l.bytesPerSec)}}
	}
	if l.maxConns > 0 && a.n >= l.maxConns {
		return nil, false
	}
	a.n++
	l.conns[ip] = a
	return a, true
}

// release gives back ip's connection slot; crowded: it was one closed
// to make room for another address.
func (l *addrLimits) release(ip string, crowded bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.conns[ip]; a != nil {
		if crowded && a.leaving > 0 {
			a.leaving--
		}
		if a.n--; a.n <= 0 {
			delete(l.conns, ip)
		}
	}
}

// mostHeld is the address other than mine holding the most live
// sockets (less those on their way out), when that is more than mine
// will hold with one more; with both counts.
func (l *addrLimits) mostHeld(mine *addrConns) (top *addrConns, most, mineHeld int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	mineHeld = mine.n - mine.leaving // mine.n counts the new socket already (acquire)
	most = mineHeld
	for _, a := range l.conns {
		if n := a.n - a.leaving; a != mine && n > most {
			top, most = a, n
		}
	}
	return top, most, mineHeld
}

// evicting counts n more (or, negative, fewer) of a's sockets as on
// their way out.
func (l *addrLimits) evicting(a *addrConns, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a.leaving = max(0, a.leaving+n)
}

// getOrAdd returns the cache's value for key, adding a new zero V when
// absent; concurrent callers end up with the same value.
func getOrAdd[V any](cache *lru.Cache[string, *V], key string) *V {
	if v, ok := cache.Get(key); ok {
		return v
	}
	v := new(V)
	if prev, found, _ := cache.PeekOrAdd(key, v); found {
		return prev
	}
	return v
}

// blocked reports whether ip has used up its failed lookups this minute.
// Once the whole machine has used up its own, every address that has
// missed at all this minute is blocked: a scan from many addresses gets
// one guess per address per minute, and players who never mistyped a code
// are not affected.
func (l *addrLimits) blocked(ip string) bool {
	if l.missesPerMin <= 0 {
		return false
	}
	w, ok := l.misses.Peek(ip)
	if !ok {
		return false
	}
	now := l.now()
	n := w.current(now)
	return n >= l.missesPerMin || (n > 0 && l.machineSpent(now))
}

// current is the window's count, zero once its minute has passed.
func (w *missWindow) current(now time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Sub(w.start) >= time.Minute {
		return 0
	}
	return w.count
}

func (w *missWindow) add(now time.Time, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if now.Sub(w.start) >= time.Minute {
		w.start, w.count = now, 0
	}
	w.count = max(0, w.count+n)
}

// miss records a failed join or room lookup.
func (l *addrLimits) miss(ip string) {
	if l.missesPerMin <= 0 {
		return
	}
	now := l.now()
	getOrAdd(l.misses, ip).add(now, 1)
	l.machine.add(now, 1)
}

// missCode records a failed join or lookup of code, unless ip missed the
// same code this minute already: asking again for a code that was not
// there walks no code space, and a household whose players all wait for
// their room after a deploy (each retrying by code for 10 s) must not use
// up its misses on it. Only codes of at most maxRememberedCode bytes are
// remembered (a real one has 6); a longer one always counts.
func (l *addrLimits) missCode(ip, code string) {
	if l.missesPerMin <= 0 {
		return
	}
	if len(code) > maxRememberedCode || code == "" {
		l.miss(ip)
		return
	}
	now := l.now()
	key := ip + " " + code
	if at, ok := l.missed.Get(key); ok && now.Sub(at) < time.Minute {
		return
	}
	l.missed.Add(key, now)
	l.miss(ip)
}

// maxRememberedCode bounds the codes missCode remembers per address.
const maxRememberedCode = 16

// clientIP is the address a request counts against: on Fly, for a
// request that came through Fly's proxy (proxied: any of its headers, on
// a socket TRUSTED_PROXIES allows), Fly-Client-IP; else the socket's
// address. When Fly-Client-IP appears
// more than once, or holds a list, the last value counts: a proxy that
// appends puts its own last, and whatever a client sent comes before it
// (docs/limits.md "Whom the limits count"). IPv6 addresses are keyed by their
// /64, the block one subscriber gets, so rotating addresses within it buys
// nothing.
func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.AppName != "" && s.proxied(r) {
		if ip, ok := lastClientIP(r.Header.Values("Fly-Client-Ip")); ok {
			return addrKey(ip)
		}
	}
	return socketKey(r.RemoteAddr)
}

// lastClientIP is the last address of a header's values, each of which
// may be a comma-separated list.
func lastClientIP(values []string) (netip.Addr, bool) {
	if len(values) == 0 {
		return netip.Addr{}, false
	}
	v := values[len(values)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(v))
	return ip, err == nil
}

// socketKey is addrKey of a "host:port" socket address.
func socketKey(remote string) string {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return remote
	}
	return addrKey(ap.Addr())
}

// addrKey is an IPv4 address as it is, or an IPv6 address's /64.
func addrKey(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

// msgLimit is a connection's message rate (MSG_RATE, MSG_BURST) and what
// it does to a sender over it: the sender is told once, and closed once
// more than a burst of its messages has been dropped, until it is back
// under the rate (its bucket full again). The count did reset on every
// message let through: a steady flood at three times the rate was told
// after every success (193 warnings for 600 messages, measured) and never
// closed. Owned by the session's reader.
type msgLimit struct {
	bucket  rate.Bucket
	dropped int // messages refused since the bucket was last full
}

// What msgLimit.take says to do with a message.
type msgVerdict int

const (
	msgPass  msgVerdict = iota // serve it
	msgWarn                    // drop it and tell the sender (the first refusal)
	msgDrop                    // drop it
	msgClose                   // close the sender: a burst more was dropped
)

func newMsgLimit(perSec float64, burst int) msgLimit {
	return msgLimit{bucket: rate.NewBucket(perSec, float64(burst))}
}

func (l *msgLimit) take(now time.Time) msgVerdict {
	if l.bucket.Unlimited() {
		return msgPass
	}
	if l.bucket.Level(now) >= l.bucket.Burst() {
		l.dropped = 0 // back under the rate for a whole burst: forgiven
	}
	if l.bucket.Take(now) {
		return msgPass
	}
	l.dropped++
	switch {
	case l.dropped == 1:
		return msgWarn
	case float64(l.dropped) > l.bucket.Burst():
		return msgClose
	}
	return msgDrop
}
