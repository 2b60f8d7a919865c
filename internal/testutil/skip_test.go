package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 25, item 6: a test skipped for a tool outside the module (Debian's
// chromium) stayed skipped from Go's test cache after the tool was
// installed. Need's skip is never cached: run twice without the tool, the
// package runs twice; with it, the test runs and passes, and only that
// result is cached.
func TestSkipIsNeverCached(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go on PATH")
	}
	wd, err := filepath.Abs("testdata/skipper")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(wd))
	tool := filepath.Join(os.TempDir(), "party-sockets-skipper-"+hex.EncodeToString(sum[:8]))
	os.Remove(tool)
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	t.Cleanup(func() { os.Remove(tool); os.Remove(filepath.Join(wd, skipMarker)) })
	run := func() string {
		t.Helper()
		cmd := exec.Command(goBin, "test", "./testdata/skipper")
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "CI=") { // with CI set, Need fails instead
				env = append(env, kv)
			}
		}
		cmd.Env = append(env, "SKIPPER_RUN="+runID)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go test ./testdata/skipper: %v\n%s", err, out)
		}
		return string(out)
	}
	for i, want := range []bool{false, false} {
		if got := strings.Contains(run(), "(cached)"); got != want {
			t.Fatalf("run %d without the tool: cached %v, want %v", i+1, got, want)
		}
	}
	if err := os.WriteFile(tool, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(run(), "(cached)") {
		t.Fatal("the tool was installed, and the skip came from the cache")
	}
	if !strings.Contains(run(), "(cached)") {
		t.Fatal("a test that ran and passed was not cached")
	}
}
