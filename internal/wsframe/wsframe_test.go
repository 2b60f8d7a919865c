package wsframe

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestClientFrames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		fin    bool
		opcode byte
		size   int
		header []byte // the bytes before the mask key
	}{
		{"empty ping", true, OpPing, 0, []byte{0x89, 0x80}},
		{"text, more to come", false, OpText, 5, []byte{0x01, 0x85}},
		{"125 bytes: 7-bit length", true, OpBinary, 125, []byte{0x82, 0x80 | 125}},
		{"126 bytes: 16-bit length", true, OpText, 126, []byte{0x81, 0x80 | 126, 0, 126}},
		{"65535 bytes: 16-bit length", true, OpText, 65535, []byte{0x81, 0x80 | 126, 0xFF, 0xFF}},
		{"65536 bytes: 64-bit length", false, OpContinuation, 65536, []byte{0x00, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := bytes.Repeat([]byte("party"), tt.size/5+1)[:tt.size]
			got := Client(tt.fin, tt.opcode, payload)
			if !bytes.HasPrefix(got, tt.header) {
				t.Fatalf("Client(%v, %#x, %d bytes) starts % x, want % x", tt.fin, tt.opcode, tt.size, got[:len(tt.header)], tt.header)
			}
			rest := got[len(tt.header):]
			if len(rest) != 4+tt.size || !bytes.Equal(rest[:4], MaskKey[:]) {
				t.Fatalf("after the header: %d bytes, key % x; want %d, % x", len(rest), rest[:4], 4+tt.size, MaskKey)
			}
			for i, c := range rest[4:] {
				if c^MaskKey[i%4] != payload[i] {
					t.Fatalf("byte %d unmasks to %#x, want %#x", i, c^MaskKey[i%4], payload[i])
				}
			}
		})
	}
}

// RFC 6455, section 5.7: a masked "Hello" is 0x81 0x85, the key, and the
// payload XORed with it.
func TestClientMatchesTheRFCExample(t *testing.T) {
	t.Parallel()
	got := Client(true, OpText, []byte("Hello"))
	want := []byte{0x81, 0x85, 9, 8, 7, 6, 'H' ^ 9, 'e' ^ 8, 'l' ^ 7, 'l' ^ 6, 'o' ^ 9}
	if !bytes.Equal(got, want) {
		t.Fatalf("Client(Hello) = % x, want % x", got, want)
	}
	if n := binary.BigEndian.Uint16(Client(true, OpText, make([]byte, 300))[2:4]); n != 300 {
		t.Fatalf("16-bit length reads %d, want 300", n)
	}
}
