package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/party-sockets/party-sockets/closecode"
	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/internal/ticket"
	"github.com/party-sockets/party-sockets/rooms"
)

// ticketFrom reads frames until a ticket and returns it; the room's
// comings and goings on the way are skipped.
func ticketFrom(t *testing.T, c *testutil.Client) string {
	t.Helper()
	f := c.ExpectType("ticket")
	var v struct{ Ticket string }
	if err := json.Unmarshal([]byte(f.Raw), &v); err != nil || v.Ticket == "" || len(v.Ticket) > ticket.MaxBytes {
		t.Fatalf("ticket frame %.200s: %v", f.Raw, err)
	}
	if strings.Contains(f.Raw, `"seq"`) {
		t.Fatalf("a ticket frame is numbered: %s", f.Raw)
	}
	return v.Ticket
}

func restoreMsg(clientID, tk string, extra string) string {
	b, _ := json.Marshal(tk)
	return `{"type":"restore","clientId":"` + clientID + `","ticket":` + string(b) + extra + `}`
}

// firstTicket waits for a room's first ticket to be due (created and
// joined are sent a moment before it is armed: timers is how many the
// fake clock then holds), then lets the clock run it.
func firstTicket(t *testing.T, ts *testServer, timers ...int) {
	t.Helper()
	want := append(timers, 1)[0]
	testutil.Eventually(t, 5*time.Second, "the first ticket armed", func() bool { return ts.clock.Pending() >= want })
	ts.clock.Advance(0)
}

func ticketServer(t *testing.T, secret string) *testServer {
	t.Helper()
	return newTestServer(t, Config{HandoffSecret: secret})
}

// roomWithTicket makes a room of host and p1 on ts, both opted in, with
// state {"round":2}, and returns its code and its newest ticket.
func roomWithTicket(t *testing.T, ts *testServer) (code, tk string, host, p1 *testutil.Client) {
	t.Helper()
	host = testutil.Dial(t, ts.URL)
	host.Send(`{"type":"create","clientId":"host","maxClients":8,"tickets":true}`)
	code = host.ExpectType("created").Room
	firstTicket(t, ts)
	ticketFrom(t, host)
	p1 = testutil.Dial(t, ts.URL)
	p1.Send(`{"type":"join","room":"` + code + `","clientId":"p1","tickets":true}`)
	p1.ExpectType("joined")
	host.Send(`{"type":"set_state","data":{"round":2}}`)
	p1.Expect(`{"type":"state","data":{"round":2}}`)
	ts.clock.Advance(rooms.TicketGap)
	tk = ticketFrom(t, host)
	if got := ticketFrom(t, p1); got != tk {
		t.Fatal("two members of one room got different tickets from one issue")
	}
	return code, tk, host, p1
}

// TestTicketsOptIn: only a member that sent "tickets": true gets tickets,
// unnumbered even when it recovers, and a stranger's join churn reissues
// at most once per gap.
func TestTicketsOptIn(t *testing.T) {
	t.Parallel()
	ts := ticketServer(t, testSecret)
	host := testutil.Dial(t, ts.URL)
	host.Send(`{"type":"create","clientId":"host","maxClients":8,"tickets":true,"recover":true}`)
	code := host.ExpectType("created").Room
	firstTicket(t, ts)
	ticketFrom(t, host)
	plain := testutil.Dial(t, ts.URL)
	plain.Join(code, "plain")
	plain.ExpectType("joined")
	for i := range 5 {
		c := testutil.Dial(t, ts.URL)
		c.Join(code, "churn"+itoa(i))
		c.ExpectType("joined")
		c.Leave()
	}
	ts.clock.Advance(rooms.TicketGap)
	ticketFrom(t, host)
	host.Send(`{"type":"send","data":"hi"}`)
	if f := plain.ExpectType("message"); f.Text() != "hi" {
		t.Fatalf("plain member got %s", f.Raw)
	}
	if n := counter(t, ts.reg, "party_sockets_tickets_issued_total", "", ""); n != 2 {
		t.Errorf("tickets issued: %v, want 2 (create, then one for the churn)", n)
	}
}

