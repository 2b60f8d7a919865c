package testutil

import (
	"testing"

	"github.com/party-sockets/party-sockets/internal/flydns"
)

// StartFlyDNS serves Fly's internal names for app (internal/flydns: a real
// miekg/dns server, UDP and TCP on loopback) until the test ends.
func StartFlyDNS(t testing.TB, app string) *flydns.Server {
	t.Helper()
	f, err := flydns.Listen(app, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}
