// Package webhook posts a room's events to the game's backend, signed the
// way the Standard Webhooks spec says (webhook-id, webhook-timestamp,
// webhook-signature: v1,base64(HMAC-SHA256(key, id.timestamp.body))), so a
// receiver can verify with any library of the spec. Delivery is at least
// once: one worker sends events in order and retries each with backoff,
// keeping its webhook-id; a full queue drops new events (counted), so a
// slow receiver never slows the relay.
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
	"sync/atomic"
	"time"
)

// Options tune a Sender; zero values take the defaults.
type Options struct {
	QueueSize   int           // events waiting to be sent (1000)
	Attempts    int           // tries per event (6)
	FirstRetry  time.Duration // backoff before the second try, doubling (500 ms)
	MaxRetry    time.Duration // longest backoff (30 s)
	Timeout     time.Duration // one attempt (5 s)
	Client      *http.Client
	Now         func() time.Time
	RandomBytes func([]byte) // message ids; crypto/rand by default
}

// Sender delivers events to one URL.
type Sender struct {
	url  string
	key  []byte
	opts Options
	q    chan job

	delivered, retried, failed, dropped atomic.Uint64
	pending                             atomic.Int64 // queued or being delivered
}

type job struct {
	id   string
	body []byte
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
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1000
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 6
	}
	if opts.FirstRetry <= 0 {
		opts.FirstRetry = 500 * time.Millisecond
	}
	if opts.MaxRetry <= 0 {
		opts.MaxRetry = 30 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Client == nil {
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RandomBytes == nil {
		opts.RandomBytes = func(b []byte) { rand.Read(b) }
	}
	return &Sender{url: url, key: key, opts: opts, q: make(chan job, opts.QueueSize)}, nil
}

// Send queues an event without blocking: {"type", "timestamp", "data"}.
// It reports false when the queue was full and the event was dropped.
func (s *Sender) Send(eventType string, data any) bool {
	body, err := json.Marshal(struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      any    `json:"data"`
	}{eventType, s.opts.Now().UTC().Format(time.RFC3339Nano), data})
	if err != nil {
		s.dropped.Add(1)
		return false
	}
	id := make([]byte, 12)
	s.opts.RandomBytes(id)
	s.pending.Add(1)
	select {
	case s.q <- job{id: "msg_" + hex.EncodeToString(id), body: body}:
		return true
	default:
		s.pending.Add(-1)
		s.dropped.Add(1)
		return false
	}
}

// Flush waits until every queued event has been delivered or given up on,
// or until ctx ends, and returns how many were still waiting: a machine
// calls it before it exits, so its last events (room.moved, room.closed)
// are not lost without a word.
func (s *Sender) Flush(ctx context.Context) int {
	for s.pending.Load() > 0 {
		select {
		case <-ctx.Done():
			return int(s.pending.Load())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return 0
}

// Stats counts events delivered, attempts retried, events given up on, and
// events dropped because the queue was full.
func (s *Sender) Stats() (delivered, retried, failed, dropped uint64) {
	return s.delivered.Load(), s.retried.Load(), s.failed.Load(), s.dropped.Load()
}

// Run delivers queued events in order until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.q:
			s.deliver(ctx, j)
			s.pending.Add(-1)
		}
	}
}

// deliver tries one event until a 2xx answer or the attempts run out.
func (s *Sender) deliver(ctx context.Context, j job) {
	wait := s.opts.FirstRetry
	for attempt := 1; ; attempt++ {
		if s.post(ctx, j) {
			s.delivered.Add(1)
			return
		}
		if attempt == s.opts.Attempts || ctx.Err() != nil {
			s.failed.Add(1)
			return
		}
		s.retried.Add(1)
		select {
		case <-ctx.Done():
			s.failed.Add(1)
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, s.opts.MaxRetry)
	}
}

// Sign is the webhook-signature value for a message.
func Sign(key []byte, id string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, ts)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func (s *Sender) post(ctx context.Context, j job) bool {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(j.body))
	if err != nil {
		return false
	}
	ts := s.opts.Now().Unix()
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
