package rooms

// Events of a room's life, for the game's backend (webhooks). No clientId
// ever appears in one.
const (
	EventRoomCreated  = "room.created"
	EventRoomClosed   = "room.closed"
	EventPlayerJoined = "player.joined"
	EventPlayerLeft   = "player.left"
	// EventRoomMoved: the room was handed to another machine and lives on
	// there (docs/deploys.md); no room.closed follows here.
	EventRoomMoved = "room.moved"
	// EventRoomRestored: the room was rebuilt here from a ticket after its
	// machine was lost (docs/protocol.md "Crash-proof rooms"); Index is the
	// presenter's slot.
	EventRoomRestored = "room.restored"
)

// Why a room ended (room.closed's reason).
const (
	EndHostClosed   = "host_closed"
	EndGraceExpired = "grace_expired"
	EndEmpty        = "empty"
	EndServerClosed = "server_closed"
	EndEvicted      = "evicted" // a create needed its place (MAX_ROOMS, the budget): the empty room first in line (evict.go)
)

// Event is one thing that happened in a room.
type Event struct {
	Type   string
	Room   string
	Index  int    // the slot, for player events
	Reason string // for room.closed
	To     string // for room.moved: the machine that took the room
	// Owner is who caused the event: the Owned member that created,
	// joined, left or restored the room; "" for room.closed and
	// room.moved. Webhooks count only player events against their owner.
	Owner string
}

func (m *Manager) event(e Event) {
	if m.cfg.Events != nil {
		m.cfg.Events(e)
	}
}

// Room returns the live room with this code, or nil.
func (m *Manager) Room(code string) *Room { return m.get(code) }
