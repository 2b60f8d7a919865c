package main

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/party-sockets/party-sockets/regions"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/server"
)

func testServer(t *testing.T) string {
	t.Helper()
	mgr := rooms.NewManager(rooms.Config{HostGrace: time.Minute, Codes: regions.NewGenerator("", nil)})
	reg := prometheus.NewRegistry()
	hs := httptest.NewServer(server.New(server.Config{Logger: slog.New(slog.DiscardHandler)}, mgr, reg, reg))
	t.Cleanup(hs.Close)
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/"
}

// Each shape, small and bounded, against the real server: every message
// counted, none lost or reordered.
func TestShapes(t *testing.T) {
	url := testServer(t)
	ctx := t.Context()
	base := config{url: url, rooms: 3, size: 4, rate: 50, duration: 300 * time.Millisecond, drain: 2 * time.Second, payload: 64}
	noop := func() {}

	res, _, err := runFanoutMeasured(ctx, base, noop, noop)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent == 0 || res.Delivered != res.Expected || res.Expected != res.Sent*3 || res.Lost+res.Reordered+res.Errors != 0 {
		t.Fatalf("open loop: %+v", res)
	}
	if res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 {
		t.Fatalf("open loop latency: %+v", res.Latency)
	}

	closed := base
	closed.window = 4
	res, _, err = runFanoutMeasured(ctx, closed, noop, noop)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent == 0 || res.Delivered != res.Expected || res.Lost+res.Reordered+res.Errors != 0 {
		t.Fatalf("closed loop: %+v", res)
	}

	stalled := base
	stalled.stall = 1
	res, _, err = runFanoutMeasured(ctx, stalled, noop, noop)
	if err != nil {
		t.Fatal(err)
	}
	if res.Delivered != res.Expected || res.Expected != res.Sent*2 {
		t.Fatalf("with a stalled member: %+v (each message should reach the 2 other healthy members)", res)
	}

	idle := base
	idle.conns = 10
	held := false
	ires, err := runIdle(ctx, idle, func() { held = true })
	if err != nil || ires.Connections != 10 || ires.Rooms != 3 || !held {
		t.Fatalf("idle: %+v %v held=%v", ires, err, held)
	}

	churn := base
	churn.parallel = 2
	cres, err := runChurn(ctx, churn)
	if err != nil || cres.Cycles == 0 || cres.Errors != 0 {
		t.Fatalf("churn: %+v %v", cres, err)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, u := range []string{"ws://127.0.0.1:3000/", "ws://localhost:1/", "ws://[::1]:2/", "ws://127.9.9.9/"} {
		if err := checkLoopback(u); err != nil {
			t.Errorf("checkLoopback(%q) = %v", u, err)
		}
	}
	for _, u := range []string{"ws://10.0.0.1/", "wss://example.com/", "ws://192.168.1.2:3000/"} {
		if err := checkLoopback(u); err == nil {
			t.Errorf("checkLoopback(%q) accepted a non-loopback target", u)
		}
	}
}
