package server

import (
	"net/http"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// A holder found is remembered for 30 s (routing.DefaultFoundTTL), but
// not past a replay that could not reach it: once a fallback delivery
// names the holder and DNS no longer lists it, the code is asked for
// again, and not sent to a machine that is gone.
func TestFoundHolderForgottenWhenAReplayToItFails(t *testing.T) {
	fly := testutil.StartFlyDNS(t, "app")
	port := testutil.FreePort(t)
	_, bURL := machineAt(t, fly, "0a1b2c3d4e5fb2", "127.0.13.3", port, Config{}, false)
	_, aURL := machineAt(t, fly, "0a1b2c3d4e5fa1", "127.0.13.2", port, Config{}, false)
	host := testutil.Dial(t, bURL)
	code := host.Create("h", 4)
	for i, want := range []string{"found", "remembered"} {
		if status, replay := lookupStatus(t, aURL+"/room/"+code, asPlayer("203.0.113.9")); status != 409 ||
			replay != "instance=0a1b2c3d4e5fb2;timeout=5s;fallback=force_self;state=probe" {
			t.Fatalf("lookup %d (%s): %d %q, want a replay to b", i, want, status, replay)
		}
	}
	fly.Remove("0a1b2c3d4e5fb2") // b stops; the proxy's replay to it fails and comes back
	hdr := asPlayer("203.0.113.9")
	hdr.Set("Fly-Replay-Failed", "instance=0a1b2c3d4e5fb2;app=app;region=fra;reason=unreachable")
	if status, _ := lookupStatus(t, aURL+"/room/"+code, hdr); status != 404 {
		t.Fatalf("the fallback delivery = %d, want 404 (served here)", status)
	}
	testutil.Eventually(t, 5*time.Second, "the lookup to stop naming the gone holder", func() bool {
		status, replay := lookupStatus(t, aURL+"/room/"+code, asPlayer("203.0.113.10"))
		return status == http.StatusNotFound && replay == ""
	})
}
