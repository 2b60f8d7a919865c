package rooms

import (
	enchex "encoding/hex"
	"encoding/json"
	"errors"

	"github.com/party-sockets/party-sockets/closecode"
	"github.com/party-sockets/party-sockets/internal/wire"
)

// Hand-off (docs/deploys.md): a stopping machine moves every room it
// holds to a sibling. Move holds the room's lock for the whole transfer,
// so nothing happens in the room meanwhile (a message waits, it is never
// taken by both machines); once the sibling has the room, it ends here
// without room.closed (it lives on there) and its members are closed with
// 1012, on which every client reconnects, to find it on the sibling.

// SnapshotVersion is the version of the Snapshot format.
const SnapshotVersion = 1

// Snapshot is a whole room as it travels between machines: the room, every
// slot (live or not), the retained state, the host grace left and each
// slot's recovery window.
type Snapshot struct {
	Version    int             `json:"v"`
	Transfer   string          `json:"transfer"` // the sender's id for this move: a retry carries the same
	From       string          `json:"from"`     // the sending machine: the id it signs with (LocalID off Fly)
	Code       string          `json:"code"`
	MaxClients float64         `json:"maxClients"`
	Origin     string          `json:"origin"`
	URL        string          `json:"url,omitempty"`
	Next       int             `json:"next"`   // the next slot index to hand out
	Leaves     uint64          `json:"leaves"` // the room's leave counter
	State      json.RawMessage `json:"state,omitempty"`
	// GraceMs is the host grace left in milliseconds when the host was
	// away, -1 when the host was live (the receiver starts a whole grace:
	// the host's socket is closed by the move).
	GraceMs int64          `json:"graceMs"`
	Slots   []SlotSnapshot `json:"slots"`
	// The room's epoch and version (tickets, docs/protocol.md "One owner"); absent
	// from the previous release's snapshots: the receiver draws an epoch.
	Epoch       uint64 `json:"epoch,omitempty"`
	FromEpoch   uint64 `json:"fromEpoch,omitempty"`
	RoomVersion uint64 `json:"roomVersion,omitempty"`
	FromVersion uint64 `json:"fromVersion,omitempty"` // the newest ticket of FromEpoch taken in
}

// SlotSnapshot is one remembered slot. Key is the SHA-256 of the owner's
// clientId, never the clientId.
type SlotSnapshot struct {
	Index   int             `json:"index"`
	Key     string          `json:"key"`
	Live    bool            `json:"live"`
	Left    uint64          `json:"left"`
	Recover bool            `json:"recover"`
	Seq     uint64          `json:"seq"`
	Window  []FrameSnapshot `json:"window,omitempty"`
	// Restored: the slot came from a ticket and its owner has not been
	// back; Key is then the ticket's 16-byte prefix, zero-padded.
	Restored bool `json:"restored,omitempty"`
}

// FrameSnapshot is one frame of a recovery window, as it was sent.
type FrameSnapshot struct {
	Seq   uint64 `json:"seq"`
	AgeMs int64  `json:"ageMs"`
	Frame string `json:"frame"`
}

// Errors of the hand-off, in the old relay's shape (docs/deploys.md).
var (
	ErrCodeTaken = wire.Define("Room code taken")
	// ErrRoomMoved is never sent: a member's call that gets it is
	// forwarded to the room's new machine.
	ErrRoomMoved  = errors.New("Room moved")
	ErrOverBudget = wire.Define("Over memory budget")
	// ErrTransferAborted: the sender kept the room; its snapshot came late.
	ErrTransferAborted = wire.Define("Transfer aborted")
	// ErrHandoffFormat refuses a snapshot this machine could not have
	// made; sent with what is wrong ("Invalid hand-off: url").
	ErrHandoffFormat = wire.Define("Invalid hand-off")
)

// Move hands the room with code over to machine to. send delivers the snapshot to the
// sibling and returns nil once the sibling holds the room; it is called
// with the room's lock held, so it must not touch this room. It may drop
// the recovery windows from the snapshot (a room too large to send whole:
// its members then resync from the state). On success the
// room is gone from here and its members are closed with 1012; on failure
// it goes on here as if nothing happened.
func (m *Manager) Move(code, transfer, to string, send func(*Snapshot) error) error {
	r := m.get(code)
	if r == nil {
		return ErrRoomNotFound
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrRoomNotFound
	}
	snap := r.snapshotLocked(transfer)
	if err := send(snap); err != nil {
		return err
	}
	r.moved = true
	r.m.event(Event{Type: EventRoomMoved, Room: r.Code, To: to})
	// The members stay recorded: a call of theirs that waited for the
	// lock gets ErrRoomMoved, and the server forwards what it carried.
	for i := range r.slots {
		if mem := r.slots[i].member; mem != nil {
			mem.Close(closecode.EndRestart)
		}
	}
	r.releaseLocked()
	return nil
}

// Abort drops a room that transfer brought here from machine sender ("":
// a sender of the previous release, which does not sign), if nobody has
// joined it since: the sender could not learn that it arrived and kept
// the room, so this copy must not serve. The transfer is also refused if
// it arrives later (an abort can overtake its own transfer): an error
// (ErrTooManyTransfers) says that could not be remembered. It reports
// whether a room was dropped.
func (m *Manager) Abort(code, transfer, sender string) (bool, error) {
	if transfer == "" {
		return false, nil
	}
	m.mu.Lock()
	err := m.transfers.addLocked(transfer, true, m.cfg.Clock.Now())
	m.mu.Unlock()
	r := m.get(code)
	if r == nil {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.transfer == "" || r.transfer != transfer || (sender != "" && sender != r.sender) || r.live > 0 {
		return false, err
	}
	r.releaseLocked()
	return true, err
}

// ErrNotFromSender refuses a forward into a room that did not come here
// from the machine forwarding (or was made here).
var ErrNotFromSender = wire.Define("Room not handed over by this machine")

// Codes returns the codes of every room held here.
func (m *Manager) Codes() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.rooms))
	for code := range m.rooms {
		out = append(out, code)
	}
	return out
}

func (r *Room) snapshotLocked(transfer string) *Snapshot {
	now := r.m.cfg.Clock.Now()
	s := &Snapshot{Version: SnapshotVersion, Transfer: transfer, From: r.m.selfID(), Code: r.Code,
		MaxClients: r.MaxClients, Origin: r.Origin, URL: r.URL, Next: r.next, Leaves: r.leaves, GraceMs: -1,
		Slots: make([]SlotSnapshot, len(r.slots)), Epoch: r.epoch, FromEpoch: r.fromEpoch, RoomVersion: r.version.Load(),
		FromVersion: r.fromVersion}
	if r.state != nil {
		s.State = json.RawMessage(wire.StateData(r.state))
	}
	if r.grace != nil {
		s.GraceMs = max(0, r.graceAt.Sub(now).Milliseconds())
	}
	for i := range r.slots {
		sl := &r.slots[i]
		out := SlotSnapshot{Index: sl.index, Key: enchex.EncodeToString(sl.key[:]), Live: sl.member != nil,
			Left: sl.left, Recover: sl.recover, Seq: sl.seq, Restored: sl.restored}
		for _, e := range sl.win.entries {
			out.Window = append(out.Window, FrameSnapshot{Seq: e.seq, AgeMs: now.Sub(e.at).Milliseconds(), Frame: string(e.frame)})
		}
		s.Slots[i] = out
	}
	return s
}
