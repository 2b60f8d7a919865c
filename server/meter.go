package server

import (
	"errors"
	"io"
	"time"

	"github.com/party-sockets/party-sockets/internal/rate"
)

// meter sits between the socket and coder/websocket's reader and sees
// every byte a client sends. It charges each frame (control frames and
// continuation fragments included, which no message limit sees) to a frame
// bucket and every byte to a byte bucket, and to the byte bucket its
// address's sockets share (ADDR_BYTES_PER_SEC: 200 sockets each under
// their own rate must not together make other rooms wait). A client over
// any is not read until it is back under: its reader sleeps and TCP
// pushes back on the sender, so no kind of frame costs the machine CPU
// beyond the limits. It also bounds the fragments of one message.
//
// It parses only frame headers (RFC 6455's base framing: two bytes, a 16- or 64-bit
// extended length, a 4-byte mask) to find where each frame starts, and
// skips payloads in bulk; coder/websocket still parses and validates
// everything. Measured: a flood of empty pings cost 16 µs of server CPU
// each with no bound on how many; here they are held to FramesPerSec.
type meter struct {
	r     io.Reader
	sleep func(time.Duration)
	now   func() time.Time

	// Header parser state.
	hdr     [14]byte // the header being read
	hdrLen  int      // bytes of hdr read so far
	hdrNeed int      // bytes the header needs (2 until the second byte is known)
	payload uint64   // payload bytes of the current frame still to come

	fragments    int // continuation frames of the message being read
	maxFragments int

	// Charged per read; a debt is paid by sleeping (rate.Bucket.Charge).
	frames, bytes rate.Bucket
	// addr is the byte bucket of every socket of the client's address
	// (ADDR_BYTES_PER_SEC), charged beside bytes; nil: none.
	addr *sharedBucket
}

var (
	errTooManyFragments = errors.New("message in too many fragments")
	errOverRate         = errors.New("frames or bytes far over the rate")
)

// maxDebt is how far over its budget a client may get before it is
// closed instead of slowed.
const maxDebt = 5 * time.Second

// MaxFragments bounds the frames of one message; browsers send one.
const MaxFragments = 64

func newMeter(r io.Reader, framesPerSec, bytesPerSec float64) *meter {
	return &meter{r: r, sleep: time.Sleep, now: time.Now, hdrNeed: 2, maxFragments: MaxFragments,
		frames: rate.NewBucket(framesPerSec, 2*framesPerSec),
		bytes:  rate.NewBucket(bytesPerSec, 2*bytesPerSec)}
}

func (m *meter) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if n == 0 {
		return n, err
	}
	frames, ferr := m.scan(p[:n])
	now := m.now()
	wait := max(m.frames.Charge(now, float64(frames)), m.bytes.Charge(now, float64(n)))
	if m.addr != nil {
		wait = max(wait, m.addr.charge(now, float64(n)))
	}
	if ferr != nil {
		return n, ferr
	}
	if wait > maxDebt {
		return n, errOverRate
	}
	if wait > 0 {
		m.sleep(wait)
	}
	return n, err
}

// scan walks b and returns how many frames start in it.
func (m *meter) scan(b []byte) (frames int, err error) {
	for len(b) > 0 {
		if m.payload > 0 {
			skip := min(m.payload, uint64(len(b)))
			m.payload -= skip
			b = b[skip:]
			continue
		}
		m.hdr[m.hdrLen] = b[0]
		m.hdrLen++
		b = b[1:]
		if m.hdrLen == 2 {
			m.hdrNeed = 2 + extLen(m.hdr[1]&0x7f)
			if m.hdr[1]&0x80 != 0 {
				m.hdrNeed += 4
			}
		}
		if m.hdrLen < m.hdrNeed {
			continue
		}
		frames++
		if err := m.frameDone(); err != nil {
			return frames, err
		}
	}
	return frames, nil
}

func extLen(l7 byte) int {
	switch l7 {
	case 126:
		return 2
	case 127:
		return 8
	}
	return 0
}

// frameDone takes a complete header: it counts fragments and sets up the
// payload skip.
func (m *meter) frameDone() error {
	fin, opcode := m.hdr[0]&0x80 != 0, m.hdr[0]&0x0f
	switch l7 := m.hdr[1] & 0x7f; l7 {
	case 126:
		m.payload = uint64(m.hdr[2])<<8 | uint64(m.hdr[3])
	case 127:
		m.payload = 0
		for _, c := range m.hdr[2:10] {
			m.payload = m.payload<<8 | uint64(c)
		}
	default:
		m.payload = uint64(l7)
	}
	m.hdrLen, m.hdrNeed = 0, 2
	if opcode < 8 { // a data frame or a continuation
		if opcode == 0 {
			m.fragments++
		} else {
			m.fragments = 0
		}
		if fin {
			m.fragments = 0
		} else if m.fragments > m.maxFragments {
			return errTooManyFragments
		}
	}
	return nil
}
