// Package testutil holds what several test packages need: the real server
// binary started as a child process, and reading its memory and metrics.
package testutil

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
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
// returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "party-sockets-bin")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "party-sockets")
		out, err := exec.Command("go", "build", "-o", buildPath, "party-sockets").CombinedOutput()
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
	cmd := exec.Command(Binary(t))
	cmd.Env = append(os.Environ(), append([]string{"HOST=127.0.0.1", "PORT=0"}, env...)...)
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
			if i := strings.Index(line, "addr="); i >= 0 && strings.Contains(line, "listening") {
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

// Eventually polls cond every 20 ms until it holds or d passes.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
