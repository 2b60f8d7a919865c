package server

import "testing"

// Sockets of one address share one byte bucket while any of them lives;
// another address has its own; the last socket's release frees it.
func TestAddressSocketsShareOneByteBucket(t *testing.T) {
	l := newAddrLimits(3, 0, 0)
	l.bytesPerSec = 1000
	a1, _ := l.acquire("10.0.0.1")
	a2, _ := l.acquire("10.0.0.1")
	b1, _ := l.acquire("10.0.0.2")
	if a1 == nil || a1.bytes != a2.bytes || a1.bytes == b1.bytes {
		t.Fatalf("buckets %p %p %p: want one for 10.0.0.1's two sockets, another for 10.0.0.2", a1, a2, b1)
	}
	if a1.bytes.b.Burst() != 2000 {
		t.Errorf("burst %v, want 2 s of 1000/s", a1.bytes.b.Burst())
	}
	l.acquire("10.0.0.1")
	if _, ok := l.acquire("10.0.0.1"); ok {
		t.Fatal("a fourth socket of 10.0.0.1 past MAX_CONNS_PER_IP=3")
	}
	for range 3 {
		l.release("10.0.0.1", false)
	}
	l.release("10.0.0.1", false) // once too often: harmless
	if len(l.conns) != 1 {
		t.Fatalf("%d addresses held after 10.0.0.1's sockets ended, want 1", len(l.conns))
	}
	if again, _ := l.acquire("10.0.0.1"); again == a1 {
		t.Error("10.0.0.1's bucket outlived its sockets")
	}
}
