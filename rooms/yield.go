package rooms

import "github.com/party-sockets/party-sockets/closecode"

// One owner (docs/protocol.md "One owner"): when two machines hold a copy of one
// room (the old holder was frozen or cut off while a member restored it
// elsewhere), the newer copy wins and the older gives way: its members
// are closed with 1012, on which they reconnect to find the newer, and it
// is dropped without room.closed (the room lives on).

// Version is what tells two copies of a room apart.
type Version struct {
	Epoch, Version uint64
	From           uint64 // the epoch the copy was restored from; 0 when not restored
}

// Newer reports whether copy a beats copy b: within one epoch the higher
// version; a copy restored from the other's epoch beats it; two copies
// that are not related so (restored from one ticket on two machines, a
// race rendezvous makes rare) are ordered by version, then epoch, so
// that exactly one of them gives way.
func Newer(a, b Version) bool {
	switch {
	case a.Epoch == b.Epoch:
		return a.Version > b.Version
	case a.From != 0 && a.From == b.Epoch:
		return true
	case b.From != 0 && b.From == a.Epoch:
		return false
	case a.Version != b.Version:
		return a.Version > b.Version
	}
	return a.Epoch > b.Epoch
}

// VersionOf is the room's copy's version.
func (r *Room) VersionOf() Version {
	e, v, f := r.Epoch()
	return Version{Epoch: e, Version: v, From: f}
}

// Yield drops the room with code if other is a newer copy of it, closing
// its members with 1012, and reports whether it did.
func (m *Manager) Yield(code string, other Version) bool {
	r := m.get(code)
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || !Newer(other, r.VersionOf()) {
		return false
	}
	for i := range r.slots {
		if mem := r.slots[i].member; mem != nil {
			r.slots[i].member = nil
			mem.Close(closecode.EndRestart)
		}
	}
	r.releaseLocked()
	return true
}
