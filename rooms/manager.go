// Package rooms is the in-memory room manager: codes, slots, reclaim, the
// live-member cap, retained state, host grace and close. It has no network
// code: a player is reached only through Member, and time only through Clock.
//
// Locking: Manager.mu guards the code → room map; each Room.mu guards that
// room. The message path (Relay, PutState) takes only its room's lock. Lock
// order is Room.mu before Manager.mu (a room removes itself while locked);
// the manager never locks a room while holding its own lock. A room's lock
// may be held across a call to a sibling: Move holds it while the snapshot
// travels (the send it is given), so nothing happens in the room meanwhile.
// What reads rooms from outside never waits for one: Lookup, Snapshot,
// Counts and Len take at most Manager.mu, and read a room's live count from
// atomics that the room updates, with its lock held, wherever the count
// changes (addLiveLocked). Only reclaiming takes other rooms' locks, with
// TryLock, so it may run with a room's lock held; Manager.reclaimMu, held
// by the one machine-wide pass over windows (reclaim.go), is taken with a
// room's lock held, and under it only rooms' locks by TryLock and
// Manager.mu. Manager.empties.mu (evict.go) is a leaf, taken with a
// room's lock held; an eviction takes it, lets go, then locks the room it
// ends (TryLock), holding no other.
package rooms

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/party-sockets/party-sockets/closecode"
	"github.com/party-sockets/party-sockets/internal/budget"
	"github.com/party-sockets/party-sockets/internal/wire"
)

// Member is one player's connection as the room sees it. Both methods must
// not block: Send queues a frame, Close queues the close (a room sends
// EndReplaced, EndRoomClosed or EndRestart, which flush: the close comes
// after the frames already queued).
type Member interface {
	Send(frame []byte)
	Close(end closecode.End)
}

// Owned is a Member that says who caused what it does: an opaque key that
// rooms never reads and only copies into the events the member causes
// (Event.Owner). The server gives its client's address, so webhooks can
// be fair between addresses; rooms knows none.
type Owned interface {
	Owner() string
}

// ownerOf is mem's Owner, or "" when it has none.
func ownerOf(mem Member) string {
	if o, ok := mem.(Owned); ok {
		return o.Owner()
	}
	return ""
}

// SharedSender is a Member whose queue can hold a broadcast's frame as
// one of its holders: it holds sh (budget.Shared.Hold) while the frame is
// queued and releases it once the frame is written or dropped, so the
// memory budget counts the frame once for every receiver. A Member that
// is not one gets Send, and counts what it keeps itself.
type SharedSender interface {
	SendShared(frame []byte, sh *budget.Shared)
}

// MaxStateBytes bounds a retained state snapshot (compact JSON).
const MaxStateBytes = 16384

// Errors, exactly as the old relay spells them (docs/protocol.md).
var (
	ErrRoomNotFound    = wire.Define("Room not found")
	ErrRoomFull        = wire.Define("Room is full")
	ErrNotInRoom       = wire.Define("Not in a room")
	ErrTargetNotFound  = wire.Define("Target peer not found")
	ErrOnlyHostState   = wire.Define("Only the host can set state")
	ErrStateRequired   = wire.Define("State data is required")
	ErrStateTooLarge   = wire.Define("State too large")
	ErrOnlyHostClose   = wire.Define("Only the host can close the room")
	ErrTooManyRooms    = wire.Define("Too many rooms on this server")
	ErrClientIDTooLong = wire.Define("clientId too long")
)

// MaxClientIDBytes bounds a clientId. Real clients send 32 hex characters
// (ours) or a 36-character UUID (the relay we replace).
const MaxClientIDBytes = 128

// Defaults for the zero values of Config (main's config table uses them
// too, so each is written once).
const (
	// DefaultMaxMembers is the default bound on a room's maxClients:
	// audience modes run to hundreds, no party game to thousands.
	DefaultMaxMembers = 1000
	// DefaultRecoverFrames and DefaultRecoverBytes bound one slot's
	// recovery window (recover.go).
	DefaultRecoverFrames = 256
	DefaultRecoverBytes  = 256 << 10
)

// LocalID is what this machine calls itself where it has no id (off Fly)
// in what is ours: a hand-off's sender, logs, metric labels, webhooks. On
// the wire (created, the url template's {instance}) it stays empty, as the
// old relay had it.
const LocalID = "local"

