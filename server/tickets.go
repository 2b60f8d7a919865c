package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/party-sockets/party-sockets/internal/ticket"
	"github.com/party-sockets/party-sockets/internal/wire"
	"github.com/party-sockets/party-sockets/rooms"
)

// Tickets (docs/protocol.md "Crash-proof rooms"): a member that opts in with
// "tickets": true on create or join gets {"type":"ticket","ticket":...}
// after created or joined, again when its room changes (coalesced by the
// room: rooms.TicketGap) and every ticket.ReissueEvery. Each issue is
// sealed once, outside the room's lock, and the same text goes to every
// member that opted in. No HANDOFF_SECRET, no tickets: a member that asks
// is told so once.

// Errors of tickets and restores, in the old relay's shape.
var (
	errTicketsOff     = wire.Define("Tickets are off")
	errTicketTooLarge = wire.Define("Room too large for a ticket")
	errInvalidTicket  = wire.Define("Invalid ticket")
	errTicketExpired  = wire.Define("Ticket expired")
	errRoomEnded      = wire.Define("Room ended")
	errRoomExists     = wire.Define("Room exists")
	errTryAgain       = wire.Define("Try again")
	errBadYield       = wire.Define("Invalid yield")
)

// wantsTickets reports whether a create, join or restore says
// "tickets": true.
func wantsTickets(m *wire.Message) bool { return string(m.Tickets) == "true" }

// ticketOptIn is whether the member gets tickets; a member that asked on a
// machine without a secret is told, once, right after created or joined.
func (se *session) ticketOptIn(m *wire.Message) bool {
	return wantsTickets(m) && se.s.sealer != nil
}

// tellTicketsOff sends Tickets are off to a member that asked for tickets
// on a machine that has none.
func (se *session) tellTicketsOff(m *wire.Message) {
	if wantsTickets(m) && se.s.sealer == nil {
		se.s.metrics.errorSent(errTicketsOff)
		se.c.Send(wire.ErrorFrame(errTicketsOff))
	}
}

// issueTicket seals r's ticket as of now and sends it to its members that
// opted in (rooms calls it, without a lock, when one is due).
func (s *Server) issueTicket(r *rooms.Room) {
	p, ok := r.TicketPlain()
	if !ok {
		return
	}
	t, err := s.sealer.Seal(p)
	if err != nil {
		s.log.Warn("room too large for a ticket", "room", r.Code, "slots", len(p.Slots))
		s.metrics.errorSent(errTicketTooLarge)
		r.SendTicket(wire.ErrorFrame(errTicketTooLarge), true)
		return
	}
	s.metrics.tickets.issued.Inc()
	r.SendTicket(wire.TicketFrame(t), false)
}

// Results of a restore, for party_sockets_restores_total.
const (
	restoreRestored   = "restored"      // this restore rebuilt the room
	restoreJoined     = "joined"        // the room was here: joined it
	restoreInvalid    = "invalid"       // Invalid ticket
	restoreExpired    = "expired"       // Ticket expired
	restoreNotInIt    = "not_in_ticket" // Not in this ticket
	restoreEnded      = "ended"         // Room ended
	restoreExists     = "exists"        // Room exists
	restoreTryAgain   = "try_again"     // Try again
	restoreOff        = "off"           // Tickets are off
	restoreOtherError = "other"         // a join's error (Room is full, budget...)
)

var restoreResults = []string{restoreRestored, restoreJoined, restoreInvalid, restoreExpired, restoreNotInIt,
	restoreEnded, restoreExists, restoreTryAgain, restoreOff, restoreOtherError}

type ticketMetrics struct {
	issued   prometheus.Counter
	restores *prometheus.CounterVec
}

func newTicketMetrics(reg prometheus.Registerer) ticketMetrics {
	t := ticketMetrics{
		issued: prometheus.NewCounter(prometheus.CounterOpts{Name: "party_sockets_tickets_issued_total",
			Help: "Room tickets sealed and sent (one per issue, whatever the members)."}),
		restores: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "party_sockets_restores_total",
			Help: "Restores from a ticket, by result."}, []string{"result"}),
	}
	for _, r := range restoreResults {
		t.restores.WithLabelValues(r)
	}
	reg.MustRegister(t.issued, t.restores)
	return t
}

// restoreResult is the metric label of a restore's error.
func restoreResult(err error) string {
	switch err {
	case errInvalidTicket:
		return restoreInvalid
	case errTicketExpired:
		return restoreExpired
	case rooms.ErrNotInTicket:
		return restoreNotInIt
	case errRoomEnded:
		return restoreEnded
	case errRoomExists:
		return restoreExists
	case errTryAgain:
		return restoreTryAgain
	case errTicketsOff:
		return restoreOff
	}
	return restoreOtherError
}

// newSealer is the machine's ticket sealer; nil without a secret.
func newSealer(secret string) *ticket.Sealer { return ticket.NewSealer(secret) }