// TestTicketsOff: without a secret a member that asks is told once, and a
// restore is refused the same way.
func TestTicketsOff(t *testing.T) {
	t.Parallel()
	ts := ticketServer(t, "")
	host := testutil.Dial(t, ts.URL)
	host.Send(`{"type":"create","clientId":"host","maxClients":8,"tickets":true}`)
	host.ExpectType("created")
	host.ExpectErr("Tickets are off")
	c := testutil.Dial(t, ts.URL)
	c.Send(restoreMsg("host", "AAAA", ""))
	c.ExpectErr("Tickets are off")
}

// TestRestoreOnAnotherMachine: the room's machine is gone; a member
// rebuilds the room on another (same secret) with its state; the host
// joins the room another member restored.
func TestRestoreOnAnotherMachine(t *testing.T) {
	t.Parallel()
	a, b := ticketServer(t, testSecret), ticketServer(t, testSecret)
	code, tk, _, _ := roomWithTicket(t, a)
	p1 := testutil.Dial(t, b.URL)
	p1.Send(restoreMsg("p1", tk, `,"state":{ "round": 2 },"tickets":true`))
	p1.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[],"restored":true}`)
	p1.Expect(`{"type":"state","data":{"round":2}}`)
	firstTicket(t, b, 2) // and the host's grace
	ticketFrom(t, p1)
	host := testutil.Dial(t, b.URL)
	host.Send(restoreMsg("host", tk, `,"recover":true`))
	host.Expect(`{"type":"joined","room":"` + code + `","index":0,"peers":[1],"rebuilt":true,"seq":0,"recovered":false}`)
	host.Expect(`{"type":"state","data":{"round":2}}`)
	p1.Expect(`{"type":"peer_joined","index":0}`)
	p2 := testutil.Dial(t, b.URL)
	p2.Join(code, "p2")
	if f := p2.ExpectType("joined"); f.Index != 2+64 {
		t.Errorf("a new member got index %d, want the ticket's next, 2, past the rebuilt room's gap of 64", f.Index)
	}
	if n := counter(t, b.reg, "party_sockets_restores_total", "result", "restored"); n != 1 {
		t.Errorf("restores restored: %v, want 1", n)
	}
	if n := counter(t, b.reg, "party_sockets_restores_total", "result", "joined"); n != 1 {
		t.Errorf("restores joined: %v, want 1", n)
	}
}

// TestRestoreStateDigest: a state whose digest is not the ticket's is not
// taken; the host sets the state meanwhile.
func TestRestoreStateDigest(t *testing.T) {
	t.Parallel()
	a, b := ticketServer(t, testSecret), ticketServer(t, testSecret)
	code, tk, _, _ := roomWithTicket(t, a)
	p1 := testutil.Dial(t, b.URL)
	p1.Send(restoreMsg("p1", tk, `,"state":{"round":99}`))
	p1.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[],"restored":true}`)
	host := testutil.Dial(t, b.URL)
	host.Send(restoreMsg("host", tk, ``))
	host.Expect(`{"type":"joined","room":"` + code + `","index":0,"peers":[1],"rebuilt":true}`)
	p1.Expect(`{"type":"peer_joined","index":0}`)
	host.Send(`{"type":"set_state","data":{"round":3}}`)
	p1.Expect(`{"type":"state","data":{"round":3}}`)
}

