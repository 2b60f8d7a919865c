package main

import (
	"strings"
	"testing"
)

// A run with a pass, a cached package, a skip with its reason, a failure
// with its output, a build failure and a line that is not JSON.
func TestSummarize(t *testing.T) {
	t.Parallel()
	in := strings.Join([]string{
		`{"Action":"start","Package":"m/a"}`,
		`{"Action":"run","Package":"m/a","Test":"TestOK"}`,
		`{"Action":"output","Package":"m/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}`,
		`{"Action":"output","Package":"m/a","Test":"TestOK","Output":"    a_test.go:9: quiet\n"}`,
		`{"Action":"pass","Package":"m/a","Test":"TestOK"}`,
		`{"Action":"run","Package":"m/a","Test":"TestChromium"}`,
		`{"Action":"output","Package":"m/a","Test":"TestChromium","Output":"=== RUN   TestChromium\n"}`,
		`{"Action":"output","Package":"m/a","Test":"TestChromium","Output":"    b_test.go:30: chromium is missing (.ci/run installs it)\n"}`,
		`{"Action":"output","Package":"m/a","Test":"TestChromium","Output":"--- SKIP: TestChromium (0.00s)\n"}`,
		`{"Action":"skip","Package":"m/a","Test":"TestChromium"}`,
		`{"Action":"output","Package":"m/a","Output":"PASS\n"}`,
		`{"Action":"output","Package":"m/a","Output":"ok  \tm/a\t0.1s\n"}`,
		`{"Action":"pass","Package":"m/a"}`,
		`{"Action":"output","Package":"m/b","Output":"ok  \tm/b\t(cached)\n"}`,
		`{"Action":"run","Package":"m/c","Test":"TestBad"}`,
		`{"Action":"output","Package":"m/c","Test":"TestBad","Output":"    c_test.go:5: got 1, want 2\n"}`,
		`{"Action":"fail","Package":"m/c","Test":"TestBad"}`,
		`{"Action":"output","Package":"m/c","Output":"FAIL\tm/c\t0.2s\n"}`,
		`{"Action":"fail","Package":"m/c"}`,
		`{"ImportPath":"m/d","Action":"build-output","Output":"d.go:3:2: declared and not used: x\n"}`,
		`{"ImportPath":"m/d","Action":"build-fail"}`,
		`{"Action":"output","Package":"m/e","Output":"?   \tm/e\t[no test files]\n"}`,
		`go: warning: not JSON`,
	}, "\n")
	var out strings.Builder
	if code := summarize(strings.NewReader(in), &out); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	got := out.String()
	for _, want := range []string{
		"ok  \tm/a\t0.1s\n", "ok  \tm/b\t(cached)\n", "c_test.go:5: got 1, want 2", "FAIL\tm/c",
		"declared and not used: x", "go: warning: not JSON",
		"1 tests skipped", "  m/a TestChromium: b_test.go:30: chromium is missing (.ci/run installs it)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"quiet", "[no test files]", "PASS\n"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("summary has %q:\n%s", unwanted, got)
		}
	}
	out.Reset()
	if code := summarize(strings.NewReader(in[:strings.Index(in, `{"Action":"run","Package":"m/c"`)]), &out); code != 0 {
		t.Errorf("a run with a skip and no failure: exit %d, want 0\n%s", code, out.String())
	}
	// One line past maxLine is an error, not a hang or an unbounded buffer.
	out.Reset()
	if code := summarize(strings.NewReader(strings.Repeat("x", maxLine+1)), &out); code != 1 ||
		!strings.Contains(out.String(), "too long") {
		t.Errorf("an overlong line: exit %d\n%.200s", code, out.String())
	}
}
