package server

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/party-sockets/party-sockets/internal/wire"
	"github.com/party-sockets/party-sockets/rooms"
)

// Decoding a hand-off body within bounds (docs/deploys.md, "Only
// siblings"). json.Unmarshal builds a struct for every element of an
// array before anything is checked: 8 MiB of {"slots":[{},{},...]} was
// 2.8 million slots of 80 bytes, 649 MB of peak RSS (issue 20). So the
// body is counted first, without building anything, and refused when it
// holds more slots or frames than this machine takes.

var (
	errTooManySlots  = rooms.ErrHandoffFormat.With("too many slots")
	errWindowTooLong = rooms.ErrHandoffFormat.With("window too long")
)

// snapshotCounts is what the count before the decode found.
type snapshotCounts struct {
	slots, frames int // every slot, and every frame of their windows
}

// scanSnapshot counts the slots, and the frames of their windows, that
// json.Unmarshal would build of body into a rooms.Snapshot, and refuses
// more than maxSlots slots in all, or a window of more than maxFrames. It
// matches keys as encoding/json does (any case, escapes undone), and
// counts every occurrence of a repeated key. body that is not a JSON
// object of valid UTF-8 is refused.
func scanSnapshot(body []byte, maxSlots, maxFrames int) (snapshotCounts, error) {
	var c snapshotCounts
	p, err := wire.CheckObject(body)
	switch {
	case err == wire.ErrNotObject:
		return c, wire.ErrInvalidJSON
	case err != nil:
		// Invalid UTF-8 too: encoding/json would turn it into U+FFFD in
		// strings and keep it in the state, which is not what was sent.
		return c, err
	}
	err = wire.EachMember(body, p, func(key, val []byte) error {
		if val[0] != '[' || !keyIs(key, "slots") {
			return nil
		}
		return wire.EachElement(val, func(slot []byte) error {
			if c.slots++; c.slots > maxSlots {
				return errTooManySlots
			}
			if slot[0] != '{' {
				return nil
			}
			return wire.EachMember(slot, 0, func(key, val []byte) error {
				if val[0] != '[' || !keyIs(key, "window") {
					return nil
				}
				n := 0
				wire.EachElement(val, func([]byte) error { n++; return nil })
				if n > maxFrames {
					return errWindowTooLong
				}
				c.frames += n
				return nil
			})
		})
	})
	return c, err
}

// keyIs reports whether the raw JSON string key names field as
// encoding/json matches a struct field's name: exactly or folded.
func keyIs(key []byte, field string) bool {
	s, ok := wire.String(key)
	return ok && strings.EqualFold(s, field)
}

// decodeSnapshot counts body (scanSnapshot) and, within the bounds,
// decodes it.
func decodeSnapshot(body []byte, maxSlots, maxFrames int) (*rooms.Snapshot, snapshotCounts, error) {
	c, err := scanSnapshot(body, maxSlots, maxFrames)
	if err != nil {
		return nil, c, err
	}
	var snap rooms.Snapshot
	if err := json.Unmarshal(body, &snap); err != nil {
		return nil, c, wire.ErrInvalidJSON
	}
	return &snap, c, nil
}

// encodeSnapshot is a snapshot as it goes on the wire. HTML characters in
// frames stay as they are (json.Marshal would make each of <, > and & six
// bytes): a hand-off never reaches a browser.
func encodeSnapshot(snap *rooms.Snapshot) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(snap); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
