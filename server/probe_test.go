package server

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/party-sockets/party-sockets/internal/flydns"
	"github.com/party-sockets/party-sockets/internal/testutil"
	"github.com/party-sockets/party-sockets/regions"
	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/routing"
)

// machineAt serves cfg as machine id of fra on ip:port, with a prober
// that reads fly's DNS, and lists it there unless hidden. The defaults of
// config.go stand for the limits a test leaves at zero.
func machineAt(t *testing.T, fly *flydns.Server, id, ip string, port int, cfg Config, hidden bool) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Skipf("%s:%d is taken: %v", ip, port, err)
	}
	cfg.AppName, cfg.Instance, cfg.Region = "app", id, "fra"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Prober = &routing.Prober{App: "app", Self: id, Port: port, Resolver: routing.DNSResolver{Server: fly.Addr}}
	cfg.UpgradesPerSec, cfg.UpgradeBurst = or(cfg.UpgradesPerSec, 10), or(cfg.UpgradeBurst, 60)
	cfg.JoinMissesPerMin, cfg.MachineMissesPerMin = or(cfg.JoinMissesPerMin, 60), or(cfg.MachineMissesPerMin, 1200)
	cfg.AddrProbesPerMin, cfg.AddrProbeBurst = or(cfg.AddrProbesPerMin, 10), or(cfg.AddrProbeBurst, 60)
	cfg.CreatesPerMin, cfg.CreateBurst, cfg.MaxConnsPerIP = 30, 30, 200
	mgr := rooms.NewManager(
		rooms.Config{Instance: id, Region: "fra", HostGrace: time.Minute, Codes: regions.NewGenerator("fra", nil)},
	)
	reg := prometheus.NewRegistry()
	s := New(cfg, mgr, reg, reg)
	hs := &http.Server{Handler: s}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	if !hidden {
		fly.Add(id, "fra", ip)
	}
	return s, "http://" + ln.Addr().String()
}

// asPlayer is what Fly's proxy adds to a player's request from ip.
func asPlayer(ip string) http.Header {
	return http.Header{"Fly-Region": {"fra"}, "Fly-Client-IP": {ip}}
}

func lookupStatus(t *testing.T, url string, hdr http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header = hdr
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Fly-Replay")
}

// Issue 20, finding 4: rounds that found their room were free. Every
// round an address starts spends its probe allowance, found or not; a
// found room looked up again is answered from memory, free; past the
// allowance a lookup that would probe gets 429, other addresses do not.
func TestProbeAllowancePerAddress(t *testing.T) {
	t.Parallel()
	fly := testutil.StartFlyDNS(t, "app")
	port := testutil.FreePort(t)
	_, bURL := machineAt(t, fly, "0a1b2c3d4e5fb2", "127.0.12.3", port, Config{}, false)
	_, aURL := machineAt(t, fly, "0a1b2c3d4e5fa1", "127.0.12.2", port, Config{AddrProbesPerMin: 0.001, AddrProbeBurst: 3}, false)
	held := testutil.Dial(t, bURL).Create("host", 4)
	absent := func(i int) string { return regions.Encode(regions.Pack(6, uint32(9000+i))) }
	player := asPlayer("203.0.113.1")
	if status, replay := lookupStatus(t, aURL+"/room/"+held, player); status != 409 ||
		!strings.Contains(replay, "instance=0a1b2c3d4e5fb2") {
		t.Fatalf("a lookup of a room on the sibling: %d %q", status, replay)
	}
	for range 5 {
		if status, _ := lookupStatus(t, aURL+"/room/"+held, player); status != 409 {
			t.Fatalf("a found room looked up again: %d, want 409 from memory", status)
		}
	}
	for i, want := range []int{404, 404, 429} {
		if status, _ := lookupStatus(t, aURL+"/room/"+absent(i), player); status != want {
			t.Fatalf("absent code %d after one found round: %d, want %d", i, status, want)
		}
	}
	if status, _ := lookupStatus(t, aURL+"/room/"+absent(9), asPlayer("203.0.113.2")); status != 404 {
		t.Fatalf("another address: %d, want 404", status)
	}
}