// CodeSource hands out candidate room codes.
type CodeSource interface {
	Next() (string, error)
}

// Config is what a Manager needs from the outside.
type Config struct {
	Instance  string        // machine id, sent in created; "" off Fly
	Region    string        // region label, sent in created; "" off Fly
	HostGrace time.Duration // how long a room outlives its host's socket
	Clock     Clock         // nil means RealClock
	Codes     CodeSource
	MaxRooms  int // 0 means unbounded
	// MaxMembers clamps a create's maxClients; 0 means DefaultMaxMembers.
	MaxMembers int
	// Recovery windows per slot (recover.go); zero values mean
	// DefaultRecoverFrames, DefaultRecoverBytes and the host grace (at
	// least a second).
	RecoverFrames int
	RecoverBytes  int
	RecoverAge    time.Duration
	// RecoverRoomBytes bounds a room's windows together, overhead
	// included; 0 means DefaultRecoverRoomBytes.
	RecoverRoomBytes int
	// Events, when set, is told of every room's life (webhooks). It is
	// called with the room's lock held: it must not block or call back.
	Events func(Event)
	// Budget counts what rooms hold (slot history, retained state) in the
	// machine's memory budget; nil counts nothing.
	Budget *budget.Budget
}

// DefaultRecoverRoomBytes is the default bound on a room's recovery
// windows together. A room moves whole in a hand-off, windows included:
// with JSON's escaping (encoding/json writes '<' as \u003c) a window's
// bytes can grow six times in a snapshot, and 6 MiB leaves room for the
// state and 4,004 slots under the 8 MiB hand-off body. It is also what
// one room can hold of a 50 MiB budget: 2%.
const DefaultRecoverRoomBytes = 1 << 20

// Manager owns every room on this machine.
type Manager struct {
	cfg       Config
	mu        sync.RWMutex // guards rooms, transfers, ended
	rooms     map[string]*Room
	transfers *transferLog // transfers taken in or aborted (transfers.go)
	ended     endedLog     // codes whose room ended here lately (ended.go)

	// Atomic.
	live           atomic.Int64                // live members, all rooms (Room.addLiveLocked)
	vacant         atomic.Int64                // bytes of vacant slots' windows, all rooms (recover.go)
	reclaimAfter   atomic.Int64                // no reclaimFor pass for a frame before this (clock's Unix ns)
	staleReclaimer atomic.Pointer[func(int64)] // the server's (SetStaleReclaimer); nil: none

	empties emptyRooms // rooms with no live member, by tier, longest empty first (evict.go); its own lock

	reclaimMu sync.Mutex // held by the one machine-wide pass over windows (reclaim.go); takes rooms only by TryLock

	// Set once at start (SetIssuer); nil: no tickets (ticket.go).
	issuer atomic.Pointer[func(*Room)]
}

// NewManager returns an empty manager.
func NewManager(cfg Config) *Manager {
	cfg = cfg.WithDefaults()
	return &Manager{cfg: cfg, rooms: make(map[string]*Room), transfers: newTransferLog(TransferMemory, MaxTransfers)}
}

// WithDefaults is c as NewManager uses it: every zero (or negative)
// setting that has a default takes it. The others (MaxRooms, HostGrace)
// mean what their zero says.
func (c Config) WithDefaults() Config {
	if c.Clock == nil {
		c.Clock = RealClock{}
	}
	if c.MaxMembers <= 0 {
		c.MaxMembers = DefaultMaxMembers
	}
	if c.RecoverFrames <= 0 {
		c.RecoverFrames = DefaultRecoverFrames
	}
	if c.RecoverBytes <= 0 {
		c.RecoverBytes = DefaultRecoverBytes
	}
	if c.RecoverAge <= 0 {
		c.RecoverAge = max(c.HostGrace, time.Second)
	}
	if c.RecoverRoomBytes <= 0 {
		c.RecoverRoomBytes = DefaultRecoverRoomBytes
	}
	return c
}

// selfID is this machine's id, LocalID when it has none.
func (m *Manager) selfID() string {
	if m.cfg.Instance == "" {
		return LocalID
	}
	return m.cfg.Instance
}

