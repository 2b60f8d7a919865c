package main

import (
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/rooms"
	"github.com/party-sockets/party-sockets/server"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.addr() != ":3000" || c.Rooms.HostGrace != 2*time.Minute || c.Server.MaxFrameBytes != 65536 || c.Server.DashboardURL != "" ||
		c.InternalDNS != "" {
		t.Fatalf("defaults = %+v", c)
	}
	// A household's rejoin after a deploy fits the probe allowance (README).
	if c.ProbesPerSec != 20 || c.Server.AddrProbesPerMin != 10 || c.Server.AddrProbeBurst != 60 {
		t.Fatalf(
			"probe defaults = %v/s, %v/min per address, burst %d",
			c.ProbesPerSec,
			c.Server.AddrProbesPerMin,
			c.Server.AddrProbeBurst,
		)
	}
}

func TestLoadConfigFly(t *testing.T) {
	c, err := loadConfig(env(map[string]string{
		"FLY_APP_NAME": "my app", "FLY_MACHINE_ID": "148e21ea7e1189", "FLY_REGION": "fra",
		"PORT": "8080", "HOST": "127.0.0.2", "HOST_GRACE": "30s", "ALLOWED_ORIGINS": "a.example, *.b.example",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		Port: 8080, Host: "127.0.0.2", InternalDNS: "[fdaa::3]:53",
		Server: server.Config{Instance: "148e21ea7e1189", Region: "fra", AppName: "my app",
			DashboardURL: "https://fly-metrics.net/d/fly-app/fly-app?var-app=my+app", MaxFrameBytes: 65536,
			AllowedOrigins: []string{"a.example", "*.b.example"}},
		Rooms: rooms.Config{Instance: "148e21ea7e1189", Region: "fra", HostGrace: 30 * time.Second},
	}
	if got := c; got.Port != want.Port || got.Host != want.Host || got.Server.Instance != want.Server.Instance ||
		got.Server.Region != want.Server.Region || got.Server.DashboardURL != want.Server.DashboardURL ||
		got.InternalDNS != want.InternalDNS || got.Rooms.HostGrace != want.Rooms.HostGrace ||
		got.Rooms.Instance != want.Rooms.Instance || got.Rooms.Region != want.Rooms.Region ||
		strings.Join(got.Server.AllowedOrigins, "|") != "a.example|*.b.example" {
		t.Fatalf("loadConfig = %+v, want %+v", got, want)
	}
	// Explicit values win over the FLY_ ones.
	c, _ = loadConfig(env(map[string]string{"FLY_MACHINE_ID": "a", "INSTANCE_ID": "b", "FLY_REGION": "fra", "REGION": "syd"}))
	if c.Server.Instance != "b" || c.Server.Region != "syd" {
		t.Fatalf("INSTANCE_ID/REGION did not win: %+v", c)
	}
}

func TestLoadConfigReportsEveryBadValue(t *testing.T) {
	_, err := loadConfig(env(map[string]string{
		"PORT": "http", "HOST_GRACE": "soon", "MAX_FRAME_BYTES": "-1",
		"INTERNAL_DNS": "fdaa::3", "DASHBOARD_URL": "not a url", "LOG_LEVEL": "loud",
	}))
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, name := range []string{"PORT", "HOST_GRACE", "MAX_FRAME_BYTES", "INTERNAL_DNS", "DASHBOARD_URL", "LOG_LEVEL"} {
		if !strings.Contains(err.Error(), name+"=") {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
}

// Every env value is bounded: the new limits refuse absurd values at start.
func TestLoadConfigBoundsTheNewLimits(t *testing.T) {
	_, err := loadConfig(env(map[string]string{
		"MAX_ROOM_MEMBERS": "0", "MAX_HEADER_BYTES": "1e9", "MAX_PENDING_CONNS": "-5",
		"MEMORY_BUDGET": "12", "JOIN_TIMEOUT": "0s", "MESSAGE_TIMEOUT": "never",
	}))
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, name := range []string{"MAX_ROOM_MEMBERS", "MAX_HEADER_BYTES", "MAX_PENDING_CONNS", "MEMORY_BUDGET", "JOIN_TIMEOUT", "MESSAGE_TIMEOUT"} {
		if !strings.Contains(err.Error(), name+"=") {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
	c, err := loadConfig(env(map[string]string{"MAX_ROOM_MEMBERS": "5000", "MEMORY_BUDGET": "67108864", "JOIN_TIMEOUT": "5s"}))
	if err != nil || c.Rooms.MaxMembers != 5000 || c.MemoryBudget != 64<<20 || c.Server.JoinTimeout != 5*time.Second {
		t.Fatalf("loadConfig = %+v, %v", c, err)
	}
}

// `party-sockets token` mints a token the server's verifier accepts.
func TestTokenCommand(t *testing.T) {
	secret := "a-secret-of-at-least-32-bytes-long"
	var out strings.Builder
	err := runToken(
		[]string{"-ttl", "2m", "-max-clients", "4", "-sub", "quiz"},
		env(map[string]string{"CREATE_TOKEN_SECRET": secret}),
		&out,
	)
	if err != nil {
		t.Fatal(err)
	}
	v := verifier(config{CreateTokenSecret: secret})
	c, err := v.Check(strings.TrimSpace(out.String()), 4, "https://any.example")
	if err != nil || c.Subject != "quiz" {
		t.Fatalf("minted token: %v %+v", err, c)
	}
	if _, err := v.Check(strings.TrimSpace(out.String()), 5, ""); err == nil {
		t.Fatal("the -max-clients cap was not in the token")
	}
	if err := runToken(nil, env(nil), &out); err == nil {
		t.Fatal("minted without a secret")
	}
	if err := runToken([]string{"-ttl", "3h"}, env(map[string]string{"CREATE_TOKEN_SECRET": secret}), &out); err == nil {
		t.Fatal("minted a token valid for 3 hours")
	}
}

// The later limits, recovery and the backend's settings are bounded too.
func TestLoadConfigBoundsRatesRecoveryAndBackend(t *testing.T) {
	bad := map[string]string{
		"FRAMES_PER_SEC": "-1", "BYTES_PER_SEC": "lots", "UPGRADES_PER_SEC": "1e9", "CREATES_PER_MIN": "NaN",
		"PROBES_PER_SEC": "-3", "UPGRADE_BURST": "0", "CREATE_BURST": "x", "MACHINE_MISSES_PER_MIN": "-1",
		"ADDR_PROBES_PER_MIN": "-1", "ADDR_PROBE_BURST": "0",
		"RECOVER_FRAMES": "0", "RECOVER_BYTES": "10", "RECOVER_AGE": "-1s", "RECOVER_ROOM_BYTES": "8388608",
		"CREATE_TOKEN_SECRET": "short", "CREATE_TOKEN_PUBLIC_KEY": "not pem", "SERVER_API_KEY": "short",
		"WEBHOOK_URL": "ftp://x", "WEBHOOK_SECRET": "plain",
		"HANDOFF": "maybe", "HANDOFF_SECRET": "short",
	}
	_, err := loadConfig(env(bad))
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for name := range bad {
		if !strings.Contains(err.Error(), name+"=") {
			t.Errorf("error does not name %s:\n%v", name, err)
		}
	}
	if strings.Contains(err.Error(), "short\"") {
		t.Error("a secret's value was printed")
	}
}

// The hand-off's time is bounded both ways, and it is on by default.
func TestLoadConfigHandoff(t *testing.T) {
	c, err := loadConfig(env(nil))
	if err != nil || !c.Handoff || c.HandoffTimeout != 4*time.Second || c.Server.HandoffSecret != "" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for _, v := range []string{"-1s", "0s", "6m", "soon"} {
		if _, err := loadConfig(env(map[string]string{"HANDOFF_TIMEOUT": v})); err == nil ||
			!strings.Contains(err.Error(), "HANDOFF_TIMEOUT=") {
			t.Errorf("HANDOFF_TIMEOUT=%s: %v", v, err)
		}
	}
	c, err = loadConfig(
		env(map[string]string{"HANDOFF": "off", "HANDOFF_TIMEOUT": "30s", "HANDOFF_SECRET": strings.Repeat("k", 32)}),
	)
	if err != nil || c.Handoff || c.HandoffTimeout != 30*time.Second || len(c.Server.HandoffSecret) != 32 {
		t.Fatalf("set: %+v %v", c, err)
	}
}

// CREATE_TOKEN_AUDIENCE reaches the verifier; alone, without a token
// secret or key, it would check nothing, so it is refused.
func TestLoadConfigCreateTokenAudience(t *testing.T) {
	secret := strings.Repeat("s", 32)
	c, err := loadConfig(
		env(map[string]string{"CREATE_TOKEN_SECRET": secret, "CREATE_TOKEN_AUDIENCE": "relay.game.example", "INSTANCE_ID": "m1"}),
	)
	if err != nil || c.CreateTokenAudience != "relay.game.example" {
		t.Fatalf("loadConfig = %+v, %v", c, err)
	}
	if v := verifier(c); v.Audience != "relay.game.example" || v.Instance != "m1" {
		t.Fatalf("verifier = audience %q, instance %q", v.Audience, v.Instance)
	}
	for name, e := range map[string]map[string]string{
		"no secret": {"CREATE_TOKEN_AUDIENCE": "relay.game.example"},
		"too long":  {"CREATE_TOKEN_SECRET": secret, "CREATE_TOKEN_AUDIENCE": strings.Repeat("a", 257)},
	} {
		if _, err := loadConfig(env(e)); err == nil || !strings.Contains(err.Error(), "CREATE_TOKEN_AUDIENCE=") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A bad WEBHOOK_URL is reported without what may be a credential in it.
func TestBadWebhookURLIsRedacted(t *testing.T) {
	tests := []struct{ in, want, secret string }{
		{"ftp://hook:pa55word@hooks.example/x?token=t0ken", `"ftp://redacted@hooks.example/redacted?redacted"`, "pa55word"},
		{"ftp://hooks.example/services/T0/B0/s3cretpath", `"ftp://hooks.example/redacted"`, "s3cretpath"},
		{"ftp://hooks.example#frag-s3cret", `"ftp://hooks.example#redacted"`, "s3cret"},
		{"http://us3r:pass@ho st/%zz", `"(26 bytes, not shown)"`, "us3r"},
		{"http:user:opaque-s3cret@host", `"(28 bytes, not shown)"`, "s3cret"},
		{"https://hooks.example/" + strings.Repeat("p", 3000), `"https://hooks.example/redacted"`, "ppp"},
	}
	for _, tt := range tests {
		_, err := loadConfig(env(map[string]string{"WEBHOOK_URL": tt.in, "WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))
		if err == nil {
			t.Errorf("WEBHOOK_URL=%s accepted", tt.in)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, tt.secret) || !strings.Contains(msg, "WEBHOOK_URL="+tt.want) {
			t.Errorf("WEBHOOK_URL=%s reported as %q, want %s without %q", tt.in, msg, tt.want, tt.secret)
		}
	}
}

// The token command sets aud, a fresh jti (or the one given) and a
// machine, and the verifier holds each token to them.
func TestTokenCommandAudienceJTIInstance(t *testing.T) {
	secret := "a-secret-of-at-least-32-bytes-long"
	mint := func(args ...string) string {
		t.Helper()
		var out strings.Builder
		if err := runToken(args, env(map[string]string{"CREATE_TOKEN_SECRET": secret}), &out); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out.String())
	}
	v := verifier(config{CreateTokenSecret: secret, CreateTokenAudience: "relay", Server: server.Config{Instance: "m1"}})
	if _, err := v.Check(mint(), 1, ""); err == nil {
		t.Fatal("a token without -aud passed a verifier with an audience")
	}
	a, err := v.Check(mint("-aud", "relay"), 1, "")
	if err != nil {
		t.Fatalf("-aud relay: %v", err)
	}
	b, err := v.Check(mint("-aud", "relay"), 1, "")
	if err != nil || a.ID == "" || a.ID == b.ID {
		t.Fatalf("two minted tokens: jti %q and %q (%v)", a.ID, b.ID, err)
	}
	named := mint("-aud", "relay", "-jti", "order-7")
	if c, err := v.Check(named, 1, ""); err != nil || c.ID != "order-7" {
		t.Fatalf("-jti order-7: %+v %v", c, err)
	}
	if _, err := v.Check(named, 1, ""); err == nil {
		t.Fatal("a spent token was accepted again")
	}
	if _, err := v.Check(mint("-aud", "relay", "-instance", "m2"), 1, ""); err == nil {
		t.Fatal("a token for machine m2 was accepted on m1")
	}
	if _, err := v.Check(mint("-aud", "relay", "-instance", "m1"), 1, ""); err != nil {
		t.Fatalf("-instance m1 on m1: %v", err)
	}
}

// A room's windows are bounded by default, and the bound stays one a
// hand-off can carry (4 MiB at most).
func TestLoadConfigRecoverRoomBytes(t *testing.T) {
	c, err := loadConfig(env(nil))
	if err != nil || c.Rooms.RecoverRoomBytes != 1<<20 {
		t.Fatalf("default RECOVER_ROOM_BYTES = %d (%v), want 1 MiB", c.Rooms.RecoverRoomBytes, err)
	}
	if c, err = loadConfig(env(map[string]string{"RECOVER_ROOM_BYTES": "4194304"})); err != nil ||
		c.Rooms.RecoverRoomBytes != 4<<20 {
		t.Fatalf("RECOVER_ROOM_BYTES=4194304: %d, %v", c.Rooms.RecoverRoomBytes, err)
	}
	for _, v := range []string{"65535", "4194305", "-1", "lots"} {
		if _, err := loadConfig(env(map[string]string{"RECOVER_ROOM_BYTES": v})); err == nil ||
			!strings.Contains(err.Error(), "RECOVER_ROOM_BYTES=") {
			t.Errorf("RECOVER_ROOM_BYTES=%s: %v", v, err)
		}
	}
}

// Issue 20: on Fly without HANDOFF_SECRET, hand-off turns itself off with
// a warning rather than refuse to start: an app upgraded without the
// secret must not crash-loop.
func TestLoadConfigHandoffNeedsTheSecretOnFly(t *testing.T) {
	secret := strings.Repeat("k", 32)
	for _, tt := range []struct {
		env     map[string]string
		handoff bool
		warned  bool
	}{
		{map[string]string{"FLY_APP_NAME": "app"}, false, true},
		{map[string]string{"FLY_APP_NAME": "app", "HANDOFF_SECRET": secret}, true, false},
		{map[string]string{"FLY_APP_NAME": "app", "HANDOFF": "off"}, false, false},
		{map[string]string{}, true, false}, // off Fly there is no hand-off to turn off
	} {
		c, err := loadConfig(env(tt.env))
		warned := len(c.Warnings) == 1 && strings.Contains(c.Warnings[0], "HANDOFF_SECRET")
		if err != nil || c.Handoff != tt.handoff || warned != tt.warned {
			t.Errorf("%v: Handoff %v, warnings %q, %v; want %v, warned %v", tt.env, c.Handoff, c.Warnings, err, tt.handoff, tt.warned)
		}
	}
}
