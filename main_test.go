package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// TestMain lets a test start this very binary as the server.
func TestMain(m *testing.M) {
	if os.Getenv("PARTY_SOCKETS_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startServer runs the real main in a child process and returns its address.
func startServer(t *testing.T, extraEnv ...string) (*exec.Cmd, string) {
	t.Helper()
	s := startMain(t, extraEnv...)
	return s.Cmd, s.Addr
}

// startMain is startServer with the whole testutil.Server (its log).
func startMain(t *testing.T, extraEnv ...string) *testutil.Server {
	t.Helper()
	return testutil.StartCmd(
		t,
		exec.Command(os.Args[0], "-test.run=^$"),
		append([]string{"PARTY_SOCKETS_RUN_MAIN=1"}, extraEnv...)...)
}

// logHas reports whether a line of the server's log so far contains every
// part.
func logHas(s *testutil.Server, parts ...string) bool {
	for _, line := range strings.Split(s.Log(), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return true
		}
	}
	return false
}

// roundTrip sends msg and returns the next frame.
func roundTrip(t *testing.T, ws *testutil.Client, msg string) string {
	t.Helper()
	ws.Send(msg)
	got, err := ws.Read()
	if err != nil {
		t.Fatalf("after %s: %v", msg, err)
	}
	return got
}

// SIGTERM: no new rooms, joins and sends go on, exit 0 once empty.
func TestDrainOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd, addr := startServer(t)
			host := testutil.Dial(t, "ws://"+addr)
			code := host.Create("h", 4)

			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			other := testutil.Dial(t, "ws://"+addr)
			// The signal is handled asynchronously: wait until create is refused.
			var got string
			refused := testutil.Poll(5*time.Second, func() bool {
				got = roundTrip(t, other, `{"type":"create","clientId":"x","maxClients":2}`)
				if got == testutil.ErrorFrame("Server draining") {
					return true
				}
				// Leave cleanly: a room whose last member blips is kept
				// for the host grace, and the server could not drain.
				other.Leave()
				other = testutil.Dial(t, "ws://"+addr)
				return false
			})
			if !refused {
				t.Fatalf("create still answered %s after %v", got, sig)
			}
			if got := roundTrip(t, other, fmt.Sprintf(`{"type":"join","clientId":"g","room":%q}`, code)); !strings.HasPrefix(
				got,
				`{"type":"joined"`,
			) {
				t.Fatalf("join while draining: %s", got)
			}
			// Still serving: the machine has a room, so it must not exit.
			if conn, err := net.DialTimeout("tcp", addr, time.Second); err != nil {
				t.Fatalf("server stopped listening with a room left: %v", err)
			} else {
				conn.Close()
			}
			host.Leave()
			other.Leave()
			testutil.ExitsCleanly(t, cmd, 10*time.Second, "the server, once its last room ended,")
		})
	}
}

func TestBadConfigRefusesToStart(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PARTY_SOCKETS_RUN_MAIN=1", "PORT=99999", "HOST_GRACE=x")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("server started with a bad PORT")
	}
	for _, name := range []string{"PORT", "HOST_GRACE"} {
		if !strings.Contains(string(out), name) {
			t.Errorf("output does not name %s: %s", name, out)
		}
	}
}

// A client that opens a connection and never finishes its request is cut
// at HANDSHAKE_TIMEOUT.
func TestHandshakeTimeout(t *testing.T) {
	_, addr := startServer(t, "HANDSHAKE_TIMEOUT=300ms")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	for {
		if _, err := conn.Read(buf); err != nil {
			break
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a stalled handshake was held for %v", took)
	}
	// A WebSocket that completed its handshake is not cut by that deadline.
	ws := testutil.Dial(t, "ws://"+addr)
	time.Sleep(600 * time.Millisecond) // twice the deadline, idle: the period under test
	if got := roundTrip(t, ws, `{"type":"create","clientId":"h","maxClients":2}`); !strings.HasPrefix(got, `{"type":"created"`) {
		t.Fatalf("after the handshake timeout: %s", got)
	}
}

// offFly is extra after clearing every variable a machine's id and region
// come from, whatever the test's own environment holds.
func offFly(extra ...string) []string {
	return append([]string{"INSTANCE_ID=", "FLY_MACHINE_ID=", "REGION=", "FLY_REGION=", "FLY_APP_NAME="}, extra...)
}

// Issue 21, item 8: off Fly, the wire says what the old relay said there,
// nothing: created's instance and region, a url template's {instance} and
// X-Instance-Id are empty (PROTOCOL.md sections 3 and 14). With an id and
// a region set, each carries them.
func TestWireIdentity(t *testing.T) {
	for _, tt := range []struct {
		name             string
		env              []string
		instance, region string
	}{
		{"off Fly", offFly(), "", ""},
		{"named", offFly("INSTANCE_ID=148e21ea7e1189", "REGION=fra"), "148e21ea7e1189", "fra"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startMain(t, tt.env...)
			ws := testutil.Dial(t, srv.URL)
			frame := roundTrip(t, ws, `{"type":"create","clientId":"h","maxClients":2,"url":"https://game.example/{room}?m={instance}"}`)
			var created struct {
				Room             string
				Instance, Region *string
				URL              string
			}
			if err := json.Unmarshal([]byte(frame), &created); err != nil {
				t.Fatalf("created %s: %v", frame, err)
			}
			t.Run("created.instance", func(t *testing.T) {
				if created.Instance == nil || *created.Instance != tt.instance {
					t.Errorf("created = %s, want instance %q", frame, tt.instance)
				}
			})
			t.Run("created.region", func(t *testing.T) {
				if created.Region == nil || *created.Region != tt.region {
					t.Errorf("created = %s, want region %q", frame, tt.region)
				}
			})
			t.Run("url {instance}", func(t *testing.T) {
				if want := "https://game.example/" + created.Room + "?m=" + tt.instance; created.URL != want {
					t.Errorf("created url %q, want %q", created.URL, want)
				}
			})
			t.Run("X-Instance-Id", func(t *testing.T) {
				resp, err := http.Get("http://" + srv.Addr + "/room/" + created.Room)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if got := resp.Header.Values("X-Instance-Id"); resp.StatusCode != 200 || len(got) != 1 || got[0] != tt.instance {
					t.Errorf("GET /room/<code>: %d, X-Instance-Id %q, want [%q]", resp.StatusCode, got, tt.instance)
				}
			})
		})
	}
}