// CreateRequest is a checked create message.
type CreateRequest struct {
	Member     Member
	ClientID   string
	MaxClients float64
	Origin     string
	URL        Template // empty when the host gave none
	Recover    bool     // the host opts in to message recovery
	Tickets    bool     // the host opts in to tickets (ticket.go)
}

// Create makes a room with the caller in slot 0 and sends it created.
// A maxClients above the machine's MaxMembers is clamped to it.
func (m *Manager) Create(req CreateRequest) (*Room, error) {
	if len(req.ClientID) > MaxClientIDBytes {
		return nil, ErrClientIDTooLong
	}
	req.MaxClients = min(req.MaxClients, float64(m.cfg.MaxMembers))
	// The room's and its slot's bytes, before the manager's lock:
	// reserving may free windows in other rooms, or end an empty room
	// (evict.go). Given back unless the room is made.
	if !m.reserveRoom() {
		return nil, ErrOverBudget
	}
	made := false
	defer func() {
		if !made {
			m.cfg.Budget.Add(-(RoomBytes + SlotBytes))
		}
	}()
	m.makePlace()
	var first *Room
	defer func() { first.firstTicket() }() // once m.mu is released: room before manager
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cfg.MaxRooms > 0 && len(m.rooms) >= m.cfg.MaxRooms {
		return nil, ErrTooManyRooms
	}
	code, err := m.freshCodeLocked()
	if err != nil {
		return nil, err
	}
	var resolved string
	if req.URL != "" {
		if resolved, err = req.URL.Resolve(code, m.cfg.Instance); err != nil {
			return nil, err
		}
	}
	key := keyOf(req.ClientID)
	r := &Room{
		m: m, Code: code, MaxClients: req.MaxClients, Origin: req.Origin, URL: resolved,
		history: slotHistory(req.MaxClients),
		slots:   []slot{{index: 0, key: key, member: req.Member, recover: req.Recover, tickets: req.Tickets}},
		byKey:   map[clientKey]int{key: 0},
		next:    1,
		epoch:   newEpoch(),
	}
	r.addLiveLocked(1) // r is not in the map yet: nobody else can reach it
	who := ownerOf(req.Member)
	m.event(Event{Type: EventRoomCreated, Room: code, Owner: who})
	m.event(Event{Type: EventPlayerJoined, Room: code, Index: 0, Owner: who})
	created := wire.CreatedFrame(code, m.cfg.Instance, m.cfg.Region, 0, resolved)
	if req.Recover {
		created = wire.WithRecovery(created, 0, nil)
	}
	req.Member.Send(created)
	m.rooms[code] = r
	made = true
	first = r
	return r, nil
}

// freshCodeLocked draws codes until one is not live here. m.mu must be held.
func (m *Manager) freshCodeLocked() (string, error) {
	for i := range 64 {
		code, err := m.cfg.Codes.Next()
		if err != nil {
			return "", fmt.Errorf("room code: %w", err)
		}
		// A code that ended lately is passed over while others come
		// (its old tickets then never meet a new room: ended.go).
		if _, taken := m.rooms[code]; !taken && (i >= 48 || !m.ended.hasLocked(code, m.cfg.Clock.Now())) {
			return code, nil
		}
	}
	return "", errors.New("room code: no free code after 64 draws")
}

// Join adds mem to the room as clientID, or gives it back the slot that
// clientID already owns. It sends joined (and the retained state) to mem.
func (m *Manager) Join(code, clientID string, mem Member, opt JoinOptions) (*Room, int, error) {
	if len(clientID) > MaxClientIDBytes {
		return nil, 0, ErrClientIDTooLong
	}
	r := m.get(code)
	if r == nil {
		return nil, 0, ErrRoomNotFound
	}
	if opt.Ticket != nil && opt.Ticket.Code == code && InTicket(opt.Ticket, clientID) {
		r.takeTicket(opt.Ticket, nil)
	}
	idx, err := r.join(keyOf(clientID), mem, opt)
	if err != nil {
		return nil, 0, err
	}
	return r, idx, nil
}

func (m *Manager) get(code string) *Room {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.rooms[code]
}

func (m *Manager) remove(r *Room) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rooms[r.Code] == r {
		delete(m.rooms, r.Code)
	}
}

// Held reports whether a room with this code lives here.
func (m *Manager) Held(code string) bool { return m.get(code) != nil }
