package closecode_test

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/party-sockets/party-sockets/client"
	"github.com/party-sockets/party-sockets/closecode"
)

// The JS client's table is the same as this one, code for code.
func TestJSClientTable(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../clients/js/party-sockets.js")
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile(`(?m)^\s+(\d{4}): \{ reason: "([^"]*)", final: (true|false) \},$`).
		FindAllStringSubmatch(string(src), -1)
	seen := map[closecode.Code]bool{}
	for _, r := range rows {
		n, _ := strconv.Atoi(r[1])
		c := closecode.Code(n)
		want, ok := closecode.Table[c]
		if !ok {
			t.Errorf("JS has %d, which the server never sends", n)
			continue
		}
		if r[2] != want.Reason || (r[3] == "true") != want.Final {
			t.Errorf("JS %d = {%q, final %s}, want {%q, final %v}", n, r[2], r[3], want.Reason, want.Final)
		}
		seen[c] = true
	}
	for c := range closecode.Table {
		if !seen[c] {
			t.Errorf("JS lacks %d", c)
		}
	}
}

// The Go client stops on exactly the final codes.
func TestGoClientFinalCodes(t *testing.T) {
	t.Parallel()
	if client.CodeReplaced != int(closecode.Replaced) || client.CodeRoomClosed != int(closecode.RoomClosed) {
		t.Fatal("the Go client's final codes are not the table's")
	}
	finals := 0
	for _, info := range closecode.Table {
		if info.Final {
			finals++
		}
	}
	if finals != 2 {
		t.Fatalf("%d final codes: existing clients stop only on 4000 and 4001", finals)
	}
}

// README's "Close codes" table names every code the server sends, with its
// reason and whether a client stops; the only others it may name are the
// ones a client sees without our server sending them (1001 from Fly's
// proxy, 1006 for no close frame).
func TestREADMETable(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile("(?m)^\\| (\\d{4}) \\| ([^|]*) \\|[^|]*\\| ([^|]*) \\|$").FindAllStringSubmatch(string(src), -1)
	seen := map[closecode.Code]bool{}
	for _, r := range rows {
		n, _ := strconv.Atoi(r[1])
		c := closecode.Code(n)
		info, ok := closecode.Table[c]
		if !ok {
			if n != 1001 && n != 1006 {
				t.Errorf("README names %d, which the server never sends", n)
			}
			continue
		}
		seen[c] = true
		if info.Reason != "" && r[2] != "`"+info.Reason+"`" {
			t.Errorf("README gives %d the reason %s, want `%s`", n, r[2], info.Reason)
		}
		stop := regexp.MustCompile(`^stop \(final\)`).MatchString(r[3])
		if stop != info.Final {
			t.Errorf("README says %q for %d; final is %v", r[3], n, info.Final)
		}
	}
	for c := range closecode.Table {
		if !seen[c] {
			t.Errorf("README's close codes lack %d", c)
		}
	}
}

// Every end reason that sends a close frame sends a code of Table, with
// Table's reason when it has one; every code of Table is some end's;
// README's close codes name each end's code with its text.
func TestEndsAgreeWithTable(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(src)
	used := map[closecode.Code]bool{}
	for e, in := range closecode.Ends {
		end := closecode.End(e)
		if in.Label == "" {
			t.Errorf("end %d has no label", e)
		}
		if in.Code == 0 {
			if in.Text != "" || in.Queue != closecode.Drop {
				t.Errorf("end %s sends no close frame but has the text %q or flushes", in.Label, in.Text)
			}
			continue
		}
		used[in.Code] = true
		info, ok := closecode.Table[in.Code]
		switch {
		case !ok:
			t.Errorf("end %s sends %d, which Table lacks", in.Label, in.Code)
		case info.Reason != "" && in.Text != info.Reason:
			t.Errorf("end %s sends %d with %q; Table's reason is %q", in.Label, in.Code, in.Text, info.Reason)
		}
		if in.Text != "" && !strings.Contains(readme, fmt.Sprintf("| %d | `%s` |", in.Code, in.Text)) {
			t.Errorf("README's close codes lack %d with `%s` (%s)", in.Code, in.Text, in.Label)
		}
		if end.Code() != in.Code || end.Text() != in.Text || end.Label() != in.Label || end.Flush() != (in.Queue == closecode.Flush) {
			t.Errorf("End(%d)'s methods disagree with its row %+v", e, in)
		}
	}
	for c := range closecode.Table {
		if !used[c] {
			t.Errorf("Table has %d, which no end sends", c)
		}
	}
}

// The zero End is the client's own; the ends a room sends its members
// (replaced, room closed, restart) flush what was queued before them.
func TestEndDefaults(t *testing.T) {
	t.Parallel()
	var zero closecode.End
	if zero != closecode.EndClient || zero.Label() != "client" {
		t.Errorf("zero End = %d (%s), want EndClient", zero, zero.Label())
	}
	for _, e := range []closecode.End{closecode.EndReplaced, closecode.EndRoomClosed, closecode.EndRestart} {
		if !e.Flush() {
			t.Errorf("%s drops the queue: a member would lose frames sent before it", e.Label())
		}
	}
	labels := closecode.Labels()
	if len(labels) != len(closecode.Ends)-1 { // rate_limit: by message, and by frame or byte
		t.Errorf("Labels() = %q: %d, want %d", labels, len(labels), len(closecode.Ends)-1)
	}
}
