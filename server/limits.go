package server

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Errors for the limits this server adds, in the shape of the contract's.
var (
	errRateLimited     = errors.New("Too many messages, slow down")
	errTooManyMisses   = errors.New("Too many failed joins, try again later")
	errTooManyConns    = errors.New("Too many connections from this address")
	errTooManyRequests = errors.New("Too many requests")
	errTooManyUpgrades = errors.New("Too many new connections, slow down")
	errTooManyCreates  = errors.New("Too many rooms created, slow down")
)

// addrBucket is a token bucket per client address, in an LRU so a scanner
// cycling addresses cannot grow memory. It starts as a zero value
// (getOrAdd) and takes its rate on first use.
type addrBucket struct {
	mu sync.Mutex // guards b
	b  bucket
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
	if ab.b.rate == 0 {
		ab.b = bucket{rate: a.perSec, burst: a.burst, tokens: a.burst}
	}
	return ab.b.take(now)
}

// bucket is a per-connection token bucket, owned by the reader goroutine.
type bucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
	rejected    int // rejected since the last accepted message
}

func newBucket(rate float64, burst int) *bucket {
	if rate <= 0 {
		return nil
	}
	return &bucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// take spends one token; false when the sender is over its rate.
func (b *bucket) take(now time.Time) bool {
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		b.rejected = 0
		return true
	}
	b.rejected++
	return false
}

// ipLimits counts live connections and failed lookups per client address.
// Live counts live in a map bounded by the live connections themselves;
// miss windows live in an LRU so a scanner cycling addresses cannot grow it.
type ipLimits struct {
	maxConns            int // 0: unlimited
	missesPerMin        int // 0: unlimited
	machineMissesPerMin int // 0: unlimited
	now                 func() time.Time
	machine             missWindow // every address's misses together

	mu    sync.Mutex // guards conns
	conns map[string]int

	misses *lru.Cache[string, *missWindow]
}

type missWindow struct {
	mu    sync.Mutex // guards start, count
	start time.Time
	count int
}

const missTableSize = 10000

func newIPLimits(maxConns, missesPerMin, machineMissesPerMin int) *ipLimits {
	misses, _ := lru.New[string, *missWindow](missTableSize)
	return &ipLimits{maxConns: maxConns, missesPerMin: missesPerMin, machineMissesPerMin: machineMissesPerMin,
		now: time.Now, conns: map[string]int{}, misses: misses}
}

// acquire takes a connection slot for ip; false when ip is at its limit.
func (l *ipLimits) acquire(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxConns > 0 && l.conns[ip] >= l.maxConns {
		return false
	}
	l.conns[ip]++
	return true
}

func (l *ipLimits) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[ip]--; l.conns[ip] <= 0 {
		delete(l.conns, ip)
	}
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
func (l *ipLimits) blocked(ip string) bool {
	if l.missesPerMin <= 0 {
		return false
	}
	w, ok := l.misses.Peek(ip)
	if !ok {
		return false
	}
	now := l.now()
	n := w.current(now)
	return n >= l.missesPerMin || (n > 0 && l.machineMissesPerMin > 0 && l.machine.current(now) >= l.machineMissesPerMin)
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
func (l *ipLimits) miss(ip string) {
	if l.missesPerMin <= 0 {
		return
	}
	now := l.now()
	getOrAdd(l.misses, ip).add(now, 1)
	l.machine.add(now, 1)
}

// chargeMiss spends one of ip's lookups that may fail this minute, and the
// machine's; false (nothing spent) when ip is already blocked.
func (l *ipLimits) chargeMiss(ip string) bool {
	if l.blocked(ip) {
		return false
	}
	l.miss(ip)
	return true
}

// refundMiss gives back a lookup charged by chargeMiss that found its room.
func (l *ipLimits) refundMiss(ip string) {
	if l.missesPerMin <= 0 {
		return
	}
	now := l.now()
	if w, ok := l.misses.Peek(ip); ok {
		w.add(now, -1)
	}
	l.machine.add(now, -1)
}

// clientIP is the address a request counts against: the proxy's (last)
// Fly-Client-IP for a request that came through Fly's proxy (viaProxy),
// else the socket's address. IPv6 addresses are keyed by their /64, the
// block one subscriber gets, so rotating addresses within it buys nothing.
func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.AppName != "" && viaProxy(r) {
		if ip, err := netip.ParseAddr(proxyValue(r, "Fly-Client-IP")); err == nil {
			return addrKey(ip)
		}
	}
	return socketKey(r.RemoteAddr)
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

// exempt reports whether a request is a peer machine's probe, the only
// request that never counts against an address. Being exempt is earned,
// not claimed: on Fly, a GET /room/<code> that did not come through the
// proxy (no Fly-Region) from a private or loopback socket address.
func (s *Server) exempt(r *http.Request) bool {
	if s.cfg.AppName == "" || r.Header.Get("Fly-Region") != "" {
		return false
	}
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/room/") {
		return false
	}
	return privateSocket(r)
}

// privateSocket reports whether r's socket address is private or loopback
// (on Fly: another machine of the organisation, over 6PN).
func privateSocket(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	return ip.IsPrivate() || ip.IsLoopback()
}
