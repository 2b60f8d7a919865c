package client

import (
	"encoding/json"
	"net/url"
)

// Crash-proof rooms (docs/protocol.md "Crash-proof rooms: tickets"): the
// client asks for its room's sealed ticket on create and join, keeps the
// freshest one and the last state it saw, and when its room's machine is
// lost (a rejoin answers "Room not found") sends them in a restore, which
// rebuilds the room on a sibling. Ticket frames are not the game's: no
// event. Against a relay without tickets nothing changes.

// Restore answers (docs/protocol.md): the two a reconnect acts on, and the
// two that say this relay has no tickets at all.
const (
	answerRoomExists  = "Room exists" // another member restored it first: join it
	answerTryAgain    = "Try again"   // the server could not tell yet: restore again shortly
	answerTicketsOff  = "Tickets are off"
	answerUnknownType = "Unknown message type" // the old relay has no restore
)

// step is what a reconnect does after the server refused a rejoin or a
// restore.
type step int

const (
	stepRetry     step = iota // not about the room: back off and try the same again
	stepWaitRoom              // no room and no ticket: wait for a moving room (RoomWait)
	stepRestore               // no room, or not sure yet: restore next (RoomWait)
	stepJoin                  // another member restored the room: join it at once
	stepNoTickets             // this relay has no tickets: wait as without one
	stepFinal                 // the restore was refused for good: the room is gone
)

// nextStep decides a reconnect's next try from the server's answer to the
// last one (a restore when restoring), and whether a ticket is held.
func nextStep(answer string, restoring, haveTicket bool) step {
	switch {
	case !restoring && answer == "Room not found" && haveTicket:
		return stepRestore
	case !restoring && answer == "Room not found":
		return stepWaitRoom
	case !restoring:
		return stepRetry
	case answer == answerRoomExists:
		return stepJoin
	case answer == answerTryAgain:
		return stepRestore
	case answer == answerTicketsOff || answer == answerUnknownType:
		return stepNoTickets
	}
	return stepFinal // Invalid ticket, Ticket expired, Not in this ticket, Room ended, a join's refusal
}

// addTickets asks for tickets on a create, join or restore.
func (c *Client) addTickets(msg map[string]any) {
	if !c.opts.NoTickets {
		msg["tickets"] = true
	}
}

// keepTicket records a ticket frame's ticket (the freshest wins: they come
// in order on one socket).
func (c *Client) keepTicket(t string) {
	if t == "" || c.opts.NoTickets {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ticket = t
}

// keepState records the last state seen (from the server, or set by this
// client as host): a restore presents it, and the room gets it back when
// the ticket holds its digest.
func (c *Client) keepState(data json.RawMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state = data
}

func (c *Client) haveTicket() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.ticket != "" }

// forgetTicket drops the ticket and state: the room ended, the client
// left, or the relay has no tickets.
func (c *Client) forgetTicket() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ticket, c.state = "", nil
}

// restoreMsg is the restore of the client's room, and the URL it goes to:
// by code, never pinned (the pinned machine is the one that was lost).
func (c *Client) restoreMsg() (map[string]any, string) {
	c.mu.Lock()
	msg := map[string]any{"type": "restore", "clientId": c.opts.ClientID, "ticket": c.ticket}
	if c.state != nil {
		msg["state"] = c.state
	}
	u := c.opts.URL + "/" + url.PathEscape(c.room)
	c.mu.Unlock()
	c.addTickets(msg)
	c.addRecovery(msg) // with since: a room that is here already replays what this client missed
	return msg, u
}
