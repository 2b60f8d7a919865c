package server

import (
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/party-sockets/party-sockets/internal/rate"
)

// Newcomers, once the machine's misses are spent (docs/limits.md "Walking the
// code space"). Past MACHINE_MISSES_PER_MIN every address that has missed
// this minute is blocked, but one that has not could still ask: a live
// code answered it, a miss blocked it afterwards. Fresh addresses (a
// botnet's, or any number of forged Fly-Client-IPs) then bought a guess
// each, and the answer to a live code was an oracle at any speed. So while
// the machine's misses are spent, a lookup or a join by code that its
// address has not made before (it has no history of that code) takes a
// token of one bucket for the whole machine, a tenth of the machine's
// misses a second; without one it is refused before the code is looked
// at, whether the room exists or not. An address asking again for a code
// it already found (a player rejoining its room) needs no token, and
// learns nothing it did not know.

// newcomerShare is the newcomers' bucket's rate, as a share of the
// machine's misses per second; it holds newcomerBurst seconds of it.
const (
	newcomerShare = 0.1
	newcomerBurst = 5
)

// newcomers is the bucket, and the codes each address has asked for.
type newcomers struct {
	mu     sync.Mutex  // guards bucket
	bucket rate.Bucket // unlimited when the machine's misses are

	// known holds "address code" for every lookup or join by code that
	// was let through, the newest 10,000 (a flood pushes out the oldest:
	// their addresses are newcomers again, never let through for free).
	known *lru.Cache[string, struct{}]
}

func newNewcomers(machineMissesPerMin int) *newcomers {
	known, _ := lru.New[string, struct{}](missTableSize)
	perSec := float64(machineMissesPerMin) / 60 * newcomerShare
	return &newcomers{bucket: rate.NewBucket(perSec, max(1, newcomerBurst*perSec)), known: known}
}

// take spends one of the bucket's tokens.
func (n *newcomers) take(now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.bucket.Take(now)
}

// admit reports whether ip may look code up, or join it, now: it is not
// blocked, and while the machine's misses are spent, it asked for code
// before or the newcomers' bucket lets it. Refused, nothing is looked up;
// the caller answers as for a blocked address.
func (l *addrLimits) admit(ip, code string) bool {
	if l.blocked(ip) {
		return false
	}
	if l.missesPerMin <= 0 || l.machineMissesPerMin <= 0 {
		return true
	}
	key, remembered := ip+" "+code, code != "" && len(code) <= maxRememberedCode
	if l.machineSpent(l.now()) && !(remembered && l.newcomers.known.Contains(key)) && !l.newcomers.take(l.now()) {
		return false
	}
	if remembered {
		l.newcomers.known.Add(key, struct{}{})
	}
	return true
}

// machineSpent reports whether the machine's misses this minute are
// spent.
func (l *addrLimits) machineSpent(now time.Time) bool {
	return l.machineMissesPerMin > 0 && l.machine.current(now) >= l.machineMissesPerMin
}
