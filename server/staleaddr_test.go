package server

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
)

// A deploy during a DNS outage calls siblings at the addresses DNS gave
// last (routing.CachingResolver), which another machine may have taken
// since. Every call is signed for the machine it means: the machine at
// the address refuses it, and the caller does not retry it unsigned (the
// answer carries this release's marker), so nothing meant for a sibling
// lands on another.
func TestCallToAStaleAddressIsRefusedByTheMachineThere(t *testing.T) {
	t.Parallel()
	there := newTestServer(t, Config{Instance: "0000000200000a", HandoffSecret: testSecret})
	from := signer(t, "0000000300000a")
	u, _ := url.Parse(there.URL)
	var load loadInfo
	err := from.internalCall(t.Context(), http.MethodGet, "0000000400000a", u.Host, loadPath, nil, &load)
	var ie *internalError
	if !errors.As(err, &ie) || ie.status != http.StatusUnauthorized {
		t.Fatalf("a call meant for 0000000400000a at 0000000200000a's address: %v, want 401", err)
	}
	if err := from.internalCall(t.Context(), http.MethodGet, "0000000200000a", u.Host, loadPath, nil, &load); err != nil {
		t.Fatalf("the same call meant for the machine there: %v", err)
	}
}
