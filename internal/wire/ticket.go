package wire

// TicketFrame carries a room's sealed ticket (docs/protocol.md "Crash-proof rooms").
// It is never numbered: not a room frame, never in a recovery window.
func TicketFrame(ticket string) []byte {
	b := make([]byte, 0, 32+len(ticket))
	b = append(b, `{"type":"ticket","ticket":`...)
	b = AppendString(b, ticket)
	return append(b, '}')
}

// WithRestored is a joined frame (a JSON object) with "restored": true:
// this join rebuilt the room from a ticket.
func WithRestored(frame []byte) []byte {
	b := make([]byte, 0, len(frame)+16)
	b = append(b, frame[:len(frame)-1]...)
	return append(b, `,"restored":true}`...)
}
