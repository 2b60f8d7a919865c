// Package wsframe writes raw WebSocket frames (RFC 6455, section 5.2) as a
// client sends them, for the tools and tests that must send what no
// library would: endless continuation frames, pings in a tight loop, a
// length that lies. It imports no testing code, so commands use it too.
package wsframe

// Opcodes of RFC 6455, section 5.2.
const (
	OpContinuation byte = 0x0
	OpText         byte = 0x1
	OpBinary       byte = 0x2
	OpClose        byte = 0x8
	OpPing         byte = 0x9
	OpPong         byte = 0xA
)

// MaskKey is the key every frame of Client is masked with. A server must
// accept any key, so a fixed one keeps the bytes reproducible.
var MaskKey = [4]byte{9, 8, 7, 6}

// Client encodes one masked client frame: fin, opcode and payload, with
// the shortest length encoding that fits.
func Client(fin bool, opcode byte, payload []byte) []byte {
	b0 := opcode & 0x0F
	if fin {
		b0 |= 0x80
	}
	b := make([]byte, 0, 14+len(payload))
	b = append(b, b0)
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		for i := 7; i >= 0; i-- {
			b = append(b, byte(uint64(n)>>(8*i)))
		}
	}
	b = append(b, MaskKey[:]...)
	for i, c := range payload {
		b = append(b, c^MaskKey[i%4])
	}
	return b
}
