// Package webhook posts a room's events to the game's backend, signed the
// way the Standard Webhooks spec says (webhook-id, webhook-timestamp,
// webhook-signature: v1,base64(HMAC-SHA256(key, id.timestamp.body))), so a
// receiver can verify with any library of the spec.
//
// Delivery is at least once and in order per room: each room has its own
// queue (queue.go), whose head is sent, and retried with backoff keeping
// its webhook-id, while the other rooms' events go on. A bounded number of
// workers serve the rooms in turn (run.go), so one busy room cannot starve
// the rest. Enqueueing never blocks: past a room's bound or the machine's,
// player events are dropped before room events (counted). At the
// machine's bound the owner (an opaque key the caller gives with each
// event: the server gives the client's address) with the most player
// events waiting, in all its rooms together, loses one first, the newest
// of its room with the most: one address that churns a few events in each
// of many rooms pays for them itself, not the busiest game. A slow
// receiver never slows the relay.
//
// Sender.mu is the package's only lock, and never held across a network
// call.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune a Sender; zero values take the defaults.
type Options struct {
	QueueSize   int           // events waiting, all rooms together (1000)
	RoomQueue   int           // events waiting for one room (100)
	Workers     int           // deliveries in flight at once (8)
	Attempts    int           // tries per event (6)
	FirstRetry  time.Duration // backoff before the second try, doubling (500 ms)
	MaxRetry    time.Duration // longest backoff (30 s)
	Timeout     time.Duration // one attempt (5 s)
	Client      *http.Client  // default: at most Workers connections, no redirects
	Clock       Clock         // nil: the time package
	RandomBytes func([]byte)  // message ids; crypto/rand by default
}

// Clock dates events and schedules retries. internal/testutil's FakeClock
// is one.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) interface{ Stop() bool }
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) interface{ Stop() bool } {
	return time.AfterFunc(d, f)
}

// Sender delivers events to one URL.
type Sender struct {
	// Static after New.
	url  string
	key  []byte
	opts Options
	wake chan struct{} // 1-buffered: a room may be ready for a worker

	// Guarded by mu, which is never held across a network call.
	mu     sync.Mutex
	rooms  map[string]*roomQueue // rooms with events queued, in flight or waiting to retry
	owners map[string]*owner     // owners with player events that may be dropped
	hogs   hogHeap[*owner]       // every owner of owners, most droppable player events first
	ready  []*roomQueue          // rooms whose head may be sent now, served in turn
	queued int                   // events of every room, heads included

	delivered, retried, failed, dropped atomic.Uint64
}

// ParseSecret reads a Standard Webhooks secret: "whsec_" and base64.
func ParseSecret(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, errors.New(`want "whsec_" followed by base64`)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) < 16 {
		return nil, errors.New("want at least 16 bytes of base64 after whsec_")
	}
	return key, nil
}

// New returns a sender; call Run to start delivering.
func New(url, secret string, opts Options) (*Sender, error) {
	key, err := ParseSecret(secret)
	if err != nil {
		return nil, err
	}
	opts = withDefaults(opts)
	return &Sender{url: url, key: key, opts: opts, wake: make(chan struct{}, 1), rooms: map[string]*roomQueue{},
		owners: map[string]*owner{}}, nil
}

func withDefaults(opts Options) Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&opts.QueueSize, 1000)
	def(&opts.RoomQueue, 100)
	def(&opts.Workers, 8)
	def(&opts.Attempts, 6)
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur(&opts.FirstRetry, 500*time.Millisecond)
	defDur(&opts.MaxRetry, 30*time.Second)
	defDur(&opts.Timeout, 5*time.Second)
	if opts.Client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost = opts.Workers, opts.Workers
		tr.MaxResponseHeaderBytes = 16 << 10
		opts.Client = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.RandomBytes == nil {
		opts.RandomBytes = func(b []byte) { rand.Read(b) }
	}
	return opts
}

// Send queues an event of room without blocking: {"type", "timestamp",
// "data"}. Types that start with "player." are player events, the first
// to go when the queue is full; every other type is a room event. owner
// is who caused the event, an opaque key ("" is one owner too): when the
// machine's queue is full, the owner with the most player events waiting
// loses one. It reports false when the event was dropped.
func (s *Sender) Send(room, owner, eventType string, data any) bool {
	body, err := json.Marshal(struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      any    `json:"data"`
	}{eventType, s.opts.Clock.Now().UTC().Format(time.RFC3339Nano), data})
	if err != nil {
		s.dropped.Add(1)
		return false
	}
	id := make([]byte, 12)
	s.opts.RandomBytes(id)
	j := &job{id: "msg_" + hex.EncodeToString(id), body: body, player: strings.HasPrefix(eventType, "player."),
		wait: s.opts.FirstRetry}
	return s.enqueue(room, owner, j)
}

// Flush waits until every queued event has been delivered or given up on,
// or until ctx ends, and returns how many were still waiting: a machine
// calls it before it exits, so its last events (room.moved, room.closed)
// are not lost without a word.
func (s *Sender) Flush(ctx context.Context) int {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		n := s.pending()
		if n == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return n
		case <-tick.C:
		}
	}
}

func (s *Sender) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queued
}

// Stats counts events delivered, attempts retried, events given up on, and
// events dropped because a queue was full.
func (s *Sender) Stats() (delivered, retried, failed, dropped uint64) {
	return s.delivered.Load(), s.retried.Load(), s.failed.Load(), s.dropped.Load()
}

// Sign is the webhook-signature value for a message.
func Sign(key []byte, id string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, ts)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func (s *Sender) post(ctx context.Context, j *job) bool {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(j.body))
	if err != nil {
		return false
	}
	ts := s.opts.Clock.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", j.id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(s.key, j.id, ts, j.body))
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}