// TestRestoreRefused: every check's failure string, and what a restore
// costs a stranger.
func TestRestoreRefused(t *testing.T) {
	t.Parallel()
	a := ticketServer(t, testSecret)
	code, tk, host, _ := roomWithTicket(t, a)
	altered := []byte(tk)
	altered[len(altered)/2] ^= 'A' ^ 'B'
	if altered[len(altered)/2] == tk[len(tk)/2] {
		altered[len(altered)/2] = 'C'
	}
	other := ticketServer(t, "another app's secret")
	_, otherTk, _, _ := roomWithTicket(t, other)
	b := ticketServer(t, testSecret)
	tests := []struct {
		name, msg, want string
	}{
		{"forged", restoreMsg("p1", strings.Repeat("A", 200), ""), "Invalid ticket"},
		{"altered", restoreMsg("p1", string(altered), ""), "Invalid ticket"},
		{"another app's key", restoreMsg("p1", otherTk, ""), "Invalid ticket"},
		{"oversize", restoreMsg("p1", tk+strings.Repeat("A", ticket.MaxBytes), ""), "Invalid ticket"},
		{"not a string", `{"type":"restore","clientId":"p1","ticket":42}`, "Invalid ticket"},
		{"no clientId", `{"type":"restore","ticket":"x"}`, "clientId is required"},
		{"a stranger", restoreMsg("stranger", tk, ""), "Not in this ticket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testutil.Dial(t, b.URL)
			c.Send(tt.msg)
			c.ExpectErr(tt.want)
		})
	}
	// Held here: the restore joins the live room (no "restored").
	c := testutil.Dial(t, a.URL)
	c.Send(restoreMsg("p1", tk, ""))
	c.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0]}`)
	c.Expect(`{"type":"state","data":{"round":2}}`)
	c.Send(restoreMsg("p1", tk, ""))
	c.ExpectErr("Already in a room")
	// Ended here: refused for the window.
	host.Send(`{"type":"close_room"}`)
	host.ExpectClose(4001, "room closed")
	c.ExpectClose(4001, "room closed")
	d := testutil.Dial(t, a.URL)
	d.Send(restoreMsg("p1", tk, ""))
	d.ExpectErr("Room ended")
	// Too old.
	a.clock.Advance(ticket.Window + time.Second)
	e := testutil.Dial(t, a.URL)
	e.Send(restoreMsg("p1", tk, ""))
	e.ExpectErr("Ticket expired")
}

// TestRestoreMisses: an invalid ticket is a failed lookup (a ticket is
// free to get); a valid one's restore is not, however many.
func TestRestoreMisses(t *testing.T) {
	t.Parallel()
	a := newTestServer(t, Config{HandoffSecret: testSecret, JoinMissesPerMin: 3})
	_, tk, _, _ := roomWithTicket(t, a)
	for range 10 {
		c := testutil.Dial(t, a.URL)
		c.Send(restoreMsg("p1", tk, ""))
		c.ExpectType("joined")
		c.Leave()
	}
	c := testutil.Dial(t, a.URL)
	for range 3 {
		c.Send(restoreMsg("p1", "forged"+strings.Repeat("A", 60), ""))
		c.ExpectErr("Invalid ticket")
	}
	c.Send(restoreMsg("p1", tk, ""))
	c.ExpectErr("Too many failed joins, try again later")
}

// TestRoomTooLargeForTicket: a room whose ticket would pass the bound
// gets none, and each member that opted in is told once.
func TestRoomTooLargeForTicket(t *testing.T) {
	t.Parallel()
	ts := ticketServer(t, testSecret)
	host := testutil.Dial(t, ts.URL)
	host.Send(`{"type":"create","clientId":"host","maxClients":500,"tickets":true,"url":"https://game.example/` +
		strings.Repeat("u", 400) + `"}`)
	code := host.ExpectType("created").Room
	firstTicket(t, ts)
	ticketFrom(t, host)
	for i := range 200 { // 200 slots: past what a ticket holds
		if _, _, err := ts.rooms.Join(code, "member"+itoa(i), nopMember{}, rooms.JoinOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ts.clock.Advance(rooms.TicketGap)
	if f := host.ExpectType("error"); f.Message != "Room too large for a ticket" { // the peer_joined frames skipped
		t.Fatalf("got %s", f.Raw)
	}
	ts.clock.Advance(ticket.ReissueEvery)
	host.Send(`{"type":"send","data":"after"}`)
	ts.rooms.Join(code, "member0", nopMember{}, rooms.JoinOptions{}) // a reconnect: no frame to the host
	b := testutil.Dial(t, ts.URL)
	b.Join(code, "probe")
	host.ExpectType("peer_joined")
	if n := counter(t, ts.reg, "party_sockets_errors_total", "kind", "Room too large for a ticket"); n != 2 {
		t.Errorf("Room too large errors counted: %v, want 2 (one per issue)", n)
	}
}

type nopMember struct{}

func (nopMember) Send([]byte)         {}
func (nopMember) Close(closecode.End) {}

// counter is the value of a counter's series with label = value (""
// for a counter without labels), -1 when there is none.
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	for _, m := range gather(t, reg)[name].GetMetric() {
		if label == "" || labels(m)[label] == value {
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// TestJoinOnItsWayIsNotAMiss: a rejoin of a room this machine handed off
// moments ago, or whose restore is running here, is not a miss; a join of
// an unknown code still is.
func TestJoinOnItsWayIsNotAMiss(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{HandoffSecret: testSecret, JoinMissesPerMin: 2})
	var codes []string
	for i := range 4 { // distinct codes: one code's repeats count once anyway
		code := "MOVED" + itoa(i)
		ts.movedMu.Lock()
		ts.moved[code] = "0000000300000a"
		ts.movedMu.Unlock()
		codes = append(codes, code)
		code = "RESTO" + itoa(i)
		release, _ := ts.restoring.lock(code, time.Second)
		defer release()
		codes = append(codes, code)
	}
	c := testutil.Dial(t, ts.URL)
	for _, code := range codes {
		c.Join(code, "p1")
		c.ExpectErr("Room not found")
	}
	for _, code := range []string{"NOPE01", "NOPE02"} {
		c.Join(code, "p1")
		c.ExpectErr("Room not found")
	}
	c.Join("MOVED0", "p1")
	c.ExpectErr("Too many failed joins, try again later")
}

// TestNotInTicketIsAMiss: a member guessing the others' clientIds with its
// own valid ticket pays for each guess as a failed join (an honest client
// never gets "Not in this ticket"). Before, the guesses were free (an
// attack review of crash-proof rooms, finding 5).
func TestNotInTicketIsAMiss(t *testing.T) {
	t.Parallel()
	a := newTestServer(t, Config{HandoffSecret: testSecret, JoinMissesPerMin: 3})
	_, tk, _, _ := roomWithTicket(t, a)
	c := testutil.Dial(t, a.URL)
	for _, guess := range []string{"player-2", "player-3", "bob"} {
		c.Send(restoreMsg(guess, tk, ""))
		c.ExpectErr("Not in this ticket")
	}
	c.Send(restoreMsg("p1", tk, ""))
	c.ExpectErr("Too many failed joins, try again later")
}

// TestRejoinCarriesItsTicket: a join may carry the member's ticket; a
// forged or altered one is ignored (the join goes on), and a valid one is
// taken (rooms' TestRejoinWithItsTicketTakesItsSlot shows the move up).
func TestRejoinCarriesItsTicket(t *testing.T) {
	t.Parallel()
	a := newTestServer(t, Config{HandoffSecret: testSecret})
	code, tk, _, p1 := roomWithTicket(t, a)
	p1.Drop()
	for _, ticket := range []string{`"forged"`, `42`, `"` + tk + `"`} {
		c := testutil.Dial(t, a.URL)
		c.Send(`{"type":"join","room":"` + code + `","clientId":"p1","ticket":` + ticket + `}`)
		if f := c.ExpectType("joined"); f.Index != 1 {
			t.Errorf("a rejoin with ticket %.12s: slot %d, want its own, 1", ticket, f.Index)
		}
		c.Drop()
	}
}
