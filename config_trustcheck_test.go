package main

import (
	"strings"
	"testing"
)

// TRUST_CHECK is off unless set to on, and on needs HANDOFF_SECRET: a
// switch with no secret behind it refuses to start rather than open a door
// (or silently do nothing).
func TestLoadConfigTrustCheck(t *testing.T) {
	secret := strings.Repeat("k", 32)
	tests := []struct {
		name    string
		env     map[string]string
		want    bool
		wantErr bool
	}{
		{"default off", nil, false, false},
		{"default off, with a secret", map[string]string{"HANDOFF_SECRET": secret}, false, false},
		{"off", map[string]string{"TRUST_CHECK": "off", "HANDOFF_SECRET": secret}, false, false},
		{"on", map[string]string{"TRUST_CHECK": "on", "HANDOFF_SECRET": secret}, true, false},
		{"on without a secret", map[string]string{"TRUST_CHECK": "on"}, true, true},
		{"not a switch", map[string]string{"TRUST_CHECK": "yes", "HANDOFF_SECRET": secret}, false, true},
		{"ON is not on", map[string]string{"TRUST_CHECK": "ON", "HANDOFF_SECRET": secret}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(env(tt.env))
			if (err != nil) != tt.wantErr || c.Server.TrustCheck != tt.want {
				t.Fatalf("loadConfig(%v) = TrustCheck %v, %v; want %v, error %v", tt.env, c.Server.TrustCheck, err, tt.want, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "TRUST_CHECK=") {
				t.Errorf("the error does not name TRUST_CHECK: %v", err)
			}
		})
	}
}
