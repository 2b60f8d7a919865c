package server

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/rate"
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

// One address's sockets share a byte bucket (ADDR_BYTES_PER_SEC) beside
// each socket's own: 200 sockets each within BYTES_PER_SEC made other
// rooms wait for seconds (review finding 6). Here four sockets of 1 KB/s
// each share 1 KB/s: what they read together past the shared burst (2 s)
// is paid for by sleeping, at the shared rate, and a debt past 5 s closes.
func TestMeterSharesTheAddressesBytes(t *testing.T) {
	shared := &sharedBucket{b: rate.NewBucket(1000, 2000)}
	now := time.Unix(1000, 0)
	var slept time.Duration
	meters := make([]*meter, 4)
	for i := range meters {
		meters[i] = newMeter(bytes.NewReader(clientFrame(true, 0x2, make([]byte, 2000))), 0, 1000)
		meters[i].addr = shared
		meters[i].now = func() time.Time { return now }
		meters[i].sleep = func(d time.Duration) { slept += d; now = now.Add(d) }
	}
	buf := make([]byte, 500)
	for _, m := range meters { // 4 × 500 bytes: the shared burst
		if _, err := m.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if slept != 0 {
		t.Fatalf("slept %v within the shared burst", slept)
	}
	for _, m := range meters { // 2,000 bytes more, each socket within its own
		if _, err := m.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	// Each read past the burst waits 0.5 s, the shared rate's, whichever
	// socket it is: 2 s for the four.
	if slept != 2*time.Second {
		t.Fatalf("slept %v for 2,000 bytes past a shared burst at 1,000/s, want 2s", slept)
	}
	big := newMeter(bytes.NewReader(clientFrame(true, 0x2, make([]byte, 7000))), 0, 0)
	big.addr, big.now, big.sleep = shared, func() time.Time { return now }, func(time.Duration) {}
	if _, err := big.Read(make([]byte, 7000)); err != errOverRate {
		t.Fatalf("7 s of the address's bytes at once: %v, want errOverRate", err)
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
