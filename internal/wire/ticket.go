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
func WithRestored(frame []byte) []byte { return withField(frame, `,"restored":true}`) }

// WithRebuilt is a joined frame with "rebuilt": true: the member is back,
// for the first time, in its slot of a room another member rebuilt from a
// ticket (its recovery window is gone; a client reports it).
func WithRebuilt(frame []byte) []byte { return withField(frame, `,"rebuilt":true}`) }

// withField is frame (a JSON object) with field (`,"name":value}`) last.
func withField(frame []byte, field string) []byte {
	b := make([]byte, 0, len(frame)+len(field))
	b = append(b, frame[:len(frame)-1]...)
	return append(b, field...)
}