// Issue 20, smaller items: a client could send fly-replay-failed naming a
// running machine, and the pins to it were then ignored: each pinned
// lookup became a probe round. A machine is taken as gone only when DNS no
// longer lists it as started.
func TestForgedReplayFailedKeepsPins(t *testing.T) {
	t.Parallel()
	fly := testutil.StartFlyDNS(t, "app")
	port := testutil.FreePort(t)
	var asks atomic.Int32
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.12.13", strconv.Itoa(port)))
	if err != nil {
		t.Skip(err)
	}
	peer := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { asks.Add(1); w.WriteHeader(404) })}
	go peer.Serve(ln)
	t.Cleanup(func() { peer.Close() })
	const running, stopped = "0a1b2c3d4e5fc3", "0a1b2c3d4e5fd4"
	fly.Add(running, "fra", "127.0.12.13")
	_, aURL := machineAt(t, fly, "0a1b2c3d4e5fa1", "127.0.12.12", port, Config{}, false)
	code := regions.Encode(regions.Pack(6, 4242))
	fail := func(id string) {
		hdr := asPlayer("203.0.113.5")
		hdr.Set("Fly-Replay-Failed", "instance="+id+";reason=timeout")
		lookupStatus(t, aURL+"/room/"+code+"?instance="+id, hdr)
	}
	fail(running)
	for range 5 {
		if status, replay := lookupStatus(t, aURL+"/room/"+code+"?instance="+running, asPlayer("203.0.113.6")); status != 409 ||
			!strings.Contains(replay, "instance="+running) {
			t.Fatalf("a pin to a running machine after a forged fly-replay-failed: %d %q, want the pin honoured", status, replay)
		}
	}
	if asks.Load() != 0 {
		t.Fatalf("pins to a running machine made %d probe asks", asks.Load())
	}
	// A machine DNS does not list: the pin is ignored, the code routes it.
	fail(stopped)
	if status, _ := lookupStatus(t, aURL+"/room/"+code+"?instance="+stopped, asPlayer("203.0.113.6")); status != 404 ||
		asks.Load() != 1 {
		t.Fatalf("a pin to a gone machine: %d after %d asks, want 404 after one round", status, asks.Load())
	}
}

// A household of eight behind one address, rejoining by code after a
// deploy the way the clients do (client/ and clients/js: by code, for 10 s,
// 250 ms and then half as long again each time, up to 2 s; here at the
// shortest jitter, the most requests), while its room is on its way to a
// sibling (it arrives after 3 s), never meets a limit: not the probe
// allowance, not the miss budget (a failed rejoin was charged twice, and
// every retry of the same code again).
func TestHouseholdRejoinNeverLimited(t *testing.T) {
	t.Parallel()
	fly := testutil.StartFlyDNS(t, "app")
	port := testutil.FreePort(t)
	_, bURL := machineAt(t, fly, "0a1b2c3d4e5fb2", "127.0.12.23", port, Config{}, true) // not listed yet
	a, aURL := machineAt(t, fly, "0a1b2c3d4e5fa1", "127.0.12.22", port, Config{}, false)
	code := testutil.Dial(t, bURL).Create("host", 8)
	start := time.Now()
	time.AfterFunc(3*time.Second, func() { fly.Add("0a1b2c3d4e5fb2", "fra", "127.0.12.23") })
	var mu sync.Mutex
	var limited []string
	var found atomic.Int32
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Go(func() {
			wait, next := 125*time.Millisecond, 250*time.Millisecond
			for attempt := 1; time.Since(start) < 11*time.Second; attempt++ {
				time.Sleep(wait) // the client's own backoff: this is the load under test
				wait, next = next/2, min(next*3/2, 2*time.Second)
				switch outcome := rejoin(t, aURL+"/"+code, code, "p"+strconv.Itoa(p)); outcome {
				case "replayed":
					found.Add(1)
					return
				case "Room not found":
				default:
					mu.Lock()
					limited = append(limited, "player "+strconv.Itoa(p)+" attempt "+strconv.Itoa(attempt)+": "+outcome)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("8 players of one address: %d found their room after it arrived (%.1f s); probe rounds: %d; limits met: %v",
		found.Load(), time.Since(start).Seconds(), a.cfg.Prober.Rounds(), limited)
	if found.Load() != 8 || len(limited) > 0 {
		t.Fatalf("%d of 8 rejoined; limits met: %v", found.Load(), limited)
	}
}

// rejoin is one rejoin by code through a, as a client makes it: an
// upgrade, and a join on the socket if a serves it. "replayed" when a sent
// it on to the room's holder.
func rejoin(t *testing.T, url, code, clientID string) string {
	c, resp, err := testutil.Dialer{Header: asPlayer("198.51.100.8")}.TryDial(t, url)
	switch {
	case err != nil && resp != nil && resp.StatusCode == 409 && resp.Header.Get("Fly-Replay") != "":
		return "replayed"
	case err != nil && resp != nil:
		return "HTTP " + strconv.Itoa(resp.StatusCode)
	case err != nil:
		return err.Error()
	}
	defer c.Drop()
	if err := c.TrySend(`{"type":"join","clientId":"` + clientID + `","room":"` + code + `"}`); err != nil {
		return err.Error()
	}
	s, err := c.Read()
	if err != nil {
		return err.Error()
	}
	if !strings.Contains(s, `"Room not found"`) {
		return s
	}
	return "Room not found"
}
