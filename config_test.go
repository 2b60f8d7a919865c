package main

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.addr() != ":3000" || c.HostGrace != 2*time.Minute || c.MaxFrameBytes != 65536 || c.DashboardURL != "" || c.InternalDNS != "" {
		t.Fatalf("defaults = %+v", c)
	}
	// A household's rejoin after a deploy fits the probe allowance (README).
	if c.ProbesPerSec != 20 || c.AddrProbesPerMin != 10 || c.AddrProbeBurst != 60 {
		t.Fatalf("probe defaults = %v/s, %v/min per address, burst %d", c.ProbesPerSec, c.AddrProbesPerMin, c.AddrProbeBurst)
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
		Port: 8080, Host: "127.0.0.2", Instance: "148e21ea7e1189", Region: "fra", AppName: "my app",
		DashboardURL: "https://fly-metrics.net/d/fly-app/fly-app?var-app=my+app", InternalDNS: "[fdaa::3]:53",
		HostGrace: 30 * time.Second, MaxFrameBytes: 65536, AllowedOrigins: []string{"a.example", "*.b.example"},
	}
	if got := c; got.Port != want.Port || got.Host != want.Host || got.Instance != want.Instance ||
		got.Region != want.Region || got.DashboardURL != want.DashboardURL || got.InternalDNS != want.InternalDNS ||
		got.HostGrace != want.HostGrace || strings.Join(got.AllowedOrigins, "|") != "a.example|*.b.example" {
		t.Fatalf("loadConfig = %+v, want %+v", got, want)
	}
	// Explicit values win over the FLY_ ones.
	c, _ = loadConfig(env(map[string]string{"FLY_MACHINE_ID": "a", "INSTANCE_ID": "b", "FLY_REGION": "fra", "REGION": "syd"}))
	if c.Instance != "b" || c.Region != "syd" {
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
	if err != nil || c.MaxRoomMembers != 5000 || c.MemoryBudget != 64<<20 || c.JoinTimeout != 5*time.Second {
		t.Fatalf("loadConfig = %+v, %v", c, err)
	}
}

// `party-sockets token` mints a token the server's verifier accepts.
func TestTokenCommand(t *testing.T) {
	secret := "a-secret-of-at-least-32-bytes-long"
	var out strings.Builder
	err := runToken([]string{"-ttl", "2m", "-max-clients", "4", "-sub", "quiz"}, env(map[string]string{"CREATE_TOKEN_SECRET": secret}), &out)
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
		"RECOVER_FRAMES": "0", "RECOVER_BYTES": "10", "RECOVER_AGE": "-1s",
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
	if err != nil || !c.Handoff || c.HandoffTimeout != 4*time.Second || c.HandoffSecret != "" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for _, v := range []string{"-1s", "0s", "6m", "soon"} {
		if _, err := loadConfig(env(map[string]string{"HANDOFF_TIMEOUT": v})); err == nil || !strings.Contains(err.Error(), "HANDOFF_TIMEOUT=") {
			t.Errorf("HANDOFF_TIMEOUT=%s: %v", v, err)
		}
	}
	c, err = loadConfig(env(map[string]string{"HANDOFF": "off", "HANDOFF_TIMEOUT": "30s", "HANDOFF_SECRET": strings.Repeat("k", 32)}))
	if err != nil || c.Handoff || c.HandoffTimeout != 30*time.Second || len(c.HandoffSecret) != 32 {
		t.Fatalf("set: %+v %v", c, err)
	}
}
