// Package client is the Go client of party-sockets, a WebSocket room
// server for party games: a host creates a room and gets a short code,
// players join by that code, and every message goes through the room.
//
//	go get github.com/party-sockets/party-sockets/client
//
// A whole game, host and player in one program; Options.URL is your
// app's address (wss://<app>.fly.dev, or http://127.0.0.1:8080 for the
// local cluster):
//
//	ctx := context.Background()
//	relay := client.Options{URL: "wss://my-app.fly.dev"}
//
//	// The host (the TV) creates a room for up to 8 and shows its code.
//	host, err := client.Create(ctx, relay, 8, "")
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer host.Close()
//	fmt.Println("join with the code", host.Room())
//
//	// A player (a phone) joins by the code and buzzes.
//	player, err := client.Join(ctx, relay, host.Room())
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer player.Close()
//	if err := player.Send(ctx, map[string]any{"buzz": true}); err != nil {
//		log.Print(err) // client.ErrNotConnected while reconnecting: not sent
//	}
//
//	// The host's loop: every event in order, until Closed, the last one.
//	for ev := range host.Events() {
//		switch ev := ev.(type) {
//		case client.PeerJoined:
//			fmt.Println("a player is in slot", ev.Index)
//		case client.Message:
//			fmt.Printf("slot %d sent %s\n", ev.From, ev.Data)
//			// The room's state reaches every player, and a player who
//			// joins or reconnects later gets it first.
//			host.SetState(ctx, map[string]any{"first": ev.From})
//			host.CloseRoom(ctx) // the game is over: everyone gets Closed
//		case client.Reconnecting:
//			fmt.Println("link lost, reconnecting: attempt", ev.Attempt)
//		case client.Closed:
//			fmt.Println("host:", ev.Reason, "final:", ev.Final)
//		}
//	}
//
//	// The player's loop: the state the host set, then the end.
//	for ev := range player.Events() {
//		switch ev := ev.(type) {
//		case client.State:
//			fmt.Printf("player sees the state %s\n", ev.Data)
//		case client.Closed:
//			fmt.Println("player:", ev.Reason, "final:", ev.Final)
//		}
//	}
//
// Each client reconnects by itself when its link drops: it backs off with
// jitter, rejoins with the same clientId (so it keeps its slot), pins the
// room's machine with ?instance=, and gets the messages it missed again
// (message recovery; RecoveryFailed says when the server no longer had
// them, and the retained state follows). While it reconnects, sends fail
// with ErrNotConnected: nothing is dropped silently. It stops for good,
// with a final Closed event, on 4000 (replaced: the same clientId joined
// elsewhere), 4001 (room closed) or a room that no longer exists.
//
// A room whose machine crashed (kill -9) comes back: the client keeps the
// room's sealed ticket and the last state it saw, and when a rejoin
// answers "Room not found" it restores the room on a sibling from them,
// or joins the copy another member restored (a Restored event follows
// the Joined; RestoreFailed carries the server's answer when it is
// refused). Options.NoTickets turns this off.
//
// A link that dies without ending (a black-holed network: no close, no
// reset) is noticed by the heartbeat: while nothing comes from the server
// for Options.Heartbeat (5 s) the client sends {"type":"ping"}, and when
// it has had no answer for a heartbeat more it reconnects
// (Reconnecting.Err is ErrDeadLink). A Rejoin of a room that is gone fails with an error
// matching ErrRoomGone: create a new room then.
//
// A Client is safe for concurrent use. Read its Events: a client whose
// 256 buffered events are not read stops reading its socket until they
// are, and a server whose queue for it fills meanwhile closes it as too
// slow (4002; it then reconnects).
package client
