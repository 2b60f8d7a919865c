package client_test

import (
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/party-sockets/party-sockets/regions"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/server"
)

// TestMain starts the relay the examples talk to, out of their sight: a
// reader of Example sees only the client's API and the app's address.
func TestMain(m *testing.M) {
	mgr := rooms.NewManager(rooms.Config{HostGrace: time.Minute, Codes: regions.NewGenerator("", nil)})
	reg := prometheus.NewRegistry()
	hs := httptest.NewServer(server.New(server.Config{Logger: slog.New(slog.DiscardHandler)}, mgr, reg, reg))
	relay = hs.URL
	code := m.Run()
	hs.Close()
	os.Exit(code)
}
