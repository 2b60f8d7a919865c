package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/party-sockets/party-sockets/closecode"
)

// Options configure a client.
type Options struct {
	URL        string        // relay base URL: ws://, wss://, http:// or https://
	ClientID   string        // the slot's secret; random when empty
	Header     http.Header   // extra handshake headers
	MinBackoff time.Duration // first reconnect delay (default 250 ms)
	MaxBackoff time.Duration // longest reconnect delay (default 10 s)
	// MaxAttempts bounds reconnects in a row before giving up (default 20;
	// negative: never give up).
	MaxAttempts int
	// NoRecover turns message recovery off. By default the client asks the
	// server to number the frames of its slot and, after a reconnect, to
	// send again what it missed; duplicates are dropped, and
	// RecoveryFailed says when the server no longer had them.
	NoRecover bool
	// NoTickets turns crash-proof rooms off. By default the client asks
	// for its room's sealed ticket and keeps the freshest with the last
	// state it saw; when the room's machine is lost (kill -9: a rejoin
	// answers "Room not found") it restores the room from them on a
	// sibling, or joins the copy another member restored (Restored),
	// within RoomWait; RestoreFailed says why it could not.
	NoTickets bool
	// Since is the last seq a previous client of this slot saw (saved with
	// the clientId, for Rejoin after a restart); 0 when unknown.
	Since uint64
	// RoomWait is how long a reconnect keeps trying while the server says
	// "Room not found" (default 10 s; negative: give up at once). A
	// machine that stops hands its rooms to a sibling, and a rejoin can
	// arrive a moment before the room does.
	RoomWait time.Duration
	// Heartbeat: while nothing comes from the server for this long the
	// client sends {"type":"ping"}, and when a ping has had no answer
	// (nor any other frame) for this long it drops the socket and
	// reconnects (a black-holed network ends no socket by itself).
	// Default 3 s (a dead link noticed after 6–7.5 s of silence); negative: none.
	Heartbeat time.Duration
}

// Events. Every server message becomes one; Reconnecting and Closed are
// the client's own.
type (
	Created struct{ Room, Instance, Region, URL string }
	Joined  struct {
		Room  string
		Index int
		Peers []int
		URL   string
	}
	PeerJoined struct{ Index int }
	PeerLeft   struct{ Index int }
	// Message: Data is nil when the sender sent none.
	Message struct {
		From int
		Data json.RawMessage
	}
	State struct{ Data json.RawMessage }
	Error struct{ Message string }
	// RecoveryFailed: after a reconnect the server no longer held every
	// frame this slot missed (it was away too long). The retained state
	// follows as a State event: resynchronise from it.
	RecoveryFailed struct{ Since, Latest uint64 }
	// Restored: the room's machine was lost and the room is back, same
	// code, this client in its own slot (after its Joined, and the
	// RecoveryFailed of a room rebuilt without recovery windows).
	// ByOther: another member rebuilt it and this client joined that copy;
	// otherwise this client's restore rebuilt it. The state follows when
	// the room has one: resynchronise from it (frames in flight at the
	// crash are lost).
	Restored struct {
		Room    string
		ByOther bool
	}
	// RestoreFailed: the room's machine was lost and the restore was
	// refused; Reason is the server's answer ("Invalid ticket", "Ticket
	// expired", "Not in this ticket", "Room ended", "Tickets are off"...,
	// docs/protocol.md). Closed follows unless the relay merely has no
	// tickets (then the client waits for the room as without one).
	RestoreFailed struct{ Room, Reason string }
	Reconnecting  struct {
		Attempt int
		Delay   time.Duration
		Err     error
	}
	// Closed is the last event: Final says the server ended the client for
	// good (Code 4000 replaced, 4001 room closed) or the room is gone.
	Closed struct {
		Code   int
		Reason string
		Final  bool
		Err    error
	}
)

// Close codes that are final for a client (closecode has the whole table:
// the client stops on a final code and reconnects on any other).
const (
	CodeReplaced   = int(closecode.Replaced)
	CodeRoomClosed = int(closecode.RoomClosed)
)

