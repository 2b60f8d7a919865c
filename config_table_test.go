package main

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/party-sockets/party-sockets/routing"
	"github.com/party-sockets/party-sockets/server"
)

// readElsewhere are variables the README's tables name that the Go
// runtime reads, not the table.
var readElsewhere = map[string]bool{"GOMEMLIMIT": true}

// readmeTableVars is every `VARIABLE` the rows of the README's table under
// heading name mention (up to the next heading).
func readmeTableVars(t *testing.T, readme, heading string) []string {
	t.Helper()
	_, section, ok := strings.Cut(readme, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README has no %q", heading)
	}
	if i := strings.Index(section, "\n#"); i >= 0 {
		section = section[:i]
	}
	name := regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")
	var out []string
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		for _, m := range name.FindAllStringSubmatch(line, -1) {
			if !readElsewhere[m[1]] {
				out = append(out, m[1])
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("README's %q table names no variable", heading)
	}
	return out
}

// Every variable the tables of docs/configuration.md and docs/limits.md
// name is a row of the config table, and every row (and the Fly name it
// falls back to) is named there.
func TestTableMatchesREADME(t *testing.T) {
	documented := map[string]bool{}
	for doc, h := range map[string]string{"docs/configuration.md": "# Configuration", "docs/limits.md": "# Limits and abuse"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range readmeTableVars(t, "\n"+string(b), h) {
			documented[v] = true
		}
	}
	var c config
	read := map[string]bool{}
	for _, s := range c.settings() {
		if read[s.env] {
			t.Errorf("%s has two rows", s.env)
		}
		read[s.env] = true
		if s.alt != "" {
			read[s.alt] = true
		}
	}
	for v := range documented {
		if !read[v] {
			t.Errorf("the docs name %s, which no row of the table reads", v)
		}
	}
	for v := range read {
		if !documented[v] {
			t.Errorf("the table reads %s, which the docs' tables do not name", v)
		}
	}
}

// Each default is written once. The packages keep a default for a zero
// value (tests build their Configs without main), and the table's row
// for the same field must agree with it: zero the field, let the package
// fill it, and it is either still zero (the package's zero means "off",
// and the default is main's alone) or the table's default. A row whose
// default is zero leaves the choice to the package (RECOVER_AGE: the host
// grace).
func TestTableDefaultsAreThePackages(t *testing.T) {
	var c config
	rows := c.settings()
	for _, s := range rows {
		loaded, err := loadConfig(env(nil))
		if err != nil {
			t.Fatal(err)
		}
		c = loaded
		if got := s.get(); !reflect.DeepEqual(got, s.def) {
			t.Errorf("%s: loadConfig gives %v, the row's default is %v", s.env, got, s.def)
		}
		if reflect.ValueOf(s.def).IsZero() {
			continue
		}
		s.zero()
		c.Server, c.Rooms = c.Server.WithDefaults(), c.Rooms.WithDefaults()
		if got := s.get(); !reflect.ValueOf(got).IsZero() && !reflect.DeepEqual(got, s.def) {
			t.Errorf("%s: its package fills a zero with %v, the table's default is %v", s.env, got, s.def)
		}
	}
	// PROBES_PER_SEC goes to two packages through main: both fill a zero
	// with the row's default.
	probes := rows[slices.IndexFunc(rows, func(s setting) bool { return s.env == "PROBES_PER_SEC" })]
	if got := (server.Config{}).WithDefaults().PeerLookupsPerSec; got != probes.def {
		t.Errorf("server fills PeerLookupsPerSec with %v, PROBES_PER_SEC's default is %v", got, probes.def)
	}
	if probes.def != float64(routing.DefaultRoundsPerSec) {
		t.Errorf("PROBES_PER_SEC's default %v is not the prober's %v", probes.def, routing.DefaultRoundsPerSec)
	}
}

// Every bounded row takes the values at its bounds and refuses the values
// just past them, with a line that names the variable; a default is
// inside its own bounds.
func TestTableBounds(t *testing.T) {
	var c config
	bounded := 0
	for _, s := range c.settings() {
		if len(s.past) == 0 {
			continue
		}
		bounded++
		for _, v := range s.ends {
			if err := s.set(v); err != nil {
				t.Errorf("%s=%s refused: %v", s.env, v, err)
			}
		}
		for _, v := range s.past {
			if _, err := loadConfig(env(map[string]string{s.env: v})); err == nil || !strings.Contains(err.Error(), s.env+"=") {
				t.Errorf("%s=%s: %v, want a line naming it", s.env, v, err)
			}
		}
	}
	if bounded < 30 {
		t.Errorf("only %d rows are bounded", bounded)
	}
}

// A secret's bad value is never printed, whichever row it is.
func TestTableHidesSecrets(t *testing.T) {
	var c config
	secrets := 0
	for _, s := range c.settings() {
		if s.show("s3cret-value") == "s3cret-value" {
			continue
		}
		secrets++
		e := map[string]string{s.env: "s3cret-value"}
		if s.env == "WEBHOOK_SECRET" {
			e["WEBHOOK_URL"] = "https://hooks.example/x" // checked only with one
		}
		_, err := loadConfig(env(e))
		if err == nil || !strings.Contains(err.Error(), s.env+"=") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s=s3cret-value: %v, want a line naming it without the value", s.env, err)
		}
	}
	if secrets < 6 { // three secrets, the webhook's, the PEM key, WEBHOOK_URL
		t.Errorf("only %d rows hide their value", secrets)
	}
}

