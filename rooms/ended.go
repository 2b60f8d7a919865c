package rooms

import (
	"time"

	"github.com/party-sockets/party-sockets/internal/ticket"
)

// Ended rooms stay ended (docs/protocol.md "Crash-proof rooms"): a machine remembers
// every code whose room ended here (close_room, the host grace, the last
// member leaving, the server API) for ticket.Window, so that no ticket
// brings it back: a restore here is refused, and a sibling's signed probe
// is told so. A room moved by a hand-off, aborted or yielded did not end.

// MaxEnded bounds the codes remembered; past it the oldest is forgotten.
// 20000 codes is about 1 MiB; filling it takes an address 20000 creates.
const MaxEnded = 20000

// endedLog is the codes that ended here, oldest first. Guarded by
// Manager.mu.
type endedLog struct {
	at    map[string]time.Time
	order []endedEntry
}

type endedEntry struct {
	code string
	at   time.Time
}

func (l *endedLog) addLocked(code string, now time.Time) {
	if l.at == nil {
		l.at = map[string]time.Time{}
	}
	l.expireLocked(now)
	for len(l.order) >= MaxEnded {
		l.dropOldestLocked()
	}
	l.at[code] = now
	l.order = append(l.order, endedEntry{code, now})
}

func (l *endedLog) expireLocked(now time.Time) {
	for len(l.order) > 0 && now.Sub(l.order[0].at) >= ticket.Window {
		l.dropOldestLocked()
	}
}

func (l *endedLog) dropOldestLocked() {
	e := l.order[0]
	l.order[0] = endedEntry{}
	l.order = l.order[1:]
	if l.at[e.code].Equal(e.at) {
		delete(l.at, e.code)
	}
}

func (l *endedLog) hasLocked(code string, now time.Time) bool {
	at, ok := l.at[code]
	return ok && now.Sub(at) < ticket.Window
}

// noteEnded remembers that the room with code ended here now.
func (m *Manager) noteEnded(code string) {
	now := m.cfg.Clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ended.addLocked(code, now)
}

// Ended reports whether a room with code ended here within ticket.Window.
func (m *Manager) Ended(code string) bool {
	now := m.cfg.Clock.Now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.ended.hasLocked(code, now)
}
