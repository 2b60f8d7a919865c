package rooms

// Events of a room's life, for the game's backend (webhooks). No clientId
// ever appears in one.
const (
	EventRoomCreated  = "room.created"
	EventRoomClosed   = "room.closed"
	EventPlayerJoined = "player.joined"
	EventPlayerLeft   = "player.left"
	// EventRoomMoved: the room was handed to another machine and lives on
	// there (README "Deploys"); no room.closed follows here.
	EventRoomMoved = "room.moved"
)

// Why a room ended (room.closed's reason).
const (
	EndHostClosed   = "host_closed"
	EndGraceExpired = "grace_expired"
	EndEmpty        = "empty"
	EndServerClosed = "server_closed"
)

// Event is one thing that happened in a room.
type Event struct {
	Type   string
	Room   string
	Index  int    // the slot, for player events
	Reason string // for room.closed
}

func (m *Manager) event(e Event) {
	if m.cfg.Events != nil {
		m.cfg.Events(e)
	}
}

// ServerFrom is the slot a message from the game's backend comes from.
const ServerFrom = -1

// Room returns the live room with this code, or nil.
func (m *Manager) Room(code string) *Room { return m.get(code) }

// ServerSend relays a message frame from the game's backend to every live
// member, or to slot to (a vacant slot that recovers keeps it). It returns
// how many live sockets got it.
func (r *Room) ServerSend(to *uint64, frame []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, ErrRoomNotFound
	}
	return r.relayLocked(ServerFrom, to, frame)
}

// ServerSetState retains a snapshot set by the game's backend, as the host
// would, and pushes it to every live member.
func (r *Room) ServerSetState(data []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrRoomNotFound
	}
	return r.setStateLocked(ServerFrom, data)
}

// ServerClose ends the room at the backend's request, as close_room does.
func (r *Room) ServerClose() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrRoomNotFound
	}
	r.endLocked(CloseRoomClosed, "room closed", EndServerClosed)
	return nil
}
