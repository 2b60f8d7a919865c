package abuse

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
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

// lastRelease is the commit of the release before signed internal calls:
// its machines send the bearer secret, unsigned (docs/deploys.md).
const lastRelease = "36df9e2"

var (
	oldOnce sync.Once
	oldBin  string
	oldErr  error
)

// oldRelease builds lastRelease from this repository's history, once per
// test process. Without git or that history the test fails under CI (a
// clone with its history) and is skipped elsewhere.
func oldRelease(t *testing.T) string {
	t.Helper()
	oldOnce.Do(func() { oldBin, oldErr = buildRelease(lastRelease) })
	switch {
	case oldErr == nil:
		return oldBin
	case os.Getenv("CI") != "":
		t.Fatalf("building the previous release (%s): %v", lastRelease, oldErr)
	default:
		t.Skipf("building the previous release (%s): %v", lastRelease, oldErr)
	}
	return ""
}

// buildRelease extracts commit (git archive) into a temporary directory and
// builds its server there.
func buildRelease(commit string) (string, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return "", err
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", errors.New("not in a git checkout: " + err.Error())
	}
	archive, err := exec.Command("git", "-C", strings.TrimSpace(string(top)), "archive", "--format=tar", commit).Output()
	if err != nil {
		return "", errors.New("git archive " + commit + ": " + err.Error())
	}
	dir, err := os.MkdirTemp("", "party-sockets-"+commit)
	if err != nil {
		return "", err
	}
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
		path := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(path, 0o755)
		case tar.TypeReg:
			var b []byte
			if b, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(path, b, 0o644)
			}
		}
		if err != nil {
			return "", err
		}
	}
	bin := filepath.Join(dir, "party-sockets-old")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		return "", errors.New("go build of " + commit + ": " + err.Error() + "\n" + string(out))
	}
	return bin, nil
}

// The rolling deploy that ships signed internal calls keeps every room:
// a machine of the previous release hands its rooms to one of this
// release (which takes its bearer form, for one release), and one of this
// release hands its rooms to one of the previous (refused signed, it
// makes the call again in the bearer form). Each time the sender is
// stopped with SIGTERM, exits 0, and its room is served by the receiver,
// where a member reconnects into its own slot and finds the state.
func TestMixedReleaseHandOff(t *testing.T) {
	old := oldRelease(t)
	secret := "HANDOFF_SECRET=" + strings.Repeat("m", 32)
	for _, tc := range []struct {
		name             string
		sender, receiver string // binaries; "": this build
	}{
		{"previous release to this one", old, ""},
		{"this release to the previous one", "", old},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rg := newSiblings(t)
			from, to := rg.start(2, tc.sender, secret), rg.start(3, tc.receiver, secret)
			host, player, code := pair(t, from.URL, "mixed", 4)
			host.Send(`{"type":"set_state","data":{"round":7}}`)
			player.ExpectType("state")

			if err := from.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			for name, m := range map[string]*testutil.Client{"host": host, "player": player} {
				if got := m.CloseCode(10 * time.Second); got != 1012 {
					t.Errorf("the %s's socket on the sender closed with %d, want 1012 (moved)", name, got)
				}
			}
			testutil.ExitsCleanly(t, from.Cmd, 10*time.Second, "the sender")
			back := testutil.Dial(t, to.URL)
			back.Join(code, "mixed-player")
			if joined := back.ExpectType("joined"); joined.Index != 1 {
				t.Fatalf("the player came back as %s, want its slot 1", joined.Raw)
			}
			var data struct{ Round float64 }
			if state := back.ExpectType("state"); json.Unmarshal(state.Data, &data) != nil || data.Round != 7 {
				t.Fatalf("the state after the move: %s", state.Raw)
			}
			if !strings.Contains(to.Log(), "room received") {
				t.Fatalf("the receiver did not log the room:\n%s", to.Log())
			}
		})
	}
}
