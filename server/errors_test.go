package server

import (
	"strings"
	"testing"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// Every row of the contract's error table, over a real socket; the
// connection stays open after each (checked by the next row on the same
// socket and a final round trip).
func TestErrorTable(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{})
	big := `"` + strings.Repeat("a", 16385-2) + `"`
	tests := []struct {
		name  string
		setup string // "" alone, "host" in a fresh room as host, "guest" as slot 1
		msg   string
		want  string
	}{
		{"not json", "", `{"type":`, "Invalid JSON"},
		{"not json text", "", `hello`, "Invalid JSON"},
		{"array", "", `[1,2]`, "Unknown message type"},
		{"number", "", `42`, "Unknown message type"},
		{"missing type", "", `{"clientId":"a"}`, "Unknown message type"},
		{"unknown type", "", `{"type":"dance"}`, "Unknown message type"},
		{"type not string", "", `{"type":7}`, "Unknown message type"},
		{"create in room", "host", `{"type":"create","clientId":"z","maxClients":2}`, "Already in a room"},
		{"join in room", "guest", `{"type":"join","clientId":"z","room":"x"}`, "Already in a room"},
		{"create no clientId", "", `{"type":"create","maxClients":2}`, "clientId is required"},
		{"create empty clientId", "", `{"type":"create","clientId":"","maxClients":2}`, "clientId is required"},
		{"create number clientId", "", `{"type":"create","clientId":5,"maxClients":2}`, "clientId is required"},
		{"join no clientId", "", `{"type":"join","room":"x"}`, "clientId is required"},
		{"maxClients missing", "", `{"type":"create","clientId":"a"}`, "maxClients must be a positive number"},
		{"maxClients string", "", `{"type":"create","clientId":"a","maxClients":"4"}`, "maxClients must be a positive number"},
		{"maxClients zero", "", `{"type":"create","clientId":"a","maxClients":0}`, "maxClients must be a positive number"},
		{"maxClients half", "", `{"type":"create","clientId":"a","maxClients":0.5}`, "maxClients must be a positive number"},
		{"maxClients null", "", `{"type":"create","clientId":"a","maxClients":null}`, "maxClients must be a positive number"},
		{"room missing", "", `{"type":"join","clientId":"a"}`, "room is required"},
		{"room empty", "", `{"type":"join","clientId":"a","room":""}`, "room is required"},
		{"room number", "", `{"type":"join","clientId":"a","room":123456}`, "room is required"},
		{"room unknown", "", `{"type":"join","clientId":"a","room":"nope42"}`, "Room not found"},
		{"send alone", "", `{"type":"send","data":1}`, "Not in a room"},
		{"set_state alone", "", `{"type":"set_state","data":1}`, "Not in a room"},
		{"close_room alone", "", `{"type":"close_room"}`, "Not in a room"},
		{"to negative", "host", `{"type":"send","data":1,"to":-1}`, "Target peer not found"},
		{"to fraction", "host", `{"type":"send","data":1,"to":0.5}`, "Target peer not found"},
		{"to string", "host", `{"type":"send","data":1,"to":"0"}`, "Target peer not found"},
		{"to null", "host", `{"type":"send","data":1,"to":null}`, "Target peer not found"},
		{"to unused slot", "host", `{"type":"send","data":1,"to":5}`, "Target peer not found"},
		{"to over 2^53", "host", `{"type":"send","data":1,"to":9007199254740992}`, "Target peer not found"},
		{"guest set_state", "guest", `{"type":"set_state","data":1}`, "Only the host can set state"},
		{"set_state no data", "host", `{"type":"set_state"}`, "State data is required"},
		{"set_state too large", "host", `{"type":"set_state","data":` + big + `}`, "State too large"},
		{"guest close", "guest", `{"type":"close_room"}`, "Only the host can close the room"},
		{"url number", "", `{"type":"create","clientId":"a","maxClients":2,"url":5}`, "url must be a string"},
		{"url null", "", `{"type":"create","clientId":"a","maxClients":2,"url":null}`, "url must be a string"},
		{
			"url too large",
			"",
			`{"type":"create","clientId":"a","maxClients":2,"url":"https://x.example/` + strings.Repeat("a", 500) + `"}`,
			"url too large",
		},
		{
			"url space",
			"",
			`{"type":"create","clientId":"a","maxClients":2,"url":"https://x.example/ a"}`,
			"url must not contain spaces or control characters",
		},
		{
			"url control",
			"",
			`{"type":"create","clientId":"a","maxClients":2,"url":"https://x.example/\u0001"}`,
			"url must not contain spaces or control characters",
		},
		{
			"url placeholder",
			"",
			`{"type":"create","clientId":"a","maxClients":2,"url":"https://x.example/{code}"}`,
			"Unknown url placeholder: {code}",
		},
		{
			"url brace",
			"",
			`{"type":"create","clientId":"a","maxClients":2,"url":"https://x.example/{room"}`,
			"url has an unmatched placeholder brace",
		},
		{"url relative", "", `{"type":"create","clientId":"a","maxClients":2,"url":"/play/{room}"}`, "url is not a valid URL"},
		{"url http", "", `{"type":"create","clientId":"a","maxClients":2,"url":"http://x.example/{room}"}`, "url must be an https URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testutil.Dial(t, ts.URL)
			switch tt.setup {
			case "host":
				c.Create("h", 4)
			case "guest":
				h := testutil.Dial(t, ts.URL)
				code := h.Create("h", 4)
				c.Join(code, "g")
				c.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0]}`)
			}
			c.Send(tt.msg)
			c.ExpectErr(tt.want)
			// Still open and still usable: the same error again.
			c.Send(tt.msg)
			c.ExpectErr(tt.want)
		})
	}
	// Every error sent is counted under its own label, none as "other",
	// and a placeholder's name is not part of the label.
	kinds := map[string]float64{}
	for _, m := range gather(t, ts.reg)["party_sockets_errors_total"].GetMetric() {
		kinds[labels(m)["kind"]] += m.GetCounter().GetValue()
	}
	total := 0.0
	for _, n := range kinds {
		total += n
	}
	if total != float64(2*len(tests)) || kinds["other"] != 0 || kinds["Unknown url placeholder"] != 2 {
		t.Errorf("errors_total: %v in all, %v other, %v \"Unknown url placeholder\"; want %d, 0, 2",
			total, kinds["other"], kinds["Unknown url placeholder"], 2*len(tests))
	}
}

func TestDrainingRefusesCreateOnly(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{})
	h := testutil.Dial(t, ts.URL)
	code := h.Create("h", 4)
	ts.Drain()
	c := testutil.Dial(t, ts.URL)
	c.Send(`{"type":"create","clientId":"x","maxClients":2}`)
	c.ExpectErr("Server draining")
	// Draining comes before "Already in a room" in the contract's order.
	h.Send(`{"type":"create","clientId":"x","maxClients":2}`)
	h.ExpectErr("Server draining")
	c.Join(code, "g")
	c.Expect(`{"type":"joined","room":"` + code + `","index":1,"peers":[0]}`)
	h.Expect(`{"type":"peer_joined","index":1}`)
	c.Send(`{"type":"send","data":"still here"}`)
	h.Expect(`{"type":"message","from":1,"data":"still here"}`)
}
