package wire

import (
	"strconv"
	"unicode/utf8"
)

// Frames are built by hand with append: each is encoded once and the same
// bytes go to every receiver. Field order follows the relay we replace.

// CreatedFrame is the answer to a create: the room, the machine that holds
// it, the host's slot and the controller url ("" for none).
func CreatedFrame(code, instance, region string, index int, url string) []byte {
	b := make([]byte, 0, 96+len(url)+len(instance))
	b = append(b, `{"type":"created","room":`...)
	b = AppendString(b, code)
	b = append(b, `,"instance":`...)
	b = AppendString(b, instance)
	b = append(b, `,"region":`...)
	b = AppendString(b, region)
	b = append(b, `,"index":`...)
	b = strconv.AppendInt(b, int64(index), 10)
	b = appendURL(b, url)
	return append(b, '}')
}

// JoinedFrame is the answer to a join: the slot and the live peers.
func JoinedFrame(code string, index int, peers []int, url string) []byte {
	b := make([]byte, 0, 64+len(url)+4*len(peers))
	b = append(b, `{"type":"joined","room":`...)
	b = AppendString(b, code)
	b = append(b, `,"index":`...)
	b = strconv.AppendInt(b, int64(index), 10)
	b = append(b, `,"peers":[`...)
	for i, p := range peers {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(p), 10)
	}
	b = append(b, ']')
	b = appendURL(b, url)
	return append(b, '}')
}

// The kinds of PeerFrame.
const (
	PeerJoined = "peer_joined"
	PeerLeft   = "peer_left"
)

// PeerFrame tells the room that slot index came (PeerJoined) or went
// (PeerLeft).
func PeerFrame(kind string, index int) []byte {
	b := make([]byte, 0, 40)
	b = append(b, `{"type":"`...)
	b = append(b, kind...)
	b = append(b, `","index":`...)
	b = strconv.AppendInt(b, int64(index), 10)
	return append(b, '}')
}

// MessageFrame encodes a relayed message. data must be compact, valid JSON;
// nil means the sender sent no data and the field is omitted.
func MessageFrame(from int, data []byte) []byte {
	b := make([]byte, 0, 40+len(data))
	b = append(b, `{"type":"message","from":`...)
	b = strconv.AppendInt(b, int64(from), 10)
	if data != nil {
		b = append(b, `,"data":`...)
		b = append(b, data...)
	}
	return append(b, '}')
}

const statePrefix = `{"type":"state","data":`

// StateFrame encodes a retained state snapshot. data must be compact JSON.
func StateFrame(data []byte) []byte {
	b := make([]byte, 0, len(statePrefix)+1+len(data))
	b = append(b, statePrefix...)
	b = append(b, data...)
	return append(b, '}')
}

// StateData is the data of a frame StateFrame made.
func StateData(frame []byte) []byte { return frame[len(statePrefix) : len(frame)-1] }

// PongFrame is the answer to a client's {"type":"ping"}: an app-level
// heartbeat for clients that cannot send WebSocket pings (browsers). It goes
// to the pinging socket alone and is never numbered. Each call returns new
// bytes, so a writer that appends to a frame cannot change another's.
func PongFrame() []byte { return []byte(`{"type":"pong"}`) }

// ErrorFrame encodes {"type":"error","message":...} with err's text.
func ErrorFrame(err error) []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"type":"error","message":`...)
	b = AppendString(b, err.Error())
	return append(b, '}')
}

// WithSeq is frame (a JSON object) with ,"seq":n before its closing brace:
// a frame numbered for a slot that recovers.
func WithSeq(frame []byte, seq uint64) []byte {
	b := make([]byte, 0, len(frame)+24)
	b = append(b, frame[:len(frame)-1]...)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	return append(b, '}')
}

// WithRecovery adds the recovery fields to a created or joined frame,
// which it may reuse: "seq" always, "recovered" when recovered is not nil
// (the join asked to recover from a seq).
func WithRecovery(frame []byte, seq uint64, recovered *bool) []byte {
	b := append(frame[:len(frame)-1:len(frame)-1], `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	if recovered != nil {
		b = append(b, `,"recovered":`...)
		b = strconv.AppendBool(b, *recovered)
	}
	return append(b, '}')
}

func appendURL(b []byte, url string) []byte {
	if url == "" {
		return b
	}
	b = append(b, `,"url":`...)
	return AppendString(b, url)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
