package rooms

import (
	"bytes"
	enchex "encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/party-sockets/party-sockets/closecode"
)

// Hand-off (README "Deploys"): a stopping machine moves every room it
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
	From       string          `json:"from"`     // the sending machine
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
}

// FrameSnapshot is one frame of a recovery window, as it was sent.
type FrameSnapshot struct {
	Seq   uint64 `json:"seq"`
	AgeMs int64  `json:"ageMs"`
	Frame string `json:"frame"`
}

// Errors of the hand-off, in the contract's shape.
var (
	ErrCodeTaken  = errors.New("Room code taken")
	ErrRoomMoved  = errors.New("Room moved")
	ErrOverBudget = errors.New("Over memory budget")
	// ErrTransferAborted: the sender kept the room; its snapshot came late.
	ErrTransferAborted = errors.New("Transfer aborted")
	errHandoffFormat   = errors.New("Invalid hand-off")
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
			mem.Close(int(closecode.Restarting), closecode.Restarting.Reason())
		}
	}
	r.releaseLocked()
	return nil
}

// Abort drops a room that transfer brought here, if nobody has joined it
// since: the sender could not learn that it arrived and kept the room, so
// this copy must not serve. The transfer is also refused if it arrives
// later (an abort can overtake its own transfer). It reports whether a
// room was dropped.
func (m *Manager) Abort(code, transfer string) bool {
	if transfer == "" {
		return false
	}
	m.mu.Lock()
	if len(m.aborted) >= maxAborted {
		clear(m.aborted)
	}
	m.aborted[transfer] = struct{}{}
	m.mu.Unlock()
	r := m.get(code)
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.transfer == "" || r.transfer != transfer || r.live > 0 {
		return false
	}
	r.releaseLocked()
	return true
}

// Forwarded relays a message frame that slot from sent to the room's old
// machine while the room was moving (its socket there is closed): to slot
// to, or to every other slot, as Send would.
func (r *Room) Forwarded(from int, to *uint64, frame []byte) (int, error) {
	if from < 0 {
		return 0, ErrNotInRoom
	}
	return r.relayFrom(from, to, frame)
}

// ForwardedState retains a state the host set on the old machine while
// the room was moving.
func (r *Room) ForwardedState(data []byte) error { return r.stateFrom(0, data) }

// ForwardedClose ends the room as the host's close_room, sent to the old
// machine while the room was moving, would have.
func (r *Room) ForwardedClose() error { return r.closeFor(EndHostClosed) }

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
	s := &Snapshot{Version: SnapshotVersion, Transfer: transfer, From: r.m.cfg.Instance, Code: r.Code,
		MaxClients: r.MaxClients, Origin: r.Origin, URL: r.URL, Next: r.next, Leaves: r.leaves, GraceMs: -1,
		Slots: make([]SlotSnapshot, len(r.slots))}
	if r.state != nil {
		s.State = stateData(r.state)
	}
	if r.grace != nil {
		s.GraceMs = max(0, r.graceAt.Sub(now).Milliseconds())
	}
	for i := range r.slots {
		sl := &r.slots[i]
		out := SlotSnapshot{Index: sl.index, Key: enchex.EncodeToString(sl.key[:]), Live: sl.member != nil,
			Left: sl.left, Recover: sl.recover, Seq: sl.seq}
		for _, e := range sl.win.entries {
			out.Window = append(out.Window, FrameSnapshot{Seq: e.seq, AgeMs: now.Sub(e.at).Milliseconds(), Frame: string(e.frame)})
		}
		s.Slots[i] = out
	}
	return s
}

// stateData is the data of a retained state frame.
func stateData(frame []byte) json.RawMessage {
	const prefix = len(`{"type":"state","data":`)
	return json.RawMessage(frame[prefix : len(frame)-1])
}

