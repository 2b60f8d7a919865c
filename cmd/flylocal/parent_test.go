package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// Issue 25, item 7: in a script, `go run ./cmd/flylocal &` then `kill %1`
// killed go run (SIGTERM, which go run does not catch) and orphaned
// flylocal with its machines still serving. The script here is the
// README's: flylocal, its edges and every machine must be gone after it.
func TestKillPercentOneInAScriptStopsTheCluster(t *testing.T) {
	testutil.TrackModule(t)
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	dir, server := t.TempDir(), filepath.Join(builtBinaries(t), "server")
	// A script has no job control: the job is go run alone, and kill %1
	// sends it SIGTERM. The test says when, on the script's stdin.
	script := `go run . "$@" > "$OUT/cluster.json" 2> "$OUT/cluster.log" &
read -r _
kill %1
wait %1
echo "go run ended: $?"`
	cmd := exec.Command(bash, "-c", script, "bash", "-fast", "-bin", server, "-regions", "fra,iad", "-per-region", "1",
		"-port", "0", "-machine-port", fmt.Sprint(20000+rand.IntN(20000)),
		"-ip-base", fmt.Sprintf("127.%d.%d.2", 10+rand.IntN(200), rand.IntN(250)))
	cmd.Env = append(os.Environ(), "OUT="+dir)
	stdin, _ := cmd.StdinPipe()
	var out syncBuffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })

	info := awaitAnnounce(t, filepath.Join(dir, "cluster.json"), filepath.Join(dir, "cluster.log"))
	t.Cleanup(func() { killIfFlylocal(info.PID) }) // should the test fail: no orphan outlives it
	var views []machineView
	getJSON(t, info.Edges["fra"]+"/.flylocal/machines", &views)
	addrs := []string{}
	for _, e := range info.Edges {
		addrs = append(addrs, strings.TrimPrefix(e, "http://"))
	}
	pids := []int{info.PID}
	for _, v := range views {
		addrs, pids = append(addrs, v.Addr), append(pids, v.PID)
	}
	for _, a := range addrs {
		if !listening(a) {
			t.Fatalf("%s does not listen before the kill", a)
		}
	}

	io.WriteString(stdin, "\n") // kill %1
	testutil.ExitsCleanly(t, cmd, 30*time.Second, "the script")
	if !strings.Contains(out.String(), "go run ended: 143") { // 128 + SIGTERM: the kill reached go run
		t.Fatalf("the script printed %q, want go run ended by SIGTERM", out.String())
	}
	start := time.Now()
	testutil.Eventually(t, 30*time.Second, "flylocal, its edges and machines gone", func() bool {
		for _, a := range addrs {
			if listening(a) {
				return false
			}
		}
		for _, p := range pids {
			if alive(p) {
				return false
			}
		}
		return true
	})
	t.Logf("flylocal (pid %d), %d edges and %d machines gone %v after go run ended", info.PID, len(info.Edges), len(views),
		time.Since(start).Round(time.Millisecond))
}

// awaitAnnounce waits for flylocal's JSON line in file (go run builds it
// first).
func awaitAnnounce(t *testing.T, file, logFile string) announced {
	t.Helper()
	var info announced
	testutil.Eventually(t, 3*time.Minute, "flylocal's JSON line", func() bool {
		f, err := os.Open(file)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		return sc.Scan() && json.Unmarshal(sc.Bytes(), &info) == nil
	})
	if info.PID == 0 || len(info.Machines) == 0 {
		b, _ := os.ReadFile(logFile)
		t.Fatalf("flylocal announced %+v\n%s", info, b)
	}
	return info
}

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// alive reports whether pid runs; a zombie (exited, not yet reaped by
// whoever adopted it) is gone.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

// killIfFlylocal kills pid if it is still a flylocal (not a reused pid).
func killIfFlylocal(pid int) {
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); err == nil && strings.TrimSpace(string(b)) == "flylocal" {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
