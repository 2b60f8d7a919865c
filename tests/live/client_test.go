package live

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// dial connects a player through region's edge to path (with query).
func dial(t *testing.T, region, path string, hdr http.Header) *testutil.Client {
	t.Helper()
	p, err := tryDial(t, region, path, hdr)
	if err != nil {
		t.Fatalf("dial %s%s: %v", region, path, err)
	}
	return p
}

// tryDial is dial that returns the failure. The cluster's proxies and
// machines are slower to answer than one server: each wait is 15 s.
// Players leave cleanly (1000) when the test ends: a blip would keep their
// emptied room for the host grace, and a machine holding rooms cannot
// drain.
func tryDial(t *testing.T, region, path string, hdr http.Header) (*testutil.Client, error) {
	testutil.TrackModule(t) // the cluster runs binaries built from the whole module
	h := cluster.edgeHeader(region)
	for k, v := range hdr {
		h[k] = v
	}
	d := testutil.Dialer{Header: h, Timeout: 15 * time.Second, Leave: true}
	p, resp, err := d.TryDial(t, cluster.Edges[region]+path)
	if err != nil && resp != nil {
		return nil, errors.New(resp.Status + ": " + err.Error())
	}
	return p, err
}

// closeWait bounds the wait for a socket's close: a machine that stops
// first hands its rooms off or drains them.
const closeWait = 30 * time.Second

// create makes a room of 8 and returns the created frame.
func create(t *testing.T, p *testutil.Client, clientID string) testutil.Frame {
	t.Helper()
	p.SendJSON(map[string]any{"type": "create", "clientId": clientID, "maxClients": 8})
	return p.ExpectType("created")
}

// join joins the room code and returns the joined frame.
func join(t *testing.T, p *testutil.Client, code, clientID string) testutil.Frame {
	t.Helper()
	p.Join(code, clientID)
	return p.ExpectType("joined")
}

func sortStrings(s []string) []string { slices.Sort(s); return s }
