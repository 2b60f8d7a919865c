package server

import (
	"testing"

	"github.com/party-sockets/party-sockets/internal/wire"
)

func BenchmarkDecodeSend(b *testing.B) {
	frame := []byte(`{"type":"send","data":{"q":12345,"t":1732270000000000000,"p":"abcdefghijklmnopqrstuvwxyz0123"}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		m, err := wire.Decode(frame)
		if err != nil || m.Type != "send" {
			b.Fatal(err)
		}
		_ = wire.Compact(m.Data)
	}
}

func BenchmarkDecodeCreate(b *testing.B) {
	frame := []byte(
		`{"type":"create","clientId":"3f1c9a7e-5b2d-4e8f-9a6b-1c2d3e4f5a6b","maxClients":8,"url":"https://game.example/play/{room}"}`,
	)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := wire.Decode(frame); err != nil {
			b.Fatal(err)
		}
	}
}
