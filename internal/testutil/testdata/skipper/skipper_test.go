// Package skipper is run by testutil's TestSkipIsNeverCached: its test
// needs a "tool" outside the module, as tests/browser needs chromium.
package skipper

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

func TestNeedsTheTool(t *testing.T) {
	// The cache sees the variables a test reads: one value per
	// TestSkipIsNeverCached, so no earlier run's result is replayed.
	t.Log("run", os.Getenv("SKIPPER_RUN"))
	wd, _ := os.Getwd()
	sum := sha256.Sum256([]byte(wd))
	_, err := os.Stat(filepath.Join(os.TempDir(), "party-sockets-skipper-"+hex.EncodeToString(sum[:8])))
	testutil.Need(t, err == nil, "the skipper's tool")
}
