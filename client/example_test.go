package client_test

import (
	"context"
	"fmt"
	"log"

	"github.com/party-sockets/party-sockets/client"
)

// relay is your app's address: wss://<app>.fly.dev on Fly, or
// http://127.0.0.1:8080 for the local cluster. (This example's test runs
// it against a relay on loopback.)
var relay = "wss://my-app.fly.dev"

// A whole game: the host creates a room, a player joins by its code and
// buzzes, the host keeps the result as the room's state, which the player
// receives, and closes the room, which ends both clients for good.
func Example() {
	ctx := context.Background()

	// The host (the TV) creates a room for up to 8 and shows its code.
	host, err := client.Create(ctx, client.Options{URL: relay}, 8, "")
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close()

	// A player (a phone) joins by the code and buzzes.
	player, err := client.Join(ctx, client.Options{URL: relay}, host.Room())
	if err != nil {
		log.Fatal(err)
	}
	defer player.Close()
	if err := player.Send(ctx, map[string]any{"buzz": true}); err != nil {
		log.Print(err) // client.ErrNotConnected while reconnecting: not sent
	}

	// The host's loop: every event in order, until Closed, the last one.
	for ev := range host.Events() {
		switch ev := ev.(type) {
		case client.PeerJoined:
			fmt.Println("a player is in slot", ev.Index)
		case client.Message:
			fmt.Printf("slot %d sent %s\n", ev.From, ev.Data)
			// The room's state reaches every player, and a player who
			// joins or reconnects later gets it first.
			host.SetState(ctx, map[string]any{"first": ev.From})
			host.CloseRoom(ctx) // the game is over: everyone gets Closed
		case client.Reconnecting:
			// The link dropped: the client rejoins its slot by itself.
			fmt.Println("reconnecting: attempt", ev.Attempt)
		case client.Closed:
			fmt.Println("host:", ev.Reason, "final:", ev.Final)
		}
	}

	// The player's loop: the state the host set, then the end.
	for ev := range player.Events() {
		switch ev := ev.(type) {
		case client.State:
			fmt.Printf("player sees the state %s\n", ev.Data)
		case client.Closed:
			fmt.Println("player:", ev.Reason, "final:", ev.Final)
		}
	}
	// Output:
	// a player is in slot 1
	// slot 1 sent {"buzz":true}
	// host: room closed final: true
	// player sees the state {"first":1}
	// player: room closed final: true
}
