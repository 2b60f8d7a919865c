package ops

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// A build the docs show, and the file it writes (from the repository's root).
type documentedBuild struct {
	doc, command, output string
}

// documentedBuilds lists every build the docs tell a reader to run.
func documentedBuilds(t *testing.T) []documentedBuild {
	var pkg struct{ Name, Version string }
	b, err := os.ReadFile("../clients/js/package.json")
	if err == nil {
		err = json.Unmarshal(b, &pkg)
	}
	if err != nil {
		t.Fatal(err)
	}
	tarball := "clients/js/" + pkg.Name + "-" + pkg.Version + ".tgz" // what npm pack names it
	return []documentedBuild{
		{"docs/flylocal.md", "go build -o bin/party-sockets .", "bin/party-sockets"},
		{"README.md", "`sh ops/build.sh`", "party-sockets"},
		{"ops/README.md", "`sh ops/build.sh [output]`", "party-sockets"},
		{"ops/build.sh", `-o "${1:-party-sockets}"`, "party-sockets"},
		{"BENCHMARKS.md", "go build -o bin/party-sockets-before .", "bin/party-sockets-before"},
		{"README.md", "`npm pack`", tarball},
		{"clients/js/README.md", "`npm pack`", tarball},
	}
}

// Issue 21, item 1: a build the docs or scripts tell a reader to run must
// not leave output that git would pick up (the committed flylocal and
// loadgen binaries came from such builds). Each row's command is in its
// document as written, git ignores each row's output, and every go build
// in a document's code blocks is a row, as every go build in a script is
// a row or writes into the script's temporary directory ($OUT).
func TestDocumentedBuildsWriteWhereGitIgnores(t *testing.T) {
	builds := documentedBuilds(t)
	for _, b := range builds {
		text, err := os.ReadFile(filepath.Join("..", b.doc))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(text), b.command) {
			t.Errorf("%s no longer shows %s: update the table of documented builds", b.doc, b.command)
		}
		if !gitIgnores(t, b.output) {
			t.Errorf("%s: %s writes %s, which git does not ignore", b.doc, b.command, b.output)
		}
		if !dockerIgnores(t, b.output) {
			t.Errorf("%s: %s writes %s, which .dockerignore lets into every image build", b.doc, b.command, b.output)
		}
	}
	docs, _ := filepath.Glob("../docs/*.md")
	for i := range docs {
		docs[i] = strings.TrimPrefix(docs[i], "../")
	}
	for _, doc := range append([]string{"README.md", "BENCHMARKS.md", "ops/README.md", "clients/js/README.md"}, docs...) {
		for _, line := range codeBlockLines(t, doc) {
			if strings.Contains(line, "go build") && !showsRow(line, builds) {
				t.Errorf("%s shows a build that is not in the table: %s", doc, line)
			}
		}
	}
	scripts, _ := filepath.Glob("../tests/bench/*.sh")
	for _, script := range append(scripts, "build.sh", "../.ci/run") {
		text, err := os.ReadFile(script)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(text), "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "#") || !strings.Contains(line, "go build") {
				continue
			}
			if !strings.Contains(line, `-o "$OUT/`) && !showsRow(line, builds) {
				t.Errorf("%s builds outside its temporary directory: %s", script, line)
			}
		}
	}
}

// showsRow reports whether line runs one of the table's builds.
func showsRow(line string, builds []documentedBuild) bool {
	for _, b := range builds {
		if strings.Contains(line, strings.Trim(b.command, "`")) {
			return true
		}
	}
	return false
}

// codeBlockLines returns the lines inside doc's fenced code blocks.
func codeBlockLines(t *testing.T, doc string) (lines []string) {
	text, err := os.ReadFile(filepath.Join("..", doc))
	if err != nil {
		t.Fatal(err)
	}
	in := false
	for _, line := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(line, "```") {
			in = !in
		} else if in {
			lines = append(lines, line)
		}
	}
	return lines
}

// gitIgnores reports whether git ignores path (from the repository's root),
// whether or not it exists.
func gitIgnores(t *testing.T, path string) bool {
	t.Helper()
	// The test cache sees what this process reads, not what git reads.
	if _, err := os.ReadFile("../.gitignore"); err != nil {
		t.Fatal(err)
	}
	_, err := exec.LookPath("git")
	testutil.Need(t, err == nil, "git")
	cmd := exec.Command("git", "check-ignore", "--no-index", "-q", path)
	cmd.Dir = ".."
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return true
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return false
	}
	testutil.Need(t, false, "a git checkout (git check-ignore: "+err.Error()+")")
	return false
}

// dockerIgnores reports whether .dockerignore keeps path out of the build
// context: a pattern matches the path or a directory above it (Docker's
// matching, without "**" or "!", which the file does not use).
func dockerIgnores(t *testing.T, path string) bool {
	t.Helper()
	text, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(text), "\n") {
		pattern := strings.Trim(strings.TrimSpace(line), "/")
		if pattern == "" || strings.HasPrefix(pattern, "#") {
			continue
		}
		if strings.Contains(pattern, "**") || strings.HasPrefix(pattern, "!") {
			t.Fatalf(".dockerignore pattern %q: this test does not match it; teach it", pattern)
		}
		for p := path; p != "."; p = filepath.Dir(p) {
			if ok, _ := filepath.Match(pattern, p); ok {
				return true
			}
		}
	}
	return false
}