// ErrNotConnected is returned by sends while the client is reconnecting:
// the message was not sent (never silently dropped).
var ErrNotConnected = errors.New("party-sockets: not connected")

// ErrRoomGone matches (errors.Is) a Rejoin's error when the saved room is
// gone for this client: the server answered one of RoomGone. Create or
// Join anew; any other error (no network) may be worth a retry.
var ErrRoomGone = errors.New("party-sockets: the room is gone")

// RoomGone are the server's answers to a rejoin that mean the room is gone
// for this client: it ended; this address missed too many rooms to be let
// in (waiting would only keep the caller stuck); the slot was given up.
// The JS client's ROOM_GONE is the same list.
var RoomGone = []string{"Room not found", "Too many failed joins, try again later", "Room is full"}

// ErrDeadLink is a Reconnecting event's Err when a ping had no answer, nor
// any other frame, for a heartbeat.
var ErrDeadLink = errors.New("party-sockets: no answer from the server for a heartbeat")

// Client is one player's connection to a room.
type Client struct {
	opts   Options
	events chan any
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	heard   atomic.Int64 // when the last frame came (UnixNano); read by the heartbeat
	pending atomic.Int32 // pings sent and not yet answered

	mu       sync.Mutex // guards the fields below
	ws       *websocket.Conn
	room     string
	index    int
	instance string
	seq      uint64          // the last frame number of this slot seen (recovery)
	haveSeq  bool            // a created or joined was seen: seq is meaningful
	ticket   string          // the room's freshest ticket; "" for none
	state    json.RawMessage // the last state seen or set, for a restore
}

// Seq is the last frame number this client's slot has seen: save it with
// the clientId to recover after a restart (Options.Since).
func (c *Client) Seq() uint64 { c.mu.Lock(); defer c.mu.Unlock(); return c.seq }

func (o *Options) defaults() error {
	if o.URL == "" {
		return errors.New("party-sockets: Options.URL is required")
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
	default:
		return fmt.Errorf("party-sockets: URL scheme %q", u.Scheme)
	}
	u.Path, u.RawQuery = strings.TrimRight(u.Path, "/"), ""
	o.URL = u.String()
	if o.ClientID == "" {
		b := make([]byte, 16)
		rand.Read(b)
		o.ClientID = hex.EncodeToString(b)
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 250 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 20
	}
	if o.RoomWait == 0 {
		o.RoomWait = 10 * time.Second
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = 3 * time.Second
	}
	return nil
}

// Create connects, creates a room (this client is its host, slot 0) and
// returns once the server answered created.
func Create(ctx context.Context, opts Options, maxClients int, controllerURL string) (*Client, error) {
	msg := map[string]any{"type": "create", "clientId": "", "maxClients": maxClients}
	if controllerURL != "" {
		msg["url"] = controllerURL
	}
	return start(ctx, opts, "", msg)
}

// Join connects to the room by its code (through /<code>, so the relay
// routes it to the machine that holds it) and returns once joined.
func Join(ctx context.Context, opts Options, code string) (*Client, error) {
	return start(ctx, opts, code, map[string]any{"type": "join", "clientId": "", "room": code})
}

// Rejoin connects to a room this clientId already belongs to, pinned to
// instance when known (a saved pin). When the room is gone the error
// matches ErrRoomGone:
//
//	c, err := client.Rejoin(ctx, opts, saved.Room, saved.Instance)
//	if errors.Is(err, client.ErrRoomGone) {
//		c, err = client.Create(ctx, opts, 8, "")
//	}
//
// A room being handed to another machine is not found for milliseconds,
// so "Room not found" is asked once more, by code, 500 ms later.
func Rejoin(ctx context.Context, opts Options, code, instance string) (*Client, error) {
	c, err := rejoin(ctx, opts, code, instance)
	if se := (*ServerError)(nil); errors.As(err, &se) && se.Message == "Room not found" {
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return nil, err
		}
		c, err = rejoin(ctx, opts, code, "")
	}
	return c, err
}

