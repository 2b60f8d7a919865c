package testutil

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Issue 21: cmd/attackcost imported this package, and with it the testing
// package, into a command. No command of the module (nor the server) may
// depend on testing or on this package.
func TestNoCommandImportsTestHelpers(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-f", `{{if eq .Name "main"}}{{.ImportPath}} {{join .Deps " "}}{{end}}`,
		"github.com/party-sockets/party-sockets/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	commands := 0
	for line := range strings.Lines(string(out)) {
		cmd, deps, _ := strings.Cut(strings.TrimSpace(line), " ")
		if cmd == "" {
			continue
		}
		commands++
		for _, bad := range []string{"testing", "github.com/party-sockets/party-sockets/internal/testutil"} {
			if slices.Contains(strings.Fields(deps), bad) {
				t.Errorf("%s depends on %s", cmd, bad)
			}
		}
	}
	if commands < 4 {
		t.Fatalf("go list found %d commands, want the server, attackcost, flylocal and loadgen at least:\n%s", commands, out)
	}
}
