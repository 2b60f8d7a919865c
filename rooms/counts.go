package rooms

// What reads rooms from outside (GET /room/<code>, GET /, the metrics, a
// sibling's load call) never waits for a room's lock: a room being moved
// holds its own across the hand-off's calls to a sibling (Move). Each room
// keeps its live count in an atomic, written with its lock held wherever
// the count changes (addLiveLocked), and the manager keeps the machine's
// total beside it; everything else read here is static after construction.

// Info is what GET /room/<code> and the metrics show of a room.
type Info struct {
	Code       string
	Clients    int
	MaxClients float64
	Origin     string
	URL        string
}

// Lookup returns the room's public facts. It waits for no room's lock.
func (m *Manager) Lookup(code string) (Info, bool) {
	r := m.get(code)
	if r == nil {
		return Info{}, false
	}
	return r.Info()
}

// Snapshot returns the facts of every live room. It waits for no room's
// lock.
func (m *Manager) Snapshot() []Info {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Info, 0, len(m.rooms))
	for _, r := range m.rooms {
		if in, ok := r.Info(); ok {
			out = append(out, in)
		}
	}
	return out
}

// Counts returns the number of rooms and of live members, without a look
// at any room.
func (m *Manager) Counts() (rooms, clients int) {
	return m.Len(), int(m.live.Load())
}

// Len returns the number of rooms, cheaply.
func (m *Manager) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.rooms)
}

// Info returns the room's public facts, or false once it has ended. It
// takes no lock: a room that is being moved answers at once (it is here
// until the move ends).
func (r *Room) Info() (Info, bool) {
	if r.ended.Load() {
		return Info{}, false
	}
	return Info{Code: r.Code, Clients: int(r.clients.Load()), MaxClients: r.MaxClients, Origin: r.Origin, URL: r.URL}, true
}

// addLiveLocked changes the room's count of live members by n, and with it
// the counts read without the room's lock: its own (Info) and the
// manager's (Counts), the room's time played and the manager's list of
// empty rooms (evict.go). r.mu must be held, or r not yet reachable.
func (r *Room) addLiveLocked(n int) {
	was := r.live
	r.live += n
	r.clients.Store(int64(r.live))
	r.m.live.Add(int64(n))
	r.notePlayLocked(was)
	r.trackEmptyLocked()
}