func rejoin(ctx context.Context, opts Options, code, instance string) (*Client, error) {
	c, err := newClient(opts)
	if err != nil {
		return nil, err
	}
	c.room, c.instance = code, instance
	return c, c.firstConnect(ctx, c.rejoinURL(), map[string]any{"type": "join", "clientId": "", "room": code})
}

func newClient(opts Options) (*Client, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	c := &Client{opts: opts, events: make(chan any, 256), done: make(chan struct{})}
	if opts.Since > 0 {
		c.seq, c.haveSeq = opts.Since, true
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

func start(ctx context.Context, opts Options, code string, first map[string]any) (*Client, error) {
	c, err := newClient(opts)
	if err != nil {
		return nil, err
	}
	u := c.opts.URL + "/"
	if code != "" {
		u += url.PathEscape(code)
	}
	return c, c.firstConnect(ctx, u, first)
}

func (c *Client) firstConnect(ctx context.Context, u string, first map[string]any) error {
	first["clientId"] = c.opts.ClientID
	c.addRecovery(first)
	c.addTickets(first)
	if _, err := c.connect(ctx, u, first); err != nil {
		c.cancel()
		close(c.done)
		return err
	}
	go c.run()
	return nil
}

// addRecovery asks for recovery on a create or join, and for the frames
// missed since the last one seen on a rejoin.
func (c *Client) addRecovery(msg map[string]any) {
	if c.opts.NoRecover {
		return
	}
	msg["recover"] = true
	c.mu.Lock()
	defer c.mu.Unlock()
	if (msg["type"] == "join" || msg["type"] == "restore") && c.haveSeq {
		msg["since"] = c.seq
	}
}

// Events delivers every event in order; it is closed after Closed.
func (c *Client) Events() <-chan any { return c.events }

// Done is closed when the client has stopped for good.
func (c *Client) Done() <-chan struct{} { return c.done }

// Room, Index and Instance describe where the client is.
func (c *Client) Room() string     { c.mu.Lock(); defer c.mu.Unlock(); return c.room }
func (c *Client) Index() int       { c.mu.Lock(); defer c.mu.Unlock(); return c.index }
func (c *Client) Instance() string { c.mu.Lock(); defer c.mu.Unlock(); return c.instance }

// ClientID is this client's slot secret (save it to rejoin later).
func (c *Client) ClientID() string { return c.opts.ClientID }

// Send relays data to every other member.
func (c *Client) Send(ctx context.Context, data any) error {
	return c.write(ctx, map[string]any{"type": "send", "data": data})
}

// SendTo relays data to one slot.
func (c *Client) SendTo(ctx context.Context, slot int, data any) error {
	return c.write(ctx, map[string]any{"type": "send", "data": data, "to": slot})
}

// SetState (host only) retains a snapshot for the room.
// The host never gets its own state back: it keeps what it set for a
// restore.
func (c *Client) SetState(ctx context.Context, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	if err := c.write(ctx, map[string]any{"type": "set_state", "data": json.RawMessage(b)}); err != nil {
		return err
	}
	c.keepState(b)
	return nil
}

// CloseRoom (host only) ends the room for everyone.
func (c *Client) CloseRoom(ctx context.Context) error {
	err := c.write(ctx, map[string]any{"type": "close_room"})
	if err == nil {
		c.forgetTicket() // an ended room is never restored
	}
	return err
}

// Close leaves: the socket closes and no reconnect follows.
func (c *Client) Close() error {
	c.cancel()
	c.forgetTicket()
	c.mu.Lock()
	ws := c.ws
	c.mu.Unlock()
	if ws != nil {
		ws.Close(websocket.StatusNormalClosure, "")
	}
	<-c.done
	return nil
}

func (c *Client) write(ctx context.Context, msg map[string]any) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	c.mu.Lock()
	ws := c.ws
	c.mu.Unlock()
	if ws == nil {
		return ErrNotConnected
	}
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("%w: %v", ErrNotConnected, err)
	}
	return nil
}