// One line per bad variable, in the table's order: a value that is bad
// twice over (too long, and no token key) is reported once, shortened.
func TestLoadConfigOneLinePerVariable(t *testing.T) {
	_, err := loadConfig(env(map[string]string{
		"CREATE_TOKEN_AUDIENCE": strings.Repeat("a", 300),
		"HANDOFF_TIMEOUT":       "6m",
		"PORT":                  "http",
	}))
	if err == nil {
		t.Fatal("bad config accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%v", len(lines), err)
	}
	want := []string{`PORT="http": want a TCP port number (0-65535)`,
		`CREATE_TOKEN_AUDIENCE="` + strings.Repeat("a", 64) + `…": want at most 256 bytes`,
		`HANDOFF_TIMEOUT="6m": want at most 5m: Fly's kill_timeout ends a machine by then`}
	if !slices.Equal(lines, want) {
		t.Errorf("lines:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

// Off Fly the packages get no id and no region: the wire leaves them
// empty (issue 21, item 8). What is ours says local.
func TestLoadConfigOffFlyIdentity(t *testing.T) {
	c, err := loadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Instance != "" || c.Server.Region != "" || c.Rooms.Instance != "" || c.Rooms.Region != "" {
		t.Errorf("off Fly: server %q/%q, rooms %q/%q, want all empty",
			c.Server.Instance, c.Server.Region, c.Rooms.Instance, c.Rooms.Region)
	}
	if c.self() != "local" || c.region() != "local" || verifier(c).Instance != "local" {
		t.Errorf("ours: %q/%q, tokens %q, want local", c.self(), c.region(), verifier(c).Instance)
	}
	if c.Server.Prober != nil {
		t.Error("a prober off Fly")
	}
	c, err = loadConfig(env(map[string]string{"FLY_APP_NAME": "app", "FLY_MACHINE_ID": "148e21ea7e1189", "FLY_REGION": "fra",
		"HANDOFF_SECRET": strings.Repeat("k", 32), "PROBES_PER_SEC": "0"}))
	p := c.Server.Prober
	if err != nil || p == nil || p.App != "app" || p.Self != "148e21ea7e1189" || !p.Wide || p.RoundsPerSec != unboundedRounds ||
		c.Server.PeerLookupsPerSec != unboundedRounds || c.Rooms.Instance != "148e21ea7e1189" || c.Rooms.Region != "fra" {
		t.Errorf("on Fly: prober %+v, peer lookups %v, rooms %q/%q, %v",
			p, c.Server.PeerLookupsPerSec, c.Rooms.Instance, c.Rooms.Region, err)
	}
}
