package client_test

import (
	"bytes"
	"context"
	"go/doc"
	"go/doc/comment"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

const (
	modulePath = "github.com/party-sockets/party-sockets"
	goGet      = "go get " + modulePath + "/client"
	// placeholder is the app's address in the documented code; the tests
	// run that code against the relay on loopback instead.
	placeholder = "wss://my-app.fly.dev"
)

// Issue 25, item 4: the runnable Example built the relay from the
// server's packages in its visible code. As pkg.go.dev shows it (the
// whole file, since it holds one example), it uses the client alone.
func TestExampleShowsOnlyTheClient(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "example_test.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	exs := doc.Examples(f)
	if len(exs) != 1 || exs[0].Name != "" || exs[0].Play == nil {
		t.Fatalf("example_test.go: want one whole-file Example, got %d (play: %v)", len(exs), len(exs) == 1 && exs[0].Play != nil)
	}
	want := []string{"context", "fmt", "log", modulePath + "/client"}
	var got []string
	for _, imp := range exs[0].Play.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		got = append(got, p)
	}
	if !slices.Equal(got, want) {
		t.Errorf("the example as shown imports %q, want %q", got, want)
	}
	var src bytes.Buffer
	format.Node(&src, fset, exs[0].Play)
	for _, call := range []string{"client.Create(", "client.Join(", ".Send(", ".Events()", ".SetState(", ".CloseRoom(",
		"client.State", "client.Reconnecting", "client.Closed", ".Close()", placeholder} {
		if !strings.Contains(src.String(), call) {
			t.Errorf("the example as shown lacks %s:\n%s", call, src.String())
		}
	}
}

// Issue 25, item 4: `go get <module>/client` is the documented way in,
// and the README's Go snippet failed to compile ("declared and not
// used"). A scratch module fetches the client the documented way (a
// replace directive points the module at this checkout), and the
// README's program and the package doc's game build there and run
// against a real relay.
func TestDocumentedGoCodeRuns(t *testing.T) {
	testutil.TrackModule(t) // go build reads this module's files: rerun when one changes
	readme := readFile(t, "../README.md")
	pkgDoc := packageDoc(t)
	for where, text := range map[string]string{"README.md": readme, "the package doc": pkgDoc} {
		if !strings.Contains(text, goGet) {
			t.Errorf("%s does not say %q", where, goGet)
		}
	}
	mod := scratchModule(t)
	programs := map[string]string{
		"readme": goBlock(t, readme),
		"pkgdoc": wrapMain(codeBlock(t, pkgDoc, "client.Create(")),
	}
	for name, src := range programs {
		src = strings.ReplaceAll(src, placeholder, relay)
		if strings.Contains(src, "fly.dev") {
			t.Fatalf("%s names an address other than %s: the test would reach it", name, placeholder)
		}
		writeFile(t, filepath.Join(mod, name, "main.go"), src)
	}
	goCmd(t, mod, "build", "-o", "bin/", "./...")
	wants := map[string][]string{
		"readme": {`slot 1 sent {"buzz":true}`, "closed: room closed final: true"},
		"pkgdoc": {`slot 1 sent {"buzz":true}`, "host: room closed final: true",
			`player sees the state {"first":1}`, "player: room closed final: true"},
	}
	for name := range programs {
		out := runProgram(t, filepath.Join(mod, "bin", name))
		for _, want := range wants[name] {
			if !strings.Contains(out, want) {
				t.Errorf("%s printed %q, want a line %q", name, out, want)
			}
		}
	}
}

// scratchModule is a new module, outside this one, that has run the
// documented go get against this checkout.
func scratchModule(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	mod := t.TempDir()
	writeFile(t, filepath.Join(mod, "go.mod"), "module scratch\n\ngo 1.26.0\n\nreplace "+modulePath+" => "+root+"\n")
	// The checksums of this module's dependencies: the scratch module
	// needs a subset, and the build runs offline.
	writeFile(t, filepath.Join(mod, "go.sum"), readFile(t, "../go.sum"))
	goCmd(t, mod, strings.Fields(goGet)[1:]...)
	return mod
}

// goCmd runs go offline in dir: the module cache has what this module
// builds with, and a test reaches no network.
func goCmd(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOPROXY=off", "GOTOOLCHAIN=local", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func runProgram(t *testing.T, bin string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", filepath.Base(bin), err, out)
	}
	return string(out)
}

// goBlock is the one ```go block of md that imports the client.
func goBlock(t *testing.T, md string) string {
	t.Helper()
	var found []string
	for _, block := range strings.Split(md, "```go\n")[1:] {
		code, _, ok := strings.Cut(block, "\n```")
		if ok && strings.Contains(code, `"`+modulePath+`/client"`) {
			found = append(found, code+"\n")
		}
	}
	if len(found) != 1 {
		t.Fatalf("README.md has %d Go blocks that import the client, want 1", len(found))
	}
	return found[0]
}

// packageDoc is the package comment of doc.go, as go doc prints it.
func packageDoc(t *testing.T) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil || f.Doc == nil {
		t.Fatalf("doc.go has no package comment (%v)", err)
	}
	return f.Doc.Text()
}

// codeBlock is the one code block of a doc comment that holds marker.
func codeBlock(t *testing.T, text, marker string) string {
	t.Helper()
	var p comment.Parser
	var found []string
	for _, b := range p.Parse(text).Content {
		if c, ok := b.(*comment.Code); ok && strings.Contains(c.Text, marker) {
			found = append(found, c.Text)
		}
	}
	if len(found) != 1 {
		t.Fatalf("the package doc has %d code blocks with %q, want 1", len(found), marker)
	}
	return found[0]
}

// wrapMain makes the body of main a program; its imports are the ones
// the package doc's game needs (an unused one fails the build).
func wrapMain(body string) string {
	imports := []string{"context", "fmt", "log", modulePath + "/client"}
	var b strings.Builder
	b.WriteString("package main\n\nimport (\n")
	for _, p := range imports {
		b.WriteString("\t" + strconv.Quote(p) + "\n")
	}
	b.WriteString(")\n\nfunc main() {\n" + body + "}\n")
	return b.String()
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
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
