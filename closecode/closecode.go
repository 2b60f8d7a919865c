// Package closecode is the one table of the WebSocket close codes this
// server sends, what each means, and whether a client stops on it. Existing
// clients treat 4000 and 4001 as final and reconnect on anything else;
// every code added keeps that rule. clients/js has the same table, and a
// test holds it, the Go client and the README to this one.
//
// Ends (ends.go) is the server's side of it: every reason a connection
// ends, with the code and text it sends, its metric label and what
// becomes of the frames queued for the client.
package closecode

// Code is a WebSocket close code.
type Code int

// The codes this server sends.
const (
	Replaced   Code = 4000 // the same clientId joined from another socket
	RoomClosed Code = 4001 // the host or the backend closed the room, or the host grace ran out
	TooSlow    Code = 4002 // the send queue overflowed, or was shed for the memory budget
	Policy     Code = 1008 // over the message rate, or no create/join in time
	TooBig     Code = 1009 // a frame over MAX_FRAME_BYTES
	Restarting Code = 1012 // the machine is stopping: its room moved to a sibling, or a drain was cut short
	// TryAgain: the memory budget could not take the message being read, or
	// the machine's sockets were full and its address held the most.
	TryAgain Code = 1013
)

// Info is what a client should know of a code.
type Info struct {
	Reason string // the close frame's reason ("" when the reason varies)
	Final  bool   // the client stops; otherwise it reconnects
}

// Table is every code this server sends.
var Table = map[Code]Info{
	Replaced:   {Reason: "replaced", Final: true},
	RoomClosed: {Reason: "room closed", Final: true},
	TooSlow:    {Reason: "too slow"},
	Policy:     {Reason: ""}, // "rate limit exceeded" or "join timeout"
	TooBig:     {Reason: ""}, // coder/websocket's "read limited at N bytes"
	Restarting: {Reason: "server restarting"},
	TryAgain:   {Reason: "try again later"},
}

// Final reports whether a client should stop for good on code c.
func (c Code) Final() bool { return Table[c].Final }

// Reason is c's close reason from the table.
func (c Code) Reason() string { return Table[c].Reason }
