package routing

import (
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/regions"
)

// sibling is a machine of the app on loopback: it answers GET /room/<code>
// (200 for a code it holds) and GET /.internal/codes?region=r with the
// codes of r it holds, or with status when that is set (an older
// release), and counts both.
type sibling struct {
	status int

	mu   sync.Mutex // guards held
	held []string

	rooms, lists, signed atomic.Int32
}

func (sb *sibling) hold(code string) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	sb.held = append(sb.held, code)
}

func startSibling(t *testing.T, ip string, port int, sb *sibling) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sb.mu.Lock()
		held := slices.Clone(sb.held)
		sb.mu.Unlock()
		switch {
		case r.URL.Path == CodesPath:
			sb.lists.Add(1)
			if r.Header.Get("X-Test-Sig") == "ok" {
				sb.signed.Add(1)
			}
			if sb.status != 0 {
				w.WriteHeader(sb.status)
				return
			}
			codes := []string{}
			for _, c := range held {
				if home, _ := regions.HomeOf(c); home == r.URL.Query().Get("region") {
					codes = append(codes, c)
				}
			}
			json.NewEncoder(w).Encode(map[string][]string{"codes": codes})
		case strings.HasPrefix(r.URL.Path, "/room/"):
			sb.rooms.Add(1)
			if slices.Contains(held, strings.TrimPrefix(r.URL.Path, "/room/")) {
				w.Write([]byte(`{"clients":1}`))
				return
			}
			w.WriteHeader(404)
		default:
			w.WriteHeader(404)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func code(region int, low uint32) string { return regions.Encode(regions.Pack(region, low)) }

const fra, gru = 6, 7 // region indices

// awayNets numbers the awayClusters of this process: each has its own
// 127.0.11N.0/24, so clusters of tests that run at once (on ports found
// free on 127.0.0.1, which may be the same) never share an address.
var awayNets atomic.Int32

// cluster: this machine and one more in fra, one in iad, syd and ams each.
// ams runs an older release (its listing answers 404).
func awayCluster(t *testing.T) (p *Prober, near, iad, syd, ams *sibling) {
	t.Helper()
	port := freePort(t)
	subnet := "127.0." + itoa(110+int(awayNets.Add(1))) + "."
	f := testutil.StartFlyDNS(t, "app")
	f.Add(self, "fra", subnet+"1")
	near, iad, syd, ams = &sibling{}, &sibling{}, &sibling{}, &sibling{status: 404}
	for i, m := range []struct {
		sb     *sibling
		region string
	}{{near, "fra"}, {iad, "iad"}, {syd, "syd"}, {ams, "ams"}} {
		ip := subnet + itoa(i+2)
		startSibling(t, ip, port, m.sb)
		f.Add("aaaa000"+itoa(i+2), m.region, ip)
	}
	p = &Prober{App: "app", Self: self, Port: port, Resolver: DNSResolver{Server: f.Addr}, Wide: true,
		Sign: func(r *http.Request, to string) { r.Header.Set("X-Test-Sig", "ok") }}
	return p, near, iad, syd, ams
}

// Issue 20, finding 5: a wide prober asked every machine of the app about
// every code its region missed. Now a code of this region is looked for
// where it is listed (the listing asked once, signed) and on the machines
// that cannot list; a mistyped one costs its region's probe.
func TestWideProberAsksWhereTheCodeWent(t *testing.T) {
	t.Parallel()
	p, near, iad, syd, ams := awayCluster(t)
	moved, old := code(fra, 1), code(fra, 2)
	iad.hold(moved)
	ams.hold(old)
	p.Learn(t.Context(), "fra") // at start
	if n := iad.lists.Load() + syd.lists.Load() + ams.lists.Load(); n != 3 || iad.signed.Load() != 1 || near.lists.Load() != 0 {
		t.Fatalf("the start's listing asked the machines abroad %d times (iad signed %d, fra's own %d), want once each, signed",
			n, iad.signed.Load(), near.lists.Load())
	}
	if holder, outcome := p.Find(t.Context(), moved, "fra"); holder != "aaaa0003" || outcome != OutcomeFound {
		t.Fatalf("Find(moved to iad) = %q %s", holder, outcome)
	}
	if syd.rooms.Load() != 0 {
		t.Fatal("syd, which lists none of fra's codes, was asked about one")
	}
	if holder, _ := p.Find(t.Context(), old, "fra"); holder != "aaaa0005" {
		t.Fatalf("Find(held by a machine that cannot list) = %q", holder)
	}
	before := [4]int32{near.rooms.Load(), iad.rooms.Load(), syd.rooms.Load(), ams.rooms.Load()}
	for i := range 10 {
		if holder, _ := p.Find(t.Context(), code(fra, uint32(100+i)), "fra"); holder != "" {
			t.Fatalf("a mistyped code was found on %s", holder)
		}
	}
	after := [4]int32{near.rooms.Load(), iad.rooms.Load(), syd.rooms.Load(), ams.rooms.Load()}
	if after[0]-before[0] != 10 || after[1] != before[1] || after[2] != before[2] || after[3]-before[3] != 10 {
		t.Fatalf("10 mistyped codes asked fra %d, iad %d, syd %d, ams %d times; want 10, 0, 0, 10",
			after[0]-before[0], after[1]-before[1], after[2]-before[2], after[3]-before[3])
	}
	if n := iad.lists.Load() + syd.lists.Load() + ams.lists.Load(); n != 3 {
		t.Fatalf("the misses asked for %d more listings, want none: the listing is not due", n-3)
	}
	// gru has no machine: its codes are looked for on the machines that
	// list them, and its listing is asked of every machine, once.
	gone := code(gru, 1)
	syd.hold(gone)
	if holder, _ := p.Find(t.Context(), gone, "gru"); holder != "aaaa0004" {
		t.Fatalf("Find(code of an empty region) = %q", holder)
	}
	for i := range 5 {
		p.Find(t.Context(), code(gru, uint32(100+i)), "gru")
	}
	if near.lists.Load() != 1 || syd.lists.Load() != 2 || iad.rooms.Load() != after[1] {
		t.Fatalf("gru's listing: fra asked %d times, syd %d; iad asked about gru codes %d times",
			near.lists.Load(), syd.lists.Load(), iad.rooms.Load()-after[1])
	}
}

// A prober that is not wide, or cannot sign, lists nothing and asks its
// region only.
func TestNarrowProberListsNothing(t *testing.T) {
	t.Parallel()
	for _, narrow := range []func(*Prober){func(p *Prober) { p.Wide = false }, func(p *Prober) { p.Sign = nil }} {
		p, _, iad, _, ams := awayCluster(t)
		narrow(p)
		moved := code(fra, 1)
		iad.hold(moved)
		p.Learn(t.Context(), "fra")
		if holder, _ := p.Find(t.Context(), moved, "fra"); holder != "" || iad.lists.Load()+iad.rooms.Load()+ams.rooms.Load() != 0 {
			t.Fatalf("a narrow prober found %q, asked iad %d times", holder, iad.lists.Load()+iad.rooms.Load())
		}
	}
}

// A listing is asked again only when a code of its region was missed and
// it is due: soon after one that learned something, twice as long after
// each that learned nothing.
func TestListingAskedAgainWhenDue(t *testing.T) {
	t.Parallel()
	p, _, iad, _, _ := awayCluster(t)
	p.Relist, p.NegativeTTL = 200*time.Millisecond, time.Millisecond
	p.Learn(t.Context(), "fra")
	late := code(fra, 7)
	iad.hold(late) // a room that arrived after the listing
	if holder, _ := p.Find(t.Context(), late, "fra"); holder != "" || iad.lists.Load() != 1 {
		t.Fatalf("before the listing is due: found %q, %d listings", holder, iad.lists.Load())
	}
	testutil.Eventually(t, 5*time.Second, "the late room found once the listing is due", func() bool {
		holder, _ := p.Find(t.Context(), late, "fra")
		return holder == "aaaa0003"
	})
	if n := iad.lists.Load(); n != 2 {
		t.Fatalf("%d listings, want 2", n)
	}
	every := func() time.Duration {
		p.away.mu.Lock()
		defer p.away.mu.Unlock()
		return p.away.lists[listKey{region: "fra"}].every
	}
	if got := every(); got != p.Relist {
		t.Fatalf("after a listing that learned a code: due in %v, want %v", got, p.Relist)
	}
	testutil.Eventually(t, 5*time.Second, "a listing that learns nothing", func() bool {
		p.Find(t.Context(), code(fra, uint32(time.Now().UnixNano()%1e6)), "fra")
		return iad.lists.Load() == 3
	})
	if got := every(); got != 2*p.Relist {
		t.Fatalf("after a listing that learned nothing: due in %v, want %v", got, 2*p.Relist)
	}
}

// A listing's answer is bounded and holds only codes of its region.
func TestDecodeListing(t *testing.T) {
	t.Parallel()
	fraCode, iadCode := code(fra, 1), code(8, 1)
	got, err := DecodeListing([]byte(`{"codes":["`+fraCode+`","`+iadCode+`","x;y","`+strings.Repeat("z", 100)+`"],"more":1}`), "fra")
	if err != nil || !slices.Equal(got, []string{fraCode}) {
		t.Fatalf("DecodeListing = %v, %v; want only the fra code", got, err)
	}
	var many []string
	for i := range MaxListedCodes + 50 {
		many = append(many, code(fra, uint32(i)))
	}
	body, _ := json.Marshal(map[string][]string{"codes": many})
	if got, err := DecodeListing(body, "fra"); err != nil || len(got) != MaxListedCodes {
		t.Fatalf("a listing of %d codes kept %d (%v), want %d", len(many), len(got), err, MaxListedCodes)
	}
	if _, err := DecodeListing(make([]byte, maxListingBytes+1), "fra"); err == nil {
		t.Fatal("an answer over the bound was read")
	}
	if _, err := DecodeListing([]byte(`{"codes":`), "fra"); err == nil {
		t.Fatal("a cut answer was read")
	}
}

func FuzzDecodeListing(f *testing.F) {
	f.Add([]byte(`{"codes":["`+code(fra, 1)+`"]}`), "fra")
	f.Add([]byte(`{"codes":[1,null,{}]}`), "iad")
	f.Add([]byte(`[]`), "")
	f.Fuzz(func(t *testing.T, body []byte, region string) {
		codes, err := DecodeListing(body, region)
		if err != nil {
			return
		}
		if len(codes) > MaxListedCodes {
			t.Fatalf("%d codes kept", len(codes))
		}
		for _, c := range codes {
			if home, ok := regions.HomeOf(c); !ok || home != region {
				t.Fatalf("kept %q, not a code of %q", c, region)
			}
		}
	})
}
