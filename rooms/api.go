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
	To     string // for room.moved: the machine that took the room
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
	return r.relayFrom(ServerFrom, to, frame)
}

// ServerSetState retains a snapshot set by the game's backend, as the host
// would, and pushes it to every live member.
func (r *Room) ServerSetState(data []byte) error { return r.stateFrom(ServerFrom, data) }

// ServerClose ends the room at the backend's request, as close_room does.
func (r *Room) ServerClose() error { return r.closeFor(EndServerClosed) }

// relayFrom relays frame as slot from (ServerFrom: the backend) sent it,
// with no socket of from's to check: the backend's calls, and what the
// old machine forwards after a hand-off.
func (r *Room) relayFrom(from int, to *uint64, frame []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return 0, ErrRoomNotFound
	case from >= r.next:
		return 0, ErrNotInRoom
	}
	return r.relayLocked(from, to, frame)
}

// stateFrom retains a state pushed to every slot but skip.
func (r *Room) stateFrom(skip int, data []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrRoomNotFound
	}
	return r.setStateLocked(skip, data)
}

// closeFor ends the room with 4001; why is what webhooks see.
func (r *Room) closeFor(why string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrRoomNotFound
	}
	r.endLocked(why)
	return nil
}
