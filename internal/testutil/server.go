// Package testutil holds what several test packages need: the real server
// binary started as a child process, and reading its memory and metrics.
package testutil

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// Binary builds the party-sockets server once per test process and
// returns its path. PARTY_SOCKETS_BIN names another build to run instead
// (to see a test fail on an earlier one).
func Binary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("PARTY_SOCKETS_BIN"); bin != "" {
		return bin
	}
	TrackModule(t)
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "party-sockets-bin")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "party-sockets")
		out, err := exec.Command("go", "build", "-o", buildPath, "github.com/party-sockets/party-sockets").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Server is a running server process.
type Server struct {
	Cmd  *exec.Cmd
	Addr string // host:port
	URL  string // http://host:port

	mu     sync.Mutex
	stderr bytes.Buffer
}

// Start runs the server on 127.0.0.1 with a free port and extra env
// ("K=V"), and stops it when the test ends.
func Start(t testing.TB, env ...string) *Server {
	t.Helper()
	return StartCmd(t, exec.Command(Binary(t)), env...)
}

// StartCmd is Start for a server command the caller made (another build of
// it, or a test binary that runs main): env is added to cmd's.
func StartCmd(t testing.TB, cmd *exec.Cmd, env ...string) *Server {
	t.Helper()
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, append([]string{"HOST=127.0.0.1", "PORT=0"}, env...)...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{Cmd: cmd}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			if s.stderr.Len() < 1<<20 {
				s.stderr.WriteString(line + "\n")
			}
			s.mu.Unlock()
			if i := strings.Index(line, "addr="); i >= 0 && strings.Contains(line, "msg=listening ") { // not "pprof listening"
				select {
				case addr <- strings.Fields(line[i+5:])[0]:
				default:
				}
			}
		}
		io.Copy(io.Discard, pipe)
	}()
	select {
	case a := <-addr:
		s.Addr, s.URL = a, "http://"+a
		return s
	case <-time.After(20 * time.Second):
		t.Fatalf("server did not start:\n%s", s.Log())
	}
	return nil
}

// FreePort returns a TCP port below the ephemeral range that was free on
// 127.0.0.1 a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	// Below Linux's ephemeral range (32768+): a port from there may be
	// free on 127.0.0.1 and yet be an outgoing socket's on another
	// loopback address a test binds (a sibling failed "address already in
	// use" on 127.0.0.3 in CI).
	for range 100 {
		port := 10000 + rand.IntN(22000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatal("no free port below the ephemeral range in 100 tries")
	return 0
}

// Log is what the server wrote to stderr so far (first MiB).
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// Status returns a field of /proc/<pid>/status in bytes (VmRSS, VmHWM).
func (s *Server) Status(t testing.TB, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc status", field)
	return 0
}

// Metric returns the sum of every series of a metric whose labels contain
// each of the given `k="v"` pairs.
func (s *Server) Metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

// Need skips a test whose tool is missing, saying which and why; with CI
// set it fails instead: .ci/run must have installed it. A skip is never
// cached (see uncacheable): installing the tool makes the next plain
// go test run the test.
func Need(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing: .ci/run must install it", what)
	}
	uncacheable()
	t.Skipf("%s is missing (.ci/run installs it)", what)
}

// uncacheable keeps Go's test cache from saving this package's result.
// The cache reruns a test when a file it looked at changes, but only for
// files inside the module (cmd/go's computeTestInputsID: "Do not recheck
// files outside the module, GOPATH, or GOROOT root"), so a skip for a
// missing /usr/bin/chromium was replayed from the cache after chromium
// was installed (issue 25, item 6). The cache also refuses to save a run
// that read a file modified less than 2 s before it checks (hashOpen's
// modTimeCutoff: an mtime that recent may not show the next write). So
// the test opens a file of its own in the package directory and touches
// it until the process ends: the run that skipped is never saved, and the
// next one tries again. Tests that ran are cached as before. If the file
// cannot be written (a read-only module), the skip is cached, as it was.
func uncacheable() {
	skipOnce.Do(func() {
		name := skipMarker
		touch := func() bool {
			now := time.Now()
			if os.Chtimes(name, now, now) == nil {
				return true
			}
			return os.WriteFile(name, []byte("a test here skipped: its result is not cached (testutil.Need)\n"), 0o644) == nil
		}
		if !touch() {
			return
		}
		if f, err := os.Open(name); err == nil { // the open is what the cache records
			f.Close()
		}
		go func() {
			for range time.Tick(500 * time.Millisecond) {
				touch()
			}
		}()
	})
}

var skipOnce sync.Once

const skipMarker = ".skipped-uncached" // in .gitignore

// TrackModule makes Go's test cache see every file of this module (Go
// sources, embedded pages, the JS client, the browser tests, the example),
// so a test that builds or runs them in another process reruns when one
// changes. The cache notes the files a test opens or stats, not what a
// subprocess (go build, node) reads: without this, such a test passed
// from the cache after a change to the code it tests. node_modules, .git
// and test output are left out.
func TrackModule(t testing.TB) {
	t.Helper()
	trackOnce.Do(func() { trackErr = trackModule() }) // once a process is enough for the cache
	if trackErr != nil {
		t.Fatal(trackErr)
	}
}

var (
	trackOnce sync.Once
	trackErr  error
)

func trackModule() error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			return errors.New("TrackModule: no go.mod above the test's directory")
		}
		root = parent
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "node_modules", ".git", "out":
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() == skipMarker {
			return nil // touched by a skip (uncacheable), not an input
		}
		_, err = os.Stat(path) // the cache records it
		return err
	})
}

// ExitsCleanly fails the test unless cmd exits with status 0 within d;
// what names the process in the failure. On time out it kills cmd.
func ExitsCleanly(t testing.TB, cmd *exec.Cmd, d time.Duration, what string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s exited with %v, want status 0", what, err)
		}
	case <-time.After(d):
		cmd.Process.Kill()
		<-done // one Wait at a time: a cleanup may wait too
		t.Fatalf("%s did not exit within %v", what, d)
	}
}
