// Package jsclient runs the browser client's own tests (npm test: Node's
// test runner against a real server), with the server go test built and
// without (npm test then builds it), type-checks its .d.ts with
// TypeScript, and installs the package that `npm pack` makes, with ws,
// into a scratch project that plays a game on Node 20 without
// --experimental-websocket and runs the READMEs' snippets
// (scratch_test.go). .ci/run installs node_modules here (npm ci); locally
// these tests skip, saying why, when Node, npm, TypeScript or ws is
// missing.
package jsclient

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

var need = testutil.Need

func node(t *testing.T) string {
	t.Helper()
	n, err := exec.LookPath("node")
	need(t, err == nil, "node")
	return n
}

// run runs name in dir with the environment less PARTY_SOCKETS_BIN, plus
// env, and returns its output; it fails the test unless the command
// succeeds.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := start(dir, env, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func start(dir string, env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PARTY_SOCKETS_BIN=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

func npm(t *testing.T) string {
	t.Helper()
	n, err := exec.LookPath("npm")
	need(t, err == nil, "npm")
	return n
}

// npm test, the package's own test command, against the server go test built.
func TestNodeTestRunner(t *testing.T) {
	node(t)
	out := run(t, ".", []string{"PARTY_SOCKETS_BIN=" + testutil.Binary(t)}, npm(t), "test")
	if !strings.Contains(out, "# fail 0") || !strings.Contains(out, "# pass ") || strings.Contains(out, "building the server") {
		t.Fatalf("npm test:\n%s", out)
	}
}

// Issue 21, item 9: npm test failed with "PARTY_SOCKETS_BIN is not set"
// unless go test ran it. Run by itself it builds the server with Go into
// a temporary directory, and removes it again.
func TestNpmTestBuildsTheServerItself(t *testing.T) {
	node(t)
	testutil.TrackModule(t)
	tmp := t.TempDir()
	out := run(t, ".", []string{"TMPDIR=" + tmp}, npm(t), "test")
	if !strings.Contains(out, "# fail 0") || !strings.Contains(out, "# pass ") || !strings.Contains(out, "building the server") {
		t.Fatalf("npm test without PARTY_SOCKETS_BIN:\n%s", out)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("npm test left %v in its temporary directory", left)
	}
}

// Without Go and without PARTY_SOCKETS_BIN, the test command says what it
// needs, once.
func TestWithoutGoTheTestsSayWhatTheyNeed(t *testing.T) {
	n := node(t)
	testutil.TrackModule(t)
	onlyNode := t.TempDir()
	if err := os.Symlink(n, filepath.Join(onlyNode, "node")); err != nil {
		t.Fatal(err)
	}
	args := testScript(t)
	files := 0 // each test file says it once
	for _, a := range args {
		if strings.HasSuffix(a, ".test.mjs") {
			files++
		}
	}
	out, err := start(".", []string{"PATH=" + onlyNode}, n, args[1:]...).CombinedOutput()
	if err == nil || strings.Count(string(out), "Error: PARTY_SOCKETS_BIN is not set and Go is not installed") != files ||
		!strings.Contains(string(out), "PARTY_SOCKETS_BIN") ||
		!strings.Contains(string(out), "https://go.dev/dl/") {
		t.Fatalf("%s with no go on PATH: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// testScript is package.json's test script, a node command line.
func testScript(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("package.json")
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct {
		Scripts map[string]string `json:"scripts"`
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatal(err)
	}
	args := strings.Fields(pkg.Scripts["test"])
	if len(args) < 2 || args[0] != "node" {
		t.Fatalf("package.json's test script is %q, want a node command line", pkg.Scripts["test"])
	}
	return args
}

func TestTypesCheck(t *testing.T) {
	_, err := os.Stat("node_modules/typescript/bin/tsc")
	need(t, err == nil, "typescript (npm ci in clients/js)")
	run(t, ".", nil, node(t), "node_modules/typescript/bin/tsc", "-p", ".")
}
