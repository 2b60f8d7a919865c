// Command testsummary reads `go test -json` and prints what a person
// wants from a test run: one line per package, the whole output of every
// test that failed, and at the end every test that skipped, with its
// reason. Without -v, go test says nothing of skips: a test that needs a
// missing tool (chromium, prometheus) passed as "ok" (issue 25, item 6).
// It exits 1 when anything failed or did not build.
//
//	go test -race -json ./... | go run ./internal/testsummary
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json), build events
// included.
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output, build-fail
	Test       string
	Output     string
}

func main() { os.Exit(summarize(os.Stdin, os.Stdout)) }

// maxLine bounds one line of go test's output that summarize holds.
const maxLine = 4 << 20

func summarize(in io.Reader, out io.Writer) int {
	var (
		failed bool
		held   = map[string][]string{} // package + test → its output so far
		skips  []string
	)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Action == "" {
			fmt.Fprintln(out, sc.Text()) // go's own words (a flag error, say)
			continue
		}
		key := e.Package + " " + e.Test
		switch {
		case e.Action == "build-output":
			fmt.Fprint(out, e.Output)
		case e.Action == "build-fail":
			failed = true
		case e.Action == "output" && e.Test == "":
			failed = packageLine(out, e.Output) || failed
		case e.Action == "output":
			held[key] = append(held[key], e.Output)
		case e.Action == "fail" && e.Test != "":
			failed = true
			fmt.Fprint(out, strings.Join(held[key], ""))
			delete(held, key)
		case e.Action == "fail":
			failed = true
		case e.Action == "skip" && e.Test != "":
			skips = append(skips, fmt.Sprintf("  %s %s: %s", e.Package, e.Test, reason(held[key])))
			delete(held, key)
		case e.Action == "pass":
			delete(held, key)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(out, "testsummary:", err)
		failed = true
	}
	if len(skips) > 0 {
		fmt.Fprintf(out, "\n%d tests skipped (install what each names and run the same command again: a skip is never cached):\n%s\n",
			len(skips), strings.Join(skips, "\n"))
	}
	if failed {
		fmt.Fprintln(out, "\nFAIL")
		return 1
	}
	return 0
}

// packageLine prints a package's own line (ok, FAIL, a panic outside any
// test) and reports whether it says the package failed. PASS and "no test
// files" are left out.
func packageLine(out io.Writer, line string) (failed bool) {
	if line == "PASS\n" || strings.HasPrefix(line, "?") {
		return false
	}
	fmt.Fprint(out, line)
	return strings.HasPrefix(line, "FAIL")
}

// reason is what a skipped test said, less the runner's own lines.
func reason(lines []string) string {
	var said []string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		said = append(said, l)
	}
	if len(said) == 0 {
		return "(no reason given)"
	}
	return strings.Join(said, " / ")
}
