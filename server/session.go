package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/coder/websocket"

	"github.com/party-sockets/party-sockets/closecode"
	"github.com/party-sockets/party-sockets/internal/ticket"
	"github.com/party-sockets/party-sockets/internal/wire"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/tokens"
)

// Session errors beyond the rooms package, exactly as the old relay spells
// them (docs/protocol.md).
var (
	errDraining      = wire.Define("Server draining")
	errAlreadyInRoom = wire.Define("Already in a room")
	errClientID      = wire.Define("clientId is required")
	errMaxClients    = wire.Define("maxClients must be a positive number")
	errRoomRequired  = wire.Define("room is required")
)

// session is one WebSocket connection: its reader runs here, its writer in
// conn (flush, on demand). Only the reader goroutine touches room and idx.
type session struct {
	s       *Server
	c       *conn
	origin  string
	ip      string   // client address, for per-address limits
	counted bool     // ip counts against the limits (not a peer's probe)
	msgs    msgLimit // message rate, owned by the reader; unlimited when MsgRate is 0
	room    *rooms.Room
	idx     int
}

func (se *session) run(ctx context.Context) (err error) {
	defer func() {
		if se.room != nil {
			// Only a close with 1000 is a clean leave: it may end an
			// emptied room at once. Anything else is a blip.
			se.room.Leave(se.idx, se.c, websocket.CloseStatus(err) == websocket.StatusNormalClosure)
		}
	}()
	for {
		frame, err := se.read(ctx)
		if err != nil {
			return err
		}
		if se.handle(frame) {
			return nil
		}
	}
}

// readBufBytes is what a message may grow to within the connection's own
// cost (ConnBytes): messages that fit, as nearly all do, reserve nothing.
const readBufBytes = 512

// errBusy ends a session whose message the memory budget could not take:
// its socket is closed with 1013 (closecode.EndBusy).
var errBusy = errors.New("message refused: memory budget short")

// read returns the next whole message. From its first frame on, the message
// is on the clock (the sweeper cuts a socket that takes longer than the
// message timeout). Past readBufBytes, every growth of its buffer is
// reserved before it is made (grow); one that cannot be refuses the
// message and closes the socket with 1013. The read limit bounds its size.
func (se *session) read(ctx context.Context) ([]byte, error) {
	_, r, err := se.c.ws.Reader(ctx)
	if err != nil {
		return nil, err
	}
	c := se.c
	c.msgStart.Store(se.s.tick.Load() + 1) // never 0
	defer se.endMessage()
	b := make([]byte, 0, readBufBytes)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			if c.reading.Load() == takenReading {
				return nil, errBusy // the shedder took it: its socket is closing
			}
			return b, nil
		}
		if err != nil {
			return nil, err
		}
		if len(b) == cap(b) {
			next := se.growCap(cap(b))
			if !se.grow(int64(next - cap(b))) {
				return nil, errBusy
			}
			b = append(make([]byte, 0, next), b...)
		}
	}
}

// growCap is the next capacity of a message's buffer: twice the last, but
// no more than the read limit allows a message to fill (one byte past it
// and the reader fails: websocket.ErrMessageTooBig).
func (se *session) growCap(n int) int {
	if limit := int(se.s.cfg.MaxFrameBytes) + 1; 2*n > limit && limit > n {
		return limit
	}
	return 2 * n
}

// grow reserves more bytes for the message being read, within what
// messages being read may hold together (the budget's last fifth,
// reserveReading), or refuses the message: the socket is closed with
// 1013, from here, at once.
//
// An address's messages being read hold at most 1/addrReadingShare of
// that together (what its own sockets hold beyond that is refused, never
// anyone else's), and one that holds less than another address may take
// that address's messages when the cap is full (reserveReading): one
// address, or a few, cannot fill it against everyone else.
func (se *session) grow(more int64) bool {
	c, s := se.c, se.s
	held := c.reading.Load()
	if held != takenReading && s.reserveReading(c, more) {
		s.budget.Add(more)
		if c.reading.CompareAndSwap(held, held+more) {
			return true
		}
		s.budget.Add(-more) // the shedder took the message meanwhile
		s.reading.Add(-more)
		c.addReading(-more)
	}
	c.abort(closecode.EndBusy)
	return false
}

// addrReadingShare is how many addresses it takes to fill what messages
// being read may hold: one address's messages hold at most that part of
// it (a 50 MiB budget: 1.25 MiB, 20 messages of 64 KiB at once), and
// never less than its floor (readingFloor).
const addrReadingShare = 8

// addrReadingCap is what one address's messages being read may hold
// together.
func (s *Server) addrReadingCap() int64 {
	all := s.budget.Limit() / readingShare
	return min(all, max(all/addrReadingShare, s.readingFloor()))
}

