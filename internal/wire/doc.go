// Package wire is the JSON message layer of the protocol (docs/protocol.md): decoding a client's frame, encoding every frame the
// server sends, and the errors a client can see, each a typed Error with a
// fixed metric label. It knows nothing of rooms or sockets; WebSocket
// framing is not here.
//
// It is internal: only the server's packages speak it. Clients parse
// frames with encoding/json (client/) or JSON.parse (clients/js), and
// switch on the close codes, which are public in closecode.
//
// The decoder is hand-written: it checks a frame with json.Valid and
// utf8.Valid, then finds the top-level keys by scanning, and never builds
// the data it relays: a send's decode costs one allocation of 4 bytes
// (BENCHMARKS.md, "Hot paths").
package wire
