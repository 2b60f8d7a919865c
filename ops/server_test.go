package ops

import (
	"debug/elf"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// serverBinary builds the server with ops/build.sh, the Dockerfile's build
// step, once per test run.
func serverBinary(t *testing.T) string {
	t.Helper()
	testutil.TrackModule(t)
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ops-build")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "party-sockets")
		cmd := exec.Command("sh", "build.sh", binPath)
		cmd.Env = append(os.Environ(), "VERSION=v9.9.9-test")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("ops/build.sh: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

var freePort = testutil.FreePort

// startServer runs the built binary on loopback and returns host:port.
func startServer(t *testing.T, env ...string) string {
	t.Helper()
	return testutil.StartCmd(t, exec.Command(serverBinary(t)), env...).Addr
}

// The Dockerfile's build step, run outside Docker: a static binary with the
// version stamped.
func TestBuildScriptMakesStaticStampedBinary(t *testing.T) {
	f, err := elf.Open(serverBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("binary has a dynamic loader: not a static CGO_ENABLED=0 build")
		}
	}
	addr := startServer(t)
	body := string(fetch(t, "http://"+addr+"/metrics"))
	if !strings.Contains(body, "\nparty_sockets_rooms{instance=\"local\",region=\"LOCAL\",version=\"v9.9.9-test\"} 0\n") {
		t.Fatalf("version not stamped into the metrics labels:\n%s", body)
	}
}

// promtool must parse the exposition. Its one lint finding is the
// contract-fixed process_uptime_seconds, a counter without _total.
func TestPromtoolChecksExposition(t *testing.T) {
	promtool := needTool(t, "promtool")
	addr := startServer(t, "REGION=syd")
	liveRooms(t, addr)
	out := fetch(t, "http://"+addr+"/metrics")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(out))
	res, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var findings []string
	for _, l := range strings.Split(strings.TrimSpace(string(res)), "\n") {
		if l != "" {
			findings = append(findings, l)
		}
	}
	allowed := `process_uptime_seconds counter metrics should have "_total" suffix`
	if code == 1 || (code != 0 && (len(findings) != 1 || findings[0] != allowed)) {
		t.Fatalf("promtool check metrics exit %d:\n%s", code, res)
	}
}

func fetch(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