// readingFloor is what an address's messages being read may always hold,
// however many addresses share the cap: two messages of MAX_FRAME_BYTES.
// An address that holds no more is never refused to make room for
// another (reserveReading).
func (s *Server) readingFloor() int64 { return 2 * s.cfg.MaxFrameBytes }

// addReading counts more (or, negative, less) bytes of the connection's
// message in its address's share, and reports whether they fit (nothing
// counted when not). A connection that is not counted (exempt) has no
// address share.
func (c *conn) addReading(more int64) bool {
	a := c.addr
	if a == nil {
		return true
	}
	if a.reading.Add(more) > c.s.addrReadingCap() && more > 0 {
		a.reading.Add(-more)
		return false
	}
	return true
}

// addrFits reports whether more bytes would fit in the connection's
// address's share now.
func (c *conn) addrFits(more int64) bool {
	return c.addr == nil || c.addr.reading.Load()+more <= c.s.addrReadingCap()
}

// endMessage gives back what the message reserved (unless the shedder
// took it) and stops its clock.
func (se *session) endMessage() {
	se.c.msgStart.Store(0)
	if v := se.c.reading.Swap(0); v > 0 {
		se.s.budget.Add(-v)
		se.s.reading.Add(-v)
		se.c.addReading(-v)
	}
}

// handle serves one message. It reports true when the connection is
// closed for abuse: it is then no longer read or handled.
func (se *session) handle(frame []byte) (stop bool) {
	switch se.msgs.take(time.Now()) {
	case msgWarn:
		se.s.metrics.errorSent(errRateLimited)
		se.c.Send(wire.ErrorFrame(errRateLimited))
		return false
	case msgDrop:
		return false
	case msgClose:
		se.c.abort(closecode.EndRateLimit)
		return true
	}
	m, err := wire.Decode(frame)
	if err == nil {
		err = se.dispatch(&m)
	}
	if err != nil {
		se.s.metrics.errorSent(err)
		se.c.Send(wire.ErrorFrame(err))
	}
	return false
}

func (se *session) dispatch(m *wire.Message) error {
	switch m.Type {
	case "create":
		return se.create(m)
	case "join":
		return se.join(m)
	case "send":
		return se.act(m, actSend)
	case "set_state":
		return se.act(m, actState)
	case "close_room":
		return se.act(m, actClose)
	case "ping":
		// A heartbeat, in a room or not: answered to this socket alone,
		// never relayed or numbered. handle has charged it to the
		// message rate, and the meter to the frame rate, as any message.
		se.c.Send(wire.PongFrame())
		return nil
	case "restore":
		return se.restore(m)
	}
	return wire.ErrUnknownType
}

func (se *session) create(m *wire.Message) error {
	if se.s.draining.Load() {
		return errDraining
	}
	if se.room != nil {
		return errAlreadyInRoom
	}
	clientID, err := requireClientID(m)
	if err != nil {
		return err
	}
	if se.counted && !se.s.creates.take(se.ip, time.Now()) {
		return errTooManyCreates
	}
	maxClients, ok := wire.Number(m.MaxClients)
	if !ok || maxClients < 1 {
		return errMaxClients
	}
	req := rooms.CreateRequest{Member: se.c, ClientID: clientID, MaxClients: maxClients, Origin: se.origin,
		Recover: wantsRecovery(m), Tickets: se.ticketOptIn(m)}
	if m.URL != nil {
		s, ok := wire.String(m.URL)
		if !ok {
			return rooms.ErrURLType
		}
		tpl, err := rooms.ParseTemplate(s)
		if err != nil {
			return err
		}
		req.URL = tpl
	}
	claims, err := se.checkToken(m, maxClients)
	if err != nil {
		return err
	}
	r, err := se.s.rooms.Create(req)
	if err != nil {
		se.s.cfg.Tokens.Refund(claims) // the token made no room: it may try again
		return err
	}
	tenant := ""
	if claims != nil {
		tenant = cleanLabel(claims.Subject)
	}
	se.room, se.idx = r, 0
	se.c.joinDone.Store(true)
	se.tellTicketsOff(m)
	se.s.metrics.roomCreated(se.origin)
	se.s.metrics.tenantCreated(tenant)
	se.s.log.Info("room created", "room", r.Code, "origin", se.origin)
	return nil
}

// checkToken spends the create's token when creates need one, and returns
// its claims (nil when they do not). A bad, expired or replayed token is a
// failed lookup: it answers Unauthorized and spends one of the address's
// misses, so tokens cannot be guessed or replayed at speed.
func (se *session) checkToken(m *wire.Message, maxClients float64) (*tokens.Claims, error) {
	v := se.s.cfg.Tokens
	if !v.Enabled() {
		return nil, nil
	}
	tok, _ := wire.String(m.Token)
	claims, err := v.Check(tok, maxClients, se.origin)
	switch {
	case err == nil:
		return claims, nil
	case errors.Is(err, tokens.ErrTooManyTokens):
		// The machine cannot remember another token: no fault of this one.
		se.s.log.Warn("create refused: spent tokens at their bound", "origin", se.origin)
		return nil, errTooManyCreates
	}
	if se.counted {
		se.s.perAddr.miss(se.ip)
	}
	se.s.log.Debug("create refused", "origin", se.origin, "reason", err.Error())
	return nil, tokens.ErrUnauthorized
}