// Off Fly, what is ours names the machine "local" in region "local": the
// log, and the metric labels (regions upper-cased there, as Fly's are).
// Room ends are logged with their reason.
func TestLocalInWhatIsOurs(t *testing.T) {
	srv := startMain(t, offFly()...)
	addr := srv.Addr
	ws := testutil.Dial(t, "ws://"+addr)
	code := ws.Create("h", 2)
	if !logHas(srv, "listening", "instance=local", "region=local") {
		t.Errorf("no listening line with instance=local region=local")
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `party_sockets_rooms{instance="local",region="LOCAL"`) {
		t.Errorf("metrics do not name the machine local/LOCAL")
	}
	ws.Leave()
	testutil.Eventually(t, 5*time.Second, "the room's end in the log",
		func() bool { return logHas(srv, "room ended", "room="+code, "reason=empty") })
}

// The last webhook events go out before the process exits: a room that
// ends a moment before the stop signal still reaches a slow receiver.
func TestWebhooksFlushedAtExit(t *testing.T) {
	var mu sync.Mutex
	var got []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond) // a slow receiver: the scenario
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
	}))
	t.Cleanup(rcv.Close)
	srv := startMain(t, offFly("WEBHOOK_URL="+rcv.URL, "WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")...)
	ws := testutil.Dial(t, srv.URL)
	code := ws.Create("h", 2)
	ws.Leave()
	testutil.Eventually(
		t,
		5*time.Second,
		"the room's end in the log",
		func() bool { return logHas(srv, "room ended", "room="+code) },
	)
	srv.Cmd.Process.Signal(syscall.SIGTERM)
	testutil.ExitsCleanly(t, srv.Cmd, 10*time.Second, "the server")
	mu.Lock()
	defer mu.Unlock()
	var closed, local bool
	for _, b := range got {
		closed = closed || (strings.Contains(b, `"type":"room.closed"`) && strings.Contains(b, code))
		// Webhook data is ours: off Fly the machine is "local" there.
		local = local || strings.Contains(b, `"instance":"local","region":"local"`)
	}
	if !closed {
		t.Fatalf("the receiver got %d events, none room.closed for %s", len(got), code)
	}
	if !local {
		t.Errorf("no event names the machine local off Fly: %q", got)
	}
}

// fakeDrain is a server whose rooms leave when told.
type fakeDrain struct{ left atomic.Int64 }

func (f *fakeDrain) Rooms() int { return int(f.left.Load()) }
func (f *fakeDrain) CloseAll()  {}

// A draining machine whose rooms found no sibling hands them off again
// every handOffAgain until they are gone, then stops asking.
func TestWaitEmptyHandsOffAgain(t *testing.T) {
	defer func(d time.Duration) { handOffAgain = d }(handOffAgain)
	handOffAgain = 150 * time.Millisecond
	f := &fakeDrain{}
	f.left.Store(3)
	var tries atomic.Int64
	again := func() {
		if tries.Add(1) == 3 { // the third try finds a sibling
			f.left.Store(0)
		}
	}
	done := make(chan struct{})
	go func() {
		waitEmpty(f, make(chan os.Signal), slog.New(slog.NewTextHandler(io.Discard, nil)), again)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("waitEmpty did not return once the rooms were gone")
	}
	if n := tries.Load(); n != 3 {
		t.Errorf("handed off again %d times, want 3", n)
	}
}
