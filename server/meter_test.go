package server

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/wsframe"
)

var clientFrame = wsframe.Client

// oneByte reads at most one byte per call: every header split everywhere.
type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) { return o.r.Read(p[:min(1, len(p))]) }

func TestMeterCountsFramesAcrossReads(t *testing.T) {
	t.Parallel()
	var stream []byte
	sizes := []int{0, 1, 125, 126, 127, 65535, 65536, 70000}
	for _, n := range sizes {
		stream = append(stream, clientFrame(true, 0x2, bytes.Repeat([]byte{'x'}, n))...)
	}
	stream = append(stream, clientFrame(true, 0x9, nil)...)
	for name, r := range map[string]io.Reader{"whole": bytes.NewReader(stream), "byte by byte": oneByte{bytes.NewReader(stream)}} {
		m := newMeter(r, 0, 0)
		frames := 0
		buf := make([]byte, 4096)
		for {
			n, err := m.r.Read(buf)
			f, ferr := m.scan(buf[:n])
			if ferr != nil {
				t.Fatal(ferr)
			}
			frames += f
			if err != nil {
				break
			}
		}
		if frames != len(sizes)+1 {
			t.Errorf("%s: counted %d frames, want %d", name, frames, len(sizes)+1)
		}
	}
}

func TestMeterThrottlesAndBoundsFragments(t *testing.T) {
	t.Parallel()
	var pings []byte
	for range 50 {
		pings = append(pings, clientFrame(true, 0x9, nil)...)
	}
	var slept time.Duration
	m := newMeter(bytes.NewReader(pings), 10, 0)
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	m.sleep = func(d time.Duration) { slept += d }
	if _, err := io.ReadAll(m); err != nil && err != errOverRate {
		t.Fatal(err)
	}
	// 50 frames against a burst of 20 at 10/s: 3 s of debt.
	if slept < 2900*time.Millisecond || slept > 3100*time.Millisecond {
		t.Fatalf("slept %v for 30 frames over the burst at 10/s, want 3s", slept)
	}

	var frag []byte
	frag = append(frag, clientFrame(false, 0x1, []byte("{"))...)
	for range MaxFragments + 1 {
		frag = append(frag, clientFrame(false, 0x0, nil)...)
	}
	m = newMeter(bytes.NewReader(frag), 0, 0)
	if _, err := io.ReadAll(m); err != errTooManyFragments {
		t.Fatalf("%d empty fragments: %v, want errTooManyFragments", MaxFragments+1, err)
	}
}

// FuzzMeter: frames built from the fuzzer's bytes, fed in chunks of any
// size, are counted exactly; and any byte stream at all never panics it.
func FuzzMeter(f *testing.F) {
	f.Add([]byte{0, 1, 125, 126, 200}, uint8(1))
	f.Add([]byte{0x89, 0x80, 1, 2, 3, 4}, uint8(3))
	f.Fuzz(func(t *testing.T, spec []byte, chunk uint8) {
		var stream []byte
		for i, b := range spec {
			n := int(b)
			if i%5 == 4 {
				n = int(b) * 300 // some 16-bit lengths
			}
			stream = append(stream, clientFrame(true, 0x2, make([]byte, n))...)
		}
		size := int(chunk%64) + 1
		m := newMeter(nil, 0, 0)
		frames := 0
		for p := 0; p < len(stream); p += size {
			n, err := m.scan(stream[p:min(p+size, len(stream))])
			if err != nil {
				t.Fatal(err)
			}
			frames += n
		}
		if frames != len(spec) {
			t.Fatalf("counted %d frames, built %d", frames, len(spec))
		}
		// Arbitrary bytes: no panic, whatever they claim.
		garbage := newMeter(nil, 0, 0)
		garbage.scan(spec)
	})
}
