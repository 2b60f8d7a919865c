// Package jsclient runs the browser client's own tests (Node's test runner
// against a real server), type-checks its .d.ts with TypeScript, and
// installs the package that `npm pack` makes into a scratch project that
// then uses it. .ci/run installs node_modules here (npm ci); locally these
// tests skip, saying why, when Node or TypeScript is missing.
package jsclient

import (
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

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestNodeTestRunner(t *testing.T) {
	out := run(t, ".", []string{"PARTY_SOCKETS_BIN=" + testutil.Binary(t)}, node(t), "--experimental-websocket", "--test", "test/")
	if !strings.Contains(out, "# fail 0") {
		t.Fatalf("node --test:\n%s", out)
	}
}

func TestTypesCheck(t *testing.T) {
	_, err := os.Stat("node_modules/typescript/bin/tsc")
	need(t, err == nil, "typescript (npm ci in clients/js)")
	run(t, ".", nil, node(t), "node_modules/typescript/bin/tsc", "-p", ".")
}

// npm pack makes a package a game can install from the tarball: a scratch
// project installs it (no registry needed) and creates a room with it.
func TestPackedPackageInstalls(t *testing.T) {
	n := node(t)
	npm, err := exec.LookPath("npm")
	need(t, err == nil, "npm")
	dir := t.TempDir()
	run(t, ".", nil, npm, "pack", "--pack-destination", dir, "--loglevel=error")
	tgz, _ := filepath.Glob(filepath.Join(dir, "party-sockets-client-*.tgz"))
	if len(tgz) != 1 {
		t.Fatalf("npm pack made %v", tgz)
	}
	game := filepath.Join(dir, "game")
	os.MkdirAll(game, 0o755)
	os.WriteFile(filepath.Join(game, "package.json"), []byte(`{"name":"game","private":true,"type":"module"}`), 0o644)
	run(t, game, nil, npm, "install", "--offline", "--no-audit", "--no-fund", "--loglevel=error", tgz[0])
	srv := testutil.Start(t)
	os.WriteFile(filepath.Join(game, "main.mjs"), []byte(`
import { PartySocket } from "party-sockets-client";
const host = await PartySocket.create(process.env.RELAY, { maxClients: 2 });
console.log("room", host.room);
host.close();
`), 0o644)
	out := run(t, game, []string{"RELAY=" + srv.URL}, n, "--experimental-websocket", "main.mjs")
	if !strings.HasPrefix(out, "room ") || len(strings.TrimSpace(out)) != len("room ")+6 {
		t.Fatalf("the installed package printed %q", out)
	}
	for _, f := range []string{"party-sockets.js", "party-sockets.d.ts", "README.md", "package.json"} {
		if _, err := os.Stat(filepath.Join(game, "node_modules", "party-sockets-client", f)); err != nil {
			t.Errorf("the package lacks %s", f)
		}
	}
}
