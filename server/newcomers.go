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
//
// A token buys a guess, so only a miss keeps it: a lookup or a join that
// finds its room gives it back (found). Before, lookups of a live code
// from fresh addresses spent the bucket for nothing and every new player
// was refused (issue 20's second review, finding 2). And one address
// takes at most a share of the bucket (a quarter of its rate and burst):
// one address cannot spend it for the rest.

// newcomerShare is the newcomers' bucket's rate, as a share of the
// machine's misses per second; it holds newcomerBurst seconds of it.
const (
	newcomerShare     = 0.1
	newcomerBurst     = 5
	newcomerAddrShare = 4 // one address's share of the bucket: a quarter
)

// newcomers is the bucket, and the codes each address has asked for.
type newcomers struct {
	mu     sync.Mutex  // guards bucket
	bucket rate.Bucket // unlimited when the machine's misses are
	perIP  addrRate    // one address's share of it

	// known holds "address code" for every lookup or join by code that
	// was let through, the newest 10,000 (a flood pushes out the oldest:
	// their addresses are newcomers again, never let through for free).
	known *lru.Cache[string, struct{}]
}

func newNewcomers(machineMissesPerMin int) *newcomers {
	known, _ := lru.New[string, struct{}](missTableSize)
	perSec := float64(machineMissesPerMin) / 60 * newcomerShare
	burst := max(1, newcomerBurst*perSec)
	return &newcomers{bucket: rate.NewBucket(perSec, burst), known: known,
		perIP: newAddrRate(perSec/newcomerAddrShare, burst/newcomerAddrShare)}
}

// take spends one of the bucket's tokens for ip, within ip's share.
func (n *newcomers) take(ip string, now time.Time) bool {
	if !n.perIP.take(ip, now) {
		return false
	}
	n.mu.Lock()
	ok := n.bucket.Take(now)
	n.mu.Unlock()
	if !ok {
		n.perIP.give(ip, now) // the machine's bucket is empty: ip spent nothing
	}
	return ok
}

// give puts back a token taken for ip, and ip's share of it.
func (n *newcomers) give(ip string, now time.Time) {
	n.mu.Lock()
	n.bucket.Give(now)
	n.mu.Unlock()
	n.perIP.give(ip, now)
}

// A newcomer is an admitted lookup or join that took a newcomer's token:
// found gives it back when the room turned out to exist.
type newcomer bool

// admit reports whether ip may look code up, or join it, now: it is not
// blocked, and while the machine's misses are spent, it asked for code
// before or the newcomers' bucket lets it. Refused, nothing is looked up;
// the caller answers as for a blocked address. Admitted, the caller calls
// found if the room exists (here or on a sibling).
func (l *addrLimits) admit(ip, code string) (ok bool, took newcomer) {
	if l.blocked(ip) {
		return false, false
	}
	if l.missesPerMin <= 0 || l.machineMissesPerMin <= 0 {
		return true, false
	}
	key, remembered := ip+" "+code, code != "" && len(code) <= maxRememberedCode
	if l.machineSpent(l.now()) && !(remembered && l.newcomers.known.Contains(key)) {
		if !l.newcomers.take(ip, l.now()) {
			return false, false
		}
		took = true
	}
	if remembered {
		l.newcomers.known.Add(key, struct{}{})
	}
	return true, took
}

// found gives back the newcomer's token an admitted lookup or join of
// ip's took, when its room exists: only guesses that miss spend one.
func (l *addrLimits) found(ip string, took newcomer) {
	if took {
		l.newcomers.give(ip, l.now())
	}
}

// machineSpent reports whether the machine's misses this minute are
// spent.
func (l *addrLimits) machineSpent(now time.Time) bool {
	return l.machineMissesPerMin > 0 && l.machine.current(now) >= l.machineMissesPerMin
}
