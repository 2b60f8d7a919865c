package server

import (
	"strings"
	"testing"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// Frames at every length boundary of the WebSocket header (7-bit, 16-bit
// and 64-bit lengths) and of the copy-or-reference cut, sent in one burst
// so they share batches, then a close: a real client reads every frame
// whole and in order, and the close comes last.
func TestFrameLengthBoundariesAndCloseAfterData(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{MaxFrameBytes: 1 << 20})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 2)
	p := guest(t, ts, h, code, "p", 1, "0")
	overhead := len(`{"type":"message","from":0,"data":""}`)
	lengths := []int{125, 126, 127, copyMax, copyMax + 1, 65535, 65536, 65537, 200000}
	var want []string
	for i, n := range lengths {
		data := strings.Repeat(string(rune('a'+i)), n-overhead)
		h.Send(`{"type":"send","data":"` + data + `"}`)
		want = append(want, `{"type":"message","from":0,"data":"`+data+`"}`)
	}
	h.Send(`{"type":"close_room"}`)
	for i, w := range want {
		got, err := p.Read()
		if err != nil {
			t.Fatalf("frame %d (%d bytes): %v", i, lengths[i], err)
		}
		if len(got) != lengths[i] || got != w {
			t.Fatalf("frame %d: got %d bytes, want %d", i, len(got), lengths[i])
		}
	}
	p.ExpectClose(4001, "room closed")
}
