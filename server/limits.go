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
)

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
	maxConns     int // 0: unlimited
	missesPerMin int // 0: unlimited
	now          func() time.Time

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

func newIPLimits(maxConns, missesPerMin int) *ipLimits {
	misses, _ := lru.New[string, *missWindow](missTableSize)
	return &ipLimits{maxConns: maxConns, missesPerMin: missesPerMin, now: time.Now, conns: map[string]int{}, misses: misses}
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
func (l *ipLimits) blocked(ip string) bool {
	if l.missesPerMin <= 0 {
		return false
	}
	w, ok := l.misses.Peek(ip)
	if !ok {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return l.now().Sub(w.start) < time.Minute && w.count >= l.missesPerMin
}

// miss records a failed join or room lookup.
func (l *ipLimits) miss(ip string) {
	if l.missesPerMin <= 0 {
		return
	}
	w := getOrAdd(l.misses, ip)
	w.mu.Lock()
	defer w.mu.Unlock()
	if now := l.now(); now.Sub(w.start) >= time.Minute {
		w.start, w.count = now, 0
	}
	w.count++
}

// clientIP is the address a request counts against: Fly-Client-IP for a
// request that came through Fly's proxy (it carries Fly-Region), else the
// socket's address. IPv6 addresses are keyed by their /64, the block one
// subscriber gets, so rotating addresses within it buys nothing.
func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.AppName != "" && r.Header.Get("Fly-Region") != "" {
		if ip, err := netip.ParseAddr(r.Header.Get("Fly-Client-IP")); err == nil {
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
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	return ip.IsPrivate() || ip.IsLoopback()
}
