package rooms

import (
	"crypto/sha256"
	"time"

	"github.com/party-sockets/party-sockets/internal/wire"
)

// The transfers a machine has taken in or aborted (docs/deploys.md,
// "One owner"). A sender retries a transfer whose outcome it does not
// know, with the same id and a fresh signature; the retry of a transfer
// whose room still lives here is taken as done (Import). A try that
// arrives after its room has ended here must not bring the room back, and
// a transfer its sender aborted must not be taken late: both ids are
// remembered for TransferMemory.
//
// Entries leave only by age, oldest first; never to make room. A full log
// refuses (ErrTooManyTransfers) instead: an import then fails and its
// sender keeps the room or tries another machine, and an abort fails as
// an abort that never arrived does.

// TransferMemory is how long a transfer id is remembered. A sender signs
// the tries of one transfer within its HANDOFF_TIMEOUT (at most 5 minutes)
// and a receiver takes a signature up to 30 s from its own clock either
// way: no call carrying the id can be taken after this.
const TransferMemory = 10 * time.Minute

// MaxTransfers bounds the log: about 80 bytes an entry, 5 MB at most. Only
// a holder of HANDOFF_SECRET adds to it, and a machine takes at most
// MAX_ROOMS rooms at once.
const MaxTransfers = 65536

// Errors of the log, in the old relay's shape (docs/deploys.md).
var (
	// ErrTransferDone: the transfer's room came here and has ended since.
	ErrTransferDone = wire.Define("Transfer already taken")
	// ErrTooManyTransfers: the log is full of ids still in their window.
	ErrTooManyTransfers = wire.Define("Too many transfers")
)

// transferKey is what the log keeps of an id: its hash, whatever its length.
type transferKey [16]byte

func keyOfTransfer(id string) transferKey {
	sum := sha256.Sum256([]byte(id))
	return transferKey(sum[:16])
}

// transferLog is guarded by Manager.mu.
type transferLog struct {
	ttl   time.Duration
	max   int
	seen  map[transferKey]bool // true: aborted; false: taken in
	order []transferAt         // oldest first
}

type transferAt struct {
	key   transferKey
	until time.Time
}

func newTransferLog(ttl time.Duration, max int) *transferLog {
	return &transferLog{ttl: ttl, max: max, seen: map[transferKey]bool{}}
}

// expireLocked forgets the ids past their time.
func (l *transferLog) expireLocked(now time.Time) {
	drop := 0
	for drop < len(l.order) && now.After(l.order[drop].until) {
		delete(l.seen, l.order[drop].key)
		drop++
	}
	if drop > 0 {
		l.order = l.order[drop:]
		if cap(l.order) > 2*len(l.order)+64 {
			l.order = append([]transferAt(nil), l.order...) // let the dropped prefix go
		}
	}
}

// lookupLocked reports whether id is remembered, and whether as aborted.
func (l *transferLog) lookupLocked(id string, now time.Time) (known, aborted bool) {
	l.expireLocked(now)
	aborted, known = l.seen[keyOfTransfer(id)]
	return known, aborted
}

// roomLocked reports whether one more id could be added now.
func (l *transferLog) roomLocked(now time.Time) bool {
	l.expireLocked(now)
	return len(l.seen) < l.max
}

// addLocked remembers id, as aborted or taken in; an id already known as
// aborted stays aborted. It refuses a new id when the log is full.
func (l *transferLog) addLocked(id string, aborted bool, now time.Time) error {
	l.expireLocked(now)
	k := keyOfTransfer(id)
	if was, ok := l.seen[k]; ok {
		l.seen[k] = was || aborted
		return nil
	}
	if len(l.seen) >= l.max {
		return ErrTooManyTransfers
	}
	l.seen[k] = aborted
	l.order = append(l.order, transferAt{k, now.Add(l.ttl)})
	return nil
}
