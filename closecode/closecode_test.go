package closecode_test

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/party-sockets/party-sockets/client"
	"github.com/party-sockets/party-sockets/closecode"
)

// The JS client's table is the same as this one, code for code.
func TestJSClientTable(t *testing.T) {
	src, err := os.ReadFile("../clients/js/party-sockets.js")
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile(`(?m)^\s+(\d{4}): \{ reason: "([^"]*)", final: (true|false) \},$`).FindAllStringSubmatch(string(src), -1)
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
