package closecode

// End is why a connection ended, one value for the close frame, the
// metric and the log: each has a row in Ends with its close code and
// text, its metric label, and what becomes of the frames queued for the
// client. The zero End is EndClient.
type End uint8

// Every reason a connection ends.
const (
	EndClient       End = iota // the client closed, or its socket ended: nothing of ours
	EndReplaced                // the same clientId joined from another socket
	EndRoomClosed              // the host or the backend closed the room, or the host grace ran out
	EndRestart                 // the machine is stopping: the room moved to a sibling, or a drain was cut short
	EndSlow                    // the send queue overflowed: the client stopped reading
	EndShed                    // the queue was among the largest when the memory budget ran over
	EndTooBig                  // a frame over MAX_FRAME_BYTES (coder/websocket writes the close)
	EndRateLimit               // kept sending messages far over MSG_RATE
	EndFrameRate               // frames or bytes far over FRAMES_PER_SEC or BYTES_PER_SEC
	EndFragments               // a message in too many fragments
	EndJoinTimeout             // neither created nor joined a room within JOIN_TIMEOUT
	EndMsgTimeout              // a message took longer than MESSAGE_TIMEOUT to arrive whole
	EndDeadPeer                // no pong within a ping interval
	EndWriteTimeout            // a socket write took longer than WRITE_TIMEOUT
	EndBusy                    // the memory budget could not take the message being read, or shed it
	EndCrowded                 // at MAX_CONNS, its address held the most sockets: it made room for an address with fewer
)

// Queue is what becomes of the frames queued for a client that is closed.
type Queue uint8

const (
	// Flush writes them first: the close is the last frame, and nothing
	// sent before it is lost.
	Flush Queue = iota
	// Drop discards them: the client was too slow or misbehaved, and
	// gets the retained state again if it rejoins.
	Drop
)

// EndInfo is one row of Ends.
type EndInfo struct {
	// Code is the close frame's code; 0 when none is sent (the socket is
	// cut, and the client sees 1006).
	Code Code
	// Text is the close frame's reason: "" when no frame is sent, or
	// when coder/websocket writes it (1009: "read limited at N bytes").
	Text  string
	Label string // the reason label of party_sockets_connections_closed_total
	Queue Queue
}

// Ends is the table of end reasons. A code here is in Table (clients
// switch on it); two ends may share a code (and its text, or Table's
// reason is ""), and two that differ only in how they are detected may
// share a label.
var Ends = [...]EndInfo{
	EndClient:       {0, "", "client", Drop},
	EndReplaced:     {Replaced, "replaced", "replaced", Flush},
	EndRoomClosed:   {RoomClosed, "room closed", "room_closed", Flush},
	EndRestart:      {Restarting, "server restarting", "restart", Flush},
	EndSlow:         {TooSlow, "too slow", "slow_consumer", Drop},
	EndShed:         {TooSlow, "too slow", "memory_budget", Drop},
	EndTooBig:       {TooBig, "", "too_big", Drop},
	EndRateLimit:    {Policy, "rate limit exceeded", "rate_limit", Drop},
	EndFrameRate:    {0, "", "rate_limit", Drop},
	EndFragments:    {0, "", "too_many_fragments", Drop},
	EndJoinTimeout:  {Policy, "join timeout", "join_timeout", Flush},
	EndMsgTimeout:   {0, "", "message_timeout", Drop},
	EndDeadPeer:     {0, "", "dead_peer", Drop},
	EndWriteTimeout: {0, "", "write_timeout", Drop},
	EndBusy:         {TryAgain, "try again later", "over_budget", Drop},
	EndCrowded:      {TryAgain, "try again later", "crowded", Drop},
}

// Info is e's row of Ends.
func (e End) Info() EndInfo { return Ends[e] }

// Code is the close code sent for e; 0 when no close frame is.
func (e End) Code() Code { return Ends[e].Code }

// Text is the close frame's reason for e.
func (e End) Text() string { return Ends[e].Text }

// Label is e's metric label.
func (e End) Label() string { return Ends[e].Label }

// Flush reports whether the frames queued before e are written first.
func (e End) Flush() bool { return Ends[e].Queue == Flush }

// Labels is every label of Ends, once each, in the table's order.
func Labels() []string {
	var out []string
	seen := map[string]bool{}
	for _, in := range Ends {
		if !seen[in.Label] {
			seen[in.Label] = true
			out = append(out, in.Label)
		}
	}
	return out
}
