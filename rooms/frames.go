package rooms

import (
	"strconv"
	"unicode/utf8"
)

// Frames are built by hand with append: each is encoded once and the same
// bytes go to every receiver. Field order follows the relay we replace.

func createdFrame(code, instance, region string, index int, url string) []byte {
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

func joinedFrame(code string, index int, peers []int, url string) []byte {
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

func peerFrame(kind string, index int) []byte {
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

// StateFrame encodes a retained state snapshot. data must be compact JSON.
func StateFrame(data []byte) []byte {
	b := make([]byte, 0, 24+len(data))
	b = append(b, `{"type":"state","data":`...)
	b = append(b, data...)
	return append(b, '}')
}

func appendURL(b []byte, url string) []byte {
	if url == "" {
		return b
	}
	b = append(b, `,"url":`...)
	return AppendString(b, url)
}

const hex = "0123456789abcdef"

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
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
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
