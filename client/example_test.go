package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/party-sockets/party-sockets/client"
	"github.com/party-sockets/party-sockets/regions"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/server"
)

// A host creates a room, a player joins it by its code, and the host
// answers the player's message. Against a real relay, URL is the app's
// address (wss://my-app.fly.dev); here it is a relay on loopback.
func Example() {
	mgr := rooms.NewManager(rooms.Config{HostGrace: time.Minute, Codes: regions.NewGenerator("", nil)})
	reg := prometheus.NewRegistry()
	relay := httptest.NewServer(server.New(server.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, mgr, reg, reg))
	defer relay.Close()
	ctx := context.Background()

	host, err := client.Create(ctx, client.Options{URL: relay.URL}, 8, "")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer host.Close()
	code := host.Room()

	player, err := client.Join(ctx, client.Options{URL: relay.URL}, code)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer player.Close()
	player.Send(ctx, map[string]string{"answer": "B"})

	for ev := range host.Events() {
		switch e := ev.(type) {
		case client.PeerJoined:
			fmt.Println("player joined at slot", e.Index)
		case client.Message:
			fmt.Printf("slot %d says %s\n", e.From, e.Data)
			host.SendTo(ctx, e.From, "correct!")
		}
		if _, ok := ev.(client.Message); ok {
			break
		}
	}
	for ev := range player.Events() {
		if m, ok := ev.(client.Message); ok {
			fmt.Printf("the host says %s\n", m.Data)
			break
		}
	}
	// Output:
	// player joined at slot 1
	// slot 1 says {"answer":"B"}
	// the host says "correct!"
}
