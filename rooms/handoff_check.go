package rooms

import (
	"bytes"
	enchex "encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on a snapshot beyond what the receiver's own configuration bounds.
const (
	maxTransferBytes = 64
	maxCodeBytes     = 32
	maxOriginBytes   = 300
	maxAgeMs         = 1 << 32 // about 50 days: longer than any grace or window, short of overflowing a Duration
)

// SnapshotBounds are the most slots, and frames in one slot's window, that
// a snapshot this machine takes can hold: what a hand-off body is
// counted against before it is decoded.
func (m *Manager) SnapshotBounds() (slots, frames int) {
	return slotHistory(float64(m.cfg.MaxMembers)), m.cfg.RecoverFrames
}

// CheckSnapshot refuses a snapshot that Import would refuse for its
// shape, without changing anything.
func (m *Manager) CheckSnapshot(s *Snapshot) error { return m.checkSnapshot(s) }

// checkSnapshot refuses a snapshot that this machine could not have made
// itself: every field bounded and valid UTF-8, the url one create would
// take, every frame one this server sends.
func (m *Manager) checkSnapshot(s *Snapshot) error {
	bad := func(why string) error { return ErrHandoffFormat.With(why) }
	switch {
	case s.Version != SnapshotVersion:
		return bad("unknown version")
	case s.Transfer == "" || !idShaped(s.Transfer):
		return bad("transfer")
	case s.From != "" && !idShaped(s.From): // a machine id, which the receiver logs
		return bad("from")
	case !codeShaped(s.Code):
		return bad("code")
	case math.IsNaN(s.MaxClients) || math.IsInf(s.MaxClients, 0) || s.MaxClients < 1:
		return bad("maxClients")
	case len(s.Origin) > maxOriginBytes || !utf8.ValidString(s.Origin):
		return bad("origin")
	case !resolvedURL(s.URL):
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
		if len(s.State) > 4*MaxStateBytes || !json.Valid(s.State) || !utf8.Valid(s.State) {
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

// resolvedURL reports whether u is a url create could have resolved: empty,
// or a template without placeholders that create takes (size, characters)
// and that resolves to itself, an absolute https URL.
func resolvedURL(u string) bool {
	if u == "" {
		return true
	}
	if strings.ContainsAny(u, "{}") || !utf8.ValidString(u) {
		return false
	}
	t, err := ParseTemplate(u)
	if err != nil {
		return false
	}
	got, err := t.Resolve("", "")
	return err == nil && got == u
}

// checkWindow bounds a slot's window by the receiver's own bounds, and
// holds each frame to what deliverLocked keeps: a frame of this server,
// numbered with its seq.
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
		case !keptFrame(f.Frame, f.Seq):
			return errors.New("window frame")
		}
	}
	return nil
}

// keptPrefixes are how every frame a window keeps begins (internal/wire).
var keptPrefixes = []string{`{"type":"message","from":`, `{"type":"state","data":`,
	`{"type":"peer_joined","index":`, `{"type":"peer_left","index":`}

// keptFrame reports whether f is a frame deliverLocked could have kept as
// number seq: one of the room traffic frames, with ,"seq":<seq> last, valid
// JSON and UTF-8.
func keptFrame(f string, seq uint64) bool {
	known := false
	for _, p := range keptPrefixes {
		known = known || strings.HasPrefix(f, p)
	}
	return known && strings.HasSuffix(f, `,"seq":`+strconv.FormatUint(seq, 10)+`}`) &&
		utf8.ValidString(f) && json.Valid([]byte(f))
}

// idShaped reports whether s could be a machine or transfer id: 1 to 64
// printable ASCII characters, no spaces.
func idShaped(s string) bool {
	if len(s) == 0 || len(s) > maxTransferBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
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
