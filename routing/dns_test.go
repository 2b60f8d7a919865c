package routing

import (
	"slices"
	"strings"
	"testing"
)

func TestTruncatedUDPRetriesOverTCP(t *testing.T) {
	var entries []string
	for i := range 400 {
		entries = append(entries, "d"+fmtInt(100000000+i)+" fra")
	}
	f := &fakeFly{app: "big", txt: strings.Join(entries, ",")}
	dnsAddr := startDNS(t, f)
	// 6 KB of TXT does not fit a 4 KB UDP answer: truncated, then TCP.
	peers, err := Peers(t.Context(), DNSResolver{Server: dnsAddr}, "big")
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 400 {
		t.Fatalf("got %d peers, want 400", len(peers))
	}
	if f.tcp.Load() != 1 {
		t.Fatalf("%d questions over TCP, want 1", f.tcp.Load())
	}
}

// Peer ids go into fly-replay headers, DNS names and URLs: an entry of the
// TXT record whose id is not shaped like a machine id is left out.
func TestPeersDropsIDsNotShapedLikeMachineIDs(t *testing.T) {
	f := &fakeFly{app: "app", txt: "0a1b2c3d4e5f01 fra,x;app=other fra,../../x iad,0A1B2C3D4E5F02 fra, aaaa0002 syd ,short fra"}
	peers, err := Peers(t.Context(), DNSResolver{Server: startDNS(t, f)}, "app")
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
	f := &fakeFly{app: "app", txt: self + " fra"}
	res := &countingResolver{inner: DNSResolver{Server: startDNS(t, f)}}
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
