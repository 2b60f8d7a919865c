package routing

import "time"

// Expiring remembers a value per key for one TTL, at most Max keys. Every
// entry lives for the same TTL, so the oldest entry is the first to expire:
// past Max the oldest goes, and expired entries go as new ones come. It is
// never cleared whole, so a flood of new keys cannot make it forget what
// it was told a moment ago, only what it was told longest ago. Not safe for
// concurrent use: its owner's lock guards it.
type Expiring[V any] struct {
	TTL time.Duration
	Max int

	m     map[string]expiringEntry[V]
	order []expiringKey // when each key was set, oldest first (a key set twice is here twice)
}

type expiringEntry[V any] struct {
	v     V
	until time.Time
}

type expiringKey struct {
	key   string
	until time.Time
}

// Get returns key's value while it lasts.
func (e *Expiring[V]) Get(key string, now time.Time) (V, bool) {
	ent, ok := e.m[key]
	if !ok || !now.Before(ent.until) {
		var zero V
		return zero, false
	}
	return ent.v, true
}

// Set keeps v for key for TTL from now, making room first.
func (e *Expiring[V]) Set(key string, v V, now time.Time) {
	if e.m == nil {
		e.m = map[string]expiringEntry[V]{}
	}
	e.expire(now)
	if _, ok := e.m[key]; !ok {
		for len(e.m) >= max(1, e.Max) && len(e.order) > 0 {
			e.dropOldest()
		}
	}
	until := now.Add(e.TTL)
	e.m[key] = expiringEntry[V]{v, until}
	e.order = append(e.order, expiringKey{key, until})
	if len(e.order) > 2*max(1, e.Max) {
		e.compact()
	}
}

// Delete forgets key.
func (e *Expiring[V]) Delete(key string) { delete(e.m, key) }

// Len is how many keys it holds, expired ones not yet dropped included.
func (e *Expiring[V]) Len() int { return len(e.m) }

// expire drops the entries whose time has passed.
func (e *Expiring[V]) expire(now time.Time) {
	for len(e.order) > 0 && !now.Before(e.order[0].until) {
		e.dropOldest()
	}
}

// dropOldest drops the first entry of order, and its key unless the key
// was set again since.
func (e *Expiring[V]) dropOldest() {
	if len(e.order) == 0 {
		return
	}
	k := e.order[0]
	e.order[0] = expiringKey{}
	e.order = e.order[1:]
	if ent, ok := e.m[k.key]; ok && ent.until.Equal(k.until) {
		delete(e.m, k.key)
	}
}

// compact keeps in order only the current setting of each key.
func (e *Expiring[V]) compact() {
	kept := make([]expiringKey, 0, len(e.m))
	for _, k := range e.order {
		if ent, ok := e.m[k.key]; ok && ent.until.Equal(k.until) {
			kept = append(kept, k)
		}
	}
	e.order = kept
}
