package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/coder/websocket"

	"github.com/party-sockets/party-sockets/closecode"
	"github.com/party-sockets/party-sockets/internal/rate"
	"github.com/party-sockets/party-sockets/internal/wire"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/tokens"
)

// Session errors beyond the rooms package, exactly as the old relay spells
// them (README "The protocol in brief").
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
	ip      string      // client address, for per-address limits
	counted bool        // ip counts against the limits (not a peer's probe)
	msgs    rate.Bucket // message rate, owned by the reader; unlimited when MsgRate is 0
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

// read returns the next whole message. From its first frame on, the message
// is on the clock (the sweeper cuts a socket that takes longer than the
// message timeout), and the bytes gathered so far count in the memory
// budget; the read limit bounds its size.
func (se *session) read(ctx context.Context) ([]byte, error) {
	_, r, err := se.c.ws.Reader(ctx)
	if err != nil {
		return nil, err
	}
	se.c.msgStart.Store(se.s.tick.Load() + 1) // never 0
	b := make([]byte, 0, 512)
	held := cap(b)
	se.s.budget.Add(int64(held))
	defer func() {
		se.c.msgStart.Store(0)
		se.s.budget.Add(-int64(held))
	}()
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
			se.s.budget.Add(int64(cap(b) - held))
			held = cap(b)
			se.s.maybeShed()
		}
	}
}

// handle serves one message. It reports true when the connection is
// closed for abuse: it is then no longer read or handled.
func (se *session) handle(frame []byte) (stop bool) {
	if !se.msgs.Unlimited() && !se.msgs.Take(time.Now()) {
		// Told once per burst; a sender that keeps going past a whole
		// burst of rejections is closed.
		switch r := se.msgs.Rejected(); {
		case r == 1:
			se.s.metrics.errorSent(errRateLimited)
			se.c.Send(wire.ErrorFrame(errRateLimited))
		case float64(r) > se.msgs.Burst():
			se.c.abort(closecode.EndRateLimit)
			return true
		}
		return false
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
	if se.counted && se.s.perAddr.blocked(se.ip) {
		return errTooManyMisses
	}
	opt, err := recoveryOptions(m)
	if err != nil {
		return err
	}
	opt.Tickets = se.ticketOptIn(m)
	r, idx, err := se.s.rooms.Join(code, clientID, se.c, opt)
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
