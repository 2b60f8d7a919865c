package routing

import (
	"slices"
	"testing"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

func TestTruncatedUDPRetriesOverTCP(t *testing.T) {
	t.Parallel()
	f := testutil.StartFlyDNS(t, "big")
	for i := range 400 {
		f.Add("d"+fmtInt(100000000+i), "fra", "")
	}
	dnsAddr := f.Addr
	// 6 KB of TXT does not fit a 4 KB UDP answer: truncated, then TCP.
	peers, err := Peers(t.Context(), DNSResolver{Server: dnsAddr}, "big")
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 400 {
		t.Fatalf("got %d peers, want 400", len(peers))
	}
	if f.TCP.Load() != 1 {
		t.Fatalf("%d questions over TCP, want 1", f.TCP.Load())
	}
}

// Peer ids go into fly-replay headers, DNS names and URLs: an entry of the
// TXT record whose id is not shaped like a machine id is left out.
func TestPeersDropsIDsNotShapedLikeMachineIDs(t *testing.T) {
	t.Parallel()
	// The TXT value: "0a1b2c3d4e5f01 fra,x;app=other fra,../../x iad,
	// 0A1B2C3D4E5F02 fra, aaaa0002 syd ,short fra".
	f := testutil.StartFlyDNS(t, "app")
	for _, m := range [][2]string{{"0a1b2c3d4e5f01", "fra"}, {"x;app=other", "fra"}, {"../../x", "iad"},
		{"0A1B2C3D4E5F02", "fra"}, {" aaaa0002", "syd "}, {"short", "fra"}} {
		f.Add(m[0], m[1], "")
	}
	peers, err := Peers(t.Context(), DNSResolver{Server: f.Addr}, "app")
	if err != nil {
		t.Fatal(err)
	}
	want := []Peer{{"0a1b2c3d4e5f01", "fra"}, {"aaaa0002", "syd"}}
	if !slices.Equal(peers, want) {
		t.Fatalf("Peers = %v, want %v", peers, want)
	}
}

// A replay that came back says the cached list of machines is stale: it
// is asked again, at most once a second, however often that is said (a
// client may send the header that says it).
func TestStaleAsksDNSAgainAtMostOnceASecond(t *testing.T) {
	t.Parallel()
	res := &countingResolver{inner: DNSResolver{Server: startFly(t, self+" fra").Addr}}
	p := &Prober{App: "app", Self: self, Resolver: &CachingResolver{Inner: res}}
	Peers(t.Context(), p.Resolver, "app")
	for range 50 {
		p.Stale()
		Peers(t.Context(), p.Resolver, "app")
	}
	if n := res.n.Load(); n != 2 {
		t.Fatalf("%d DNS questions after 50 calls of Stale, want 2 (the first, and one refresh)", n)
	}
}