// Import takes a room handed over by a sibling. It refuses a code held
// here by another room (ErrCodeTaken) and takes a retry of a transfer it
// already took as done. Every slot arrives vacant: its owner reconnects.
// The room is checked whole before anything changes: a forged snapshot
// can make a room nobody knows the clientIds of, but never touch one that
// exists.
func (m *Manager) Import(s *Snapshot) error {
	if err := m.checkSnapshot(s); err != nil {
		return err
	}
	now := m.cfg.Clock.Now()
	r := &Room{m: m, Code: s.Code, MaxClients: min(s.MaxClients, float64(m.cfg.MaxMembers)), Origin: s.Origin, URL: s.URL,
		next: s.Next, leaves: s.Leaves, byKey: make(map[clientKey]int, len(s.Slots)), transfer: s.Transfer}
	r.history = slotHistory(r.MaxClients)
	cost := int64(len(s.Slots) * SlotBytes)
	var wasLive []int
	for _, in := range s.Slots {
		sl := slot{index: in.Index, left: in.Left, recover: in.Recover, seq: in.Seq}
		enchex.Decode(sl.key[:], []byte(in.Key))
		for _, f := range in.Window {
			sl.win.push(entry{seq: f.Seq, frame: []byte(f.Frame), at: now.Add(-time.Duration(f.AgeMs) * time.Millisecond)})
		}
		cost += int64(sl.win.cost)
		r.byKey[sl.key] = sl.index
		r.slots = append(r.slots, sl)
		if in.Live {
			wasLive = append(wasLive, in.Index)
		}
	}
	if s.State != nil {
		var buf bytes.Buffer
		json.Compact(&buf, s.State) // checked valid
		r.state = StateFrame(buf.Bytes())
		cost += int64(len(r.state))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, gone := m.aborted[s.Transfer]; gone {
		return ErrTransferAborted
	}
	if old := m.rooms[s.Code]; old != nil {
		if old.transfer == s.Transfer {
			return nil // a retry of a transfer already taken
		}
		return ErrCodeTaken
	}
	if m.cfg.MaxRooms > 0 && len(m.rooms) >= m.cfg.MaxRooms {
		return ErrTooManyRooms
	}
	if b := m.cfg.Budget; b != nil && b.Used()+cost > b.Limit() {
		return ErrOverBudget
	}
	m.cfg.Budget.Add(cost)
	// The one place a room is locked under the manager's lock (the order
	// is room, then manager): r is not in the map yet, so nobody else can
	// hold or wait for its lock.
	r.mu.Lock()
	defer r.mu.Unlock()
	r.importedLocked(now)
	// The members that were live have left, as far as this room knows:
	// the slots that recover are told so, in order, as after any blip.
	for _, idx := range wasLive {
		r.leaves++
		r.slotLocked(idx).left = r.leaves
		r.broadcastLocked(idx, peerFrame("peer_left", idx))
	}
	grace := m.cfg.HostGrace
	if s.GraceMs >= 0 {
		grace = min(grace, time.Duration(s.GraceMs)*time.Millisecond)
	}
	r.armGraceLocked(grace)
	m.rooms[s.Code] = r
	return nil
}

// Limits on a snapshot beyond what the receiver's own configuration bounds.
const (
	maxTransferBytes = 64
	maxCodeBytes     = 32
	maxOriginBytes   = 300
	maxAgeMs         = 1 << 32 // about 50 days: longer than any grace or window, short of overflowing a Duration
	maxAborted       = 1024    // aborted transfer ids remembered; past it, forgotten
)

// checkSnapshot refuses a snapshot that this machine could not have made
// itself: every field bounded, every frame valid JSON.
func (m *Manager) checkSnapshot(s *Snapshot) error {
	bad := func(why string) error { return fmt.Errorf("%w: %s", errHandoffFormat, why) }
	switch {
	case s.Version != SnapshotVersion:
		return bad("unknown version")
	case s.Transfer == "" || len(s.Transfer) > maxTransferBytes:
		return bad("transfer")
	case len(s.From) > maxTransferBytes: // a machine id, which the receiver logs
		return bad("from")
	case !codeShaped(s.Code):
		return bad("code")
	case math.IsNaN(s.MaxClients) || math.IsInf(s.MaxClients, 0) || s.MaxClients < 1:
		return bad("maxClients")
	case len(s.Origin) > maxOriginBytes || !utf8.ValidString(s.Origin):
		return bad("origin")
	case len(s.URL) > MaxURLBytes || !utf8.ValidString(s.URL):
		return bad("url")
	case s.Next < 1 || s.Next > math.MaxInt32:
		return bad("next")
	case len(s.Slots) == 0 || s.Slots[0].Index != 0:
		return bad("no host slot")
	case len(s.Slots) > slotHistory(min(s.MaxClients, float64(m.cfg.MaxMembers))):
		return bad("too many slots")
	case s.GraceMs < -1 || s.GraceMs > maxAgeMs:
		return bad("graceMs")
	}
	if s.State != nil {
		if len(s.State) > 4*MaxStateBytes || !json.Valid(s.State) {
			return bad("state")
		}
		var buf bytes.Buffer
		json.Compact(&buf, s.State)
		if buf.Len() > MaxStateBytes {
			return ErrStateTooLarge
		}
	}
	keys := make(map[string]bool, len(s.Slots))
	for i, sl := range s.Slots {
		if (i > 0 && sl.Index <= s.Slots[i-1].Index) || sl.Index >= s.Next {
			return bad("slot index")
		}
		if k, err := enchex.DecodeString(sl.Key); err != nil || len(k) != 32 || keys[sl.Key] {
			return bad("slot key")
		}
		keys[sl.Key] = true
		if err := m.checkWindow(sl); err != nil {
			return bad(err.Error())
		}
	}
	return nil
}

// checkWindow bounds a slot's window by the receiver's own bounds.
func (m *Manager) checkWindow(sl SlotSnapshot) error {
	if len(sl.Window) > 0 && !sl.Recover {
		return errors.New("window without recover")
	}
	if len(sl.Window) > m.cfg.RecoverFrames {
		return errors.New("window too long")
	}
	total := 0
	for i, f := range sl.Window {
		total += len(f.Frame)
		switch {
		case total > m.cfg.RecoverBytes:
			return errors.New("window too large")
		case f.Seq == 0 || f.Seq > sl.Seq || (i > 0 && f.Seq <= sl.Window[i-1].Seq):
			return errors.New("window seq")
		case f.AgeMs < 0 || f.AgeMs > maxAgeMs:
			return errors.New("window age")
		case len(f.Frame) < 2 || f.Frame[0] != '{' || !json.Valid([]byte(f.Frame)):
			return errors.New("window frame")
		}
	}
	return nil
}

// codeShaped reports whether s could be a room code: 1 to 32 ASCII letters
// and digits.
func codeShaped(s string) bool {
	if len(s) == 0 || len(s) > maxCodeBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}
