// Package browser runs the buzzer quiz example (also through a kill -9 of
// its machine), the local cluster's overview and the client package's
// README in Debian's Chromium through playwright-core
// (tests/browser/*.test.mjs), against a local cluster started here. .ci/run installs chromium and the npm package; locally the
// test is skipped when they are missing.
package browser

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

var need = testutil.Need

func TestBuzzerQuizInChromium(t *testing.T) {
	node, err := exec.LookPath("node")
	need(t, err == nil, "node")
	chromium, err := exec.LookPath("chromium")
	need(t, err == nil, "chromium (apt-get install chromium)")
	for _, pkg := range []string{"playwright-core", "marked"} {
		_, err = os.Stat("node_modules/" + pkg)
		need(t, err == nil, pkg+" (npm ci in tests/browser)")
	}

	testutil.TrackModule(t) // node, Chromium and go build read what the cache cannot see
	bin := t.TempDir()
	for _, b := range []struct{ out, pkg string }{{"flylocal", "../../cmd/flylocal"}, {"party-game", "../../examples/party-game"}} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, b.out), b.pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", b.pkg, err, out)
		}
	}
	cluster := startCluster(t, filepath.Join(bin, "flylocal"))

	gameAddr := freeAddr(t)
	game := exec.Command(filepath.Join(bin, "party-game"), "-addr", gameAddr)
	game.Dir = "../.."
	game.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := game.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { game.Process.Kill(); game.Wait() })
	waitHTTP(t, "http://"+gameAddr+"/party-sockets.js")

	out, _ := filepath.Abs("out")
	// The players and the host reach their edges through networks the
	// test can cut.
	players := testutil.StartNetCut(t, cluster.Edges["iad"])
	playersCut := httptest.NewServer(players)
	t.Cleanup(playersCut.Close)
	host := testutil.StartNetCut(t, cluster.Edges["fra"])
	hostCut := httptest.NewServer(host)
	t.Cleanup(hostCut.Close)
	// One file after the other: the overview test suspends a machine.
	cmd := exec.Command(
		node,
		"--test",
		"--test-concurrency=1",
		"buzzer.test.mjs",
		"deadlink.test.mjs",
		"overview.test.mjs",
		"crash.test.mjs",
	)
	cmd.Env = append(os.Environ(), "GAME_URL=http://"+gameAddr, "HOST_EDGE="+host.URL(), "HOST_CUT="+hostCut.URL,
		"PLAYER_EDGE="+players.URL(), "NET_CUT="+playersCut.URL, "OUT_DIR="+out, "CHROMIUM="+chromium,
		"DEPLOY_URL="+cluster.Edges["fra"]+"/.flylocal/deploy", "FLY_EDGE="+cluster.Edges["fra"])
	res, err := cmd.CombinedOutput()
	t.Logf("node --test:\n%s", res)
	t.Logf("screenshots in %s", out)
	if err != nil {
		t.Fatalf("browser test failed: %v", err)
	}
}

type clusterInfo struct {
	Edges map[string]string `json:"edges"`
}

func startCluster(t *testing.T, bin string) clusterInfo {
	t.Helper()
	cmd := exec.Command(bin, "-fast", "-regions", "fra,iad", "-per-region", "2", "-port", "0", "-quiet",
		"-machine-port", fmt.Sprint(10000+rand.IntN(20000)), "-ip-base", fmt.Sprintf("127.%d.%d.2", 10+rand.IntN(200), rand.IntN(250)),
		"-kill-timeout", "3s")
	cmd.Dir = "../.."
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
	}()
	select {
	case l := <-line:
		var c clusterInfo
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			t.Fatalf("flylocal printed %q", l)
		}
		return c
	case <-time.After(2 * time.Minute):
		t.Fatal("flylocal did not start")
	}
	return clusterInfo{}
}

func freeAddr(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)) }

func waitHTTP(t *testing.T, u string) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, u+" to answer 200", func() bool {
		resp, err := http.Get(u)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}
