package jsclient

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// placeholder is the relay's address in the READMEs' snippets; the tests
// run them against a real server on loopback instead.
const placeholder = "https://my-app.fly.dev"

// scratchGame is a new project, outside this folder, that has installed
// the tarball npm pack makes of this package and the ws package (packed
// from node_modules, where npm ci put it), offline. It returns the
// project's folder.
func scratchGame(t *testing.T) string {
	t.Helper()
	npm := npm(t)
	_, err := os.Stat("node_modules/ws/package.json")
	need(t, err == nil, "ws (npm ci in clients/js)")
	testutil.TrackModule(t) // npm and node read what the cache cannot see
	dir := t.TempDir()
	run(t, ".", nil, npm, "pack", "--pack-destination", dir, "--loglevel=error")
	run(t, ".", nil, npm, "pack", "./node_modules/ws", "--pack-destination", dir, "--offline", "--loglevel=error")
	client, _ := filepath.Glob(filepath.Join(dir, "party-sockets-client-*.tgz"))
	ws, _ := filepath.Glob(filepath.Join(dir, "ws-*.tgz"))
	if len(client) != 1 || len(ws) != 1 {
		t.Fatalf("npm pack made %v and %v", client, ws)
	}
	game := filepath.Join(dir, "game")
	writeFile(t, filepath.Join(game, "package.json"), `{"name":"game","private":true,"type":"module"}`)
	run(t, game, nil, npm, "install", "--offline", "--no-audit", "--no-fund", "--loglevel=error", client[0], ws[0])
	for _, f := range []string{"party-sockets.js", "party-sockets.d.ts", "README.md", "package.json"} {
		if _, err := os.Stat(filepath.Join(game, "node_modules", "party-sockets-client", f)); err != nil {
			t.Errorf("the package lacks %s", f)
		}
	}
	return game
}

// The game's program on Node: a create, a join by code and messages both
// ways through the ws package, then a refused connect and a connect that
// never answers, each of which must reject rather than throw (ws throws
// an error event nobody listens to).
const nodeGame = `
import { WebSocket } from "ws";
import { PartySocket } from "party-sockets-client";

const relay = process.env.RELAY;
if (typeof globalThis.WebSocket === "undefined") {
  await PartySocket.create(relay).then(() => console.log("no option: created"), (e) => console.log("no option:", e.message));
}
const host = await PartySocket.create(relay, { maxClients: 2, WebSocket });
const player = await PartySocket.join(relay, host.room, { WebSocket });
const next = (s) => new Promise((r) => s.addEventListener("message", (e) => r(JSON.stringify(e.detail)), { once: true }));
const got = next(host);
player.send({ buzz: true });
console.log("host got", await got);
const back = next(player);
host.sendTo(player.index, "first!");
console.log("player got", await back);
for (const [what, url, opts] of [["refused", process.env.REFUSED, {}], ["silent", process.env.SILENT, { connectTimeout: 300 }]]) {
  await PartySocket.create(url, { WebSocket, ...opts }).then(() => console.log(what + ": created"), (e) => console.log(what + ":", e.message));
}
host.close();
player.close();
console.log("done");
`

// Issue 25, item 5: "node app.mjs" failed with "WebSocket is not
// defined" on Node 20 unless --experimental-websocket was passed. A game
// that installs the packed package and ws passes ws's class as the
// WebSocket option and plays without the flag; without the option (on a
// Node with no WebSocket of its own) the error names it.
func TestPackedPackageOnNodeWithWs(t *testing.T) {
	n := node(t)
	game := scratchGame(t)
	writeFile(t, filepath.Join(game, "main.mjs"), nodeGame)
	srv := testutil.Start(t)
	silent := silentListener(t)
	env := []string{"RELAY=" + srv.URL, "REFUSED=http://" + refusedAddr(t), "SILENT=http://" + silent, "NODE_OPTIONS="}
	out := runNode(t, game, env, n, "main.mjs")
	want := []string{
		`host got {"from":1,"data":{"buzz":true}}`,
		`player got {"from":0,"data":"first!"}`,
		"refused: connection failed (1006)",
		"silent: connect timeout after 300 ms",
		"done",
	}
	if builtIn := strings.TrimSpace(run(t, game, []string{"NODE_OPTIONS="}, n, "-p", "typeof WebSocket")); builtIn == "undefined" {
		want = append(want, `no option: party-sockets: this runtime has no WebSocket (Node 20 has one only with `+
			`--experimental-websocket): pass one as the WebSocket option`)
	} else {
		t.Logf("this Node (%s) has a WebSocket of its own: the error without the option is left to npm test", run(t, game, nil, n, "--version"))
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("the game on Node printed:\n%s\nwant a line with %q", out, w)
		}
	}
}

// Every JavaScript snippet of the main README and of this package's runs
// in the scratch game against a real server. One that imports ws runs on
// Node without --experimental-websocket; the others are browser code,
// and Node's own WebSocket (the flag, on Node 20) stands in for the
// browser's. Each prints the room's code; one that closes the room sees
// it end for good.
func TestREADMESnippetsRun(t *testing.T) {
	n := node(t)
	game := scratchGame(t)
	srv := testutil.Start(t)
	code := regexp.MustCompile(`join with the code [1-9A-HJ-NP-Za-km-z]{6}\n`)
	ran := 0
	for _, md := range []string{"../../README.md", "README.md"} {
		for i, snippet := range jsBlocks(t, md) {
			name := fmt.Sprintf("%s #%d", md, i+1)
			src := strings.ReplaceAll(snippet, placeholder, srv.URL)
			if strings.Contains(src, "fly.dev") {
				t.Fatalf("%s names an address other than %s: the test would reach it", name, placeholder)
			}
			file := fmt.Sprintf("snippet%d.mjs", ran)
			writeFile(t, filepath.Join(game, file), src)
			args := []string{file}
			if !strings.Contains(src, `from "ws"`) {
				args = []string{"--experimental-websocket", file}
			}
			out := runNode(t, game, []string{"NODE_OPTIONS="}, n, args...)
			if !code.MatchString(out) {
				t.Errorf("%s printed %q, want the room's code", name, out)
			}
			if strings.Contains(src, "closeRoom()") && !strings.Contains(out, "closed: room closed final: true") {
				t.Errorf("%s printed %q, want the room closed for good", name, out)
			}
			ran++
		}
	}
	if ran < 3 {
		t.Fatalf("ran %d snippets, want the main README's and both of the package's", ran)
	}
}

// jsBlocks are md's ```js blocks that import the package.
func jsBlocks(t *testing.T, md string) []string {
	t.Helper()
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, block := range strings.Split(string(b), "```js\n")[1:] {
		code, _, ok := strings.Cut(block, "\n```")
		if ok && strings.Contains(code, `from "party-sockets-client"`) {
			found = append(found, code+"\n")
		}
	}
	if len(found) == 0 {
		t.Fatalf("%s has no JavaScript block that imports party-sockets-client", md)
	}
	return found
}

// runNode runs node in dir and returns what it printed; it fails the
// test unless node exits 0 within 30 s, with nothing on stderr.
func runNode(t *testing.T, dir string, env []string, n string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, n, args...)
	cmd.Dir, cmd.Env = dir, start(dir, env, n).Env // start's environment: less PARTY_SOCKETS_BIN, plus env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("node %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// silentListener accepts connections and never answers on them.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				break
			}
			held = append(held, c)
		}
		for _, c := range held {
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// refusedAddr is a loopback address where nothing listens.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func writeFile(t *testing.T, name, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
