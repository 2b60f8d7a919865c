package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// builtBinaries builds flylocal and the server once per test process and
// returns the directory that holds them.
func builtBinaries(t *testing.T) string {
	t.Helper()
	testutil.TrackModule(t)
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "flylocal-test"); buildErr != nil {
			return
		}
		for _, b := range []struct{ out, pkg string }{{"flylocal", "."}, {"server", "../.."}} {
			if out, err := exec.Command("go", "build", "-o", filepath.Join(buildDir, b.out), b.pkg).CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

// startFlylocal runs the real flylocal binary on free edge ports and a
// random loopback range with args, and reads its JSON line.
func startFlylocal(t *testing.T, args ...string) (*exec.Cmd, announced, *syncBuffer) {
	t.Helper()
	dir := builtBinaries(t)
	args = append([]string{"-bin", filepath.Join(dir, "server"), "-port", "0", "-machine-port", fmt.Sprint(20000 + rand.IntN(20000)),
		"-ip-base", fmt.Sprintf("127.%d.%d.2", 10+rand.IntN(200), rand.IntN(250))}, args...)
	cmd := exec.Command(filepath.Join(dir, "flylocal"), args...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	var info announced
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || json.Unmarshal(sc.Bytes(), &info) != nil || len(info.Machines) == 0 {
		t.Fatalf("flylocal announced %q\n%s", sc.Text(), stderr.String())
	}
	return cmd, info, stderr
}

type announced struct {
	PID      int               `json:"pid"`
	Edges    map[string]string `json:"edges"`
	Machines []struct{ ID, Addr string }
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// The real flylocal binary: GET /.flylocal/state describes the cluster,
// every control call is logged, and POST /.flylocal/shutdown (with
// X-Flylocal: 1) stops every machine and exits 0 (how to stop a cluster
// started in the background).
func TestStateAndShutdownThroughTheControlAPI(t *testing.T) {
	cmd, info, stderr := startFlylocal(t, "-fast", "-regions", "fra", "-per-region", "1")
	edge := info.Edges["fra"]

	resp, err := http.Get(edge + "/.flylocal/state")
	if err != nil {
		t.Fatal(err)
	}
	var st clusterState
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.DNS != "up" || len(st.Machines) != 1 || st.Machines[0].State != stateStarted || st.Machines[0].ID != info.Machines[0].ID {
		t.Fatalf("state: %+v", st)
	}

	// A POST without X-Flylocal: 1, as a cross-site page sends it, is
	// refused (control_test.go has the cases); the cluster keeps running.
	resp, err = http.Post(edge+"/.flylocal/shutdown", "text/plain", nil)
	if err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST shutdown without X-Flylocal: %v %v", resp, err)
	}
	resp.Body.Close()
	if resp, err = http.Get(edge + "/.flylocal/state"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after a refused shutdown: %v %v", resp, err)
	}
	resp.Body.Close()

	req, _ := http.NewRequest("POST", edge+"/.flylocal/shutdown", nil)
	req.Header.Set("X-Flylocal", "1")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST shutdown: %v %v", resp, err)
	}
	resp.Body.Close()
	testutil.ExitsCleanly(t, cmd, 30*time.Second, "flylocal, after POST /.flylocal/shutdown,")
	if c, err := net.DialTimeout("tcp", info.Machines[0].Addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the machine still listens after the shutdown")
	}
	if !strings.Contains(stderr.String(), "flylocal: control /.flylocal/shutdown") {
		t.Fatalf("the control call was not logged:\n%s", stderr.String())
	}
}