func (se *session) join(m *wire.Message) error {
	if se.room != nil {
		return errAlreadyInRoom
	}
	clientID, err := requireClientID(m)
	if err != nil {
		return err
	}
	code, ok := wire.String(m.Room)
	if !ok || code == "" {
		return errRoomRequired
	}
	var took newcomer
	if se.counted {
		var admitted bool
		if admitted, took = se.s.perAddr.admit(se.ip, code); !admitted {
			return errTooManyMisses
		}
	}
	opt, err := recoveryOptions(m)
	if err != nil {
		return err
	}
	opt.Tickets = se.ticketOptIn(m)
	opt.Ticket = se.joinTicket(m, code)
	r, idx, err := se.s.rooms.Join(code, clientID, se.c, opt)
	if err != rooms.ErrRoomNotFound {
		se.s.perAddr.found(se.ip, took) // the room exists, even if the join was refused
	}
	if err != nil {
		if err == rooms.ErrRoomNotFound && se.counted && !se.s.onItsWay(code) {
			se.s.perAddr.missCode(se.ip, code)
		}
		return err
	}
	se.room, se.idx = r, idx
	se.c.joinDone.Store(true)
	se.tellTicketsOff(m)
	return nil
}

// joinTicket is the ticket a rejoin carries ("ticket", optional), opened
// and checked as a restore's is (bounded before it is decoded), when it is
// one of code's; nil otherwise: an invalid one is ignored, the join goes
// on. A room rebuilt from an older ticket moves up to it first, so the
// member takes back its own slot (an attack review of crash-proof rooms,
// finding 1: an early ticket rebuilt a room whose later members then got
// each other's indices).
func (se *session) joinTicket(m *wire.Message, code string) *ticket.Plain {
	if len(m.Ticket) == 0 || se.s.sealer == nil {
		return nil
	}
	// Only a room rebuilt here from a ticket moves up: any other join pays
	// no decode for the ticket it carries.
	if r := se.s.rooms.Room(code); r == nil {
		return nil
	} else if _, _, from := r.Epoch(); from == 0 {
		return nil
	}
	p, err := se.s.openTicket(m.Ticket, se.s.rooms.Now())
	if err != nil || p.Code != code {
		return nil
	}
	return p
}

// act does a member's send, set_state or close_room in its room.
func (se *session) act(m *wire.Message, kind actionKind) error {
	if se.room == nil {
		return rooms.ErrNotInRoom
	}
	act := action{kind: kind}
	switch kind {
	case actSend:
		var err error
		if act, err = sendAction(m); err != nil {
			return err
		}
	case actState:
		act.data = wire.Compact(m.Data)
	}
	_, err := se.s.apply(se.room, rooms.AsMember(se.idx, se.c), act)
	return err
}

// wantsRecovery reports whether a create or join says "recover": true.
func wantsRecovery(m *wire.Message) bool { return string(m.Recover) == "true" }

// recoveryOptions reads a join's "recover" (true opts in) and "since" (a
// non-negative integer, only with recover).
func recoveryOptions(m *wire.Message) (rooms.JoinOptions, error) {
	opt := rooms.JoinOptions{Recover: wantsRecovery(m)}
	if opt.Recover && m.Since != nil {
		n, ok := wire.Index(m.Since)
		if !ok {
			return opt, rooms.ErrSinceInvalid
		}
		opt.Since = &n
	}
	return opt, nil
}

// requireClientID is the non-empty string clientId of create and join.
func requireClientID(m *wire.Message) (string, error) {
	id, ok := wire.String(m.ClientID)
	if !ok || id == "" {
		return "", errClientID
	}
	return id, nil
}

// logClose logs how a session ended, once, at the top of the connection.
// A normal end is not an error: it is logged at debug level.
func (se *session) logClose(err error) {
	attrs := []slog.Attr{slog.String("origin", se.origin), slog.String("reason", se.c.closedReason().Label())}
	if se.room != nil {
		attrs = append(attrs, slog.String("room", se.room.Code), slog.Int("slot", se.idx))
	}
	if status := websocket.CloseStatus(err); status != -1 {
		attrs = append(attrs, slog.Int("status", int(status)))
	} else if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	se.s.log.LogAttrs(context.Background(), slog.LevelDebug, "session ended", attrs...)
}
