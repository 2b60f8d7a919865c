package ops

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

type flyConfig struct {
	App         string            `toml:"app"`
	KillSignal  string            `toml:"kill_signal"`
	KillTimeout int               `toml:"kill_timeout"`
	Env         map[string]string `toml:"env"`
	Build       struct{ Dockerfile string }
	Deploy      struct {
		Strategy       string `toml:"strategy"`
		MaxUnavailable int    `toml:"max_unavailable"`
		WaitTimeout    string `toml:"wait_timeout"`
	} `toml:"deploy"`
	HTTPService struct {
		InternalPort int    `toml:"internal_port"`
		AutoStop     string `toml:"auto_stop_machines"`
		Concurrency  struct {
			Type      string `toml:"type"`
			SoftLimit int    `toml:"soft_limit"`
			HardLimit int    `toml:"hard_limit"`
		} `toml:"concurrency"`
		Checks []struct {
			GracePeriod string `toml:"grace_period"`
			Method      string `toml:"method"`
			Path        string `toml:"path"`
		} `toml:"checks"`
	} `toml:"http_service"`
	Metrics []struct {
		Port int    `toml:"port"`
		Path string `toml:"path"`
	} `toml:"metrics"`
	VM []struct {
		Size   string `toml:"size"`
		Memory string `toml:"memory"`
	} `toml:"vm"`
}

// fly.toml must agree with the server it deploys.
func TestFlyTomlAgreesWithServer(t *testing.T) {
	var fc flyConfig
	md, err := toml.DecodeFile("../fly.toml", &fc)
	if err != nil {
		t.Fatal(err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		t.Logf("keys not checked: %v", un)
	}
	for k := range fc.Env {
		if strings.HasPrefix(k, "FLY_") {
			t.Errorf("[env] key %s: Fly forbids keys starting with FLY_", k)
		}
	}
	port := fc.Env["PORT"]
	if fc.HTTPService.InternalPort != 3000 || port != "3000" {
		t.Errorf("internal_port %d, PORT %q: want 3000, the server's port", fc.HTTPService.InternalPort, port)
	}
	if len(fc.Metrics) != 1 || fc.Metrics[0].Port != fc.HTTPService.InternalPort || fc.Metrics[0].Path != "/metrics" {
		t.Errorf("[[metrics]] = %+v, want port %d path /metrics", fc.Metrics, fc.HTTPService.InternalPort)
	}
	if len(fc.HTTPService.Checks) == 0 || fc.HTTPService.Checks[0].Path != "/health" || fc.HTTPService.Checks[0].GracePeriod == "" {
		t.Errorf("service check = %+v, want GET /health with a grace period", fc.HTTPService.Checks)
	}
	if fc.KillSignal != "SIGTERM" && fc.KillSignal != "SIGINT" {
		t.Errorf("kill_signal %q: the server drains on SIGTERM and SIGINT only", fc.KillSignal)
	}
	kill := time.Duration(fc.KillTimeout) * time.Second
	wait, err := time.ParseDuration(fc.Deploy.WaitTimeout)
	if err != nil || wait <= kill {
		t.Errorf("wait_timeout %q must be above kill_timeout %v", fc.Deploy.WaitTimeout, kill)
	}
	grace, _ := time.ParseDuration(fc.Env["HOST_GRACE"])
	if kill < grace || kill > 300*time.Second {
		t.Errorf("kill_timeout %v: want at least HOST_GRACE (%v) so a drained room can outlive its host, and at most 300s", kill, grace)
	}
	if h, err := time.ParseDuration(fc.Env["HANDOFF_TIMEOUT"]); err != nil || h <= 0 || h >= kill {
		t.Errorf(
			"HANDOFF_TIMEOUT %q: want a duration under kill_timeout %v, so a machine hands its rooms off before it is killed",
			fc.Env["HANDOFF_TIMEOUT"],
			kill,
		)
	}
	if fc.Deploy.Strategy != "rolling" || fc.Deploy.MaxUnavailable != 1 {
		t.Errorf("deploy = %+v, want serial rolling deploys (max_unavailable = 1)", fc.Deploy)
	}
	c := fc.HTTPService.Concurrency
	if c.Type != "connections" || c.SoftLimit <= 0 || c.HardLimit < c.SoftLimit {
		t.Errorf("concurrency = %+v, want connection limits with soft <= hard", c)
	}
	if len(fc.VM) != 1 || fc.VM[0].Memory == "" {
		t.Errorf("[[vm]] = %+v", fc.VM)
	}
	// The memory budget is sized from GOMEMLIMIT: it must be set, and
	// leave the VM room for what the Go runtime does not count.
	if len(fc.VM) == 1 {
		vm, _ := strconv.Atoi(strings.TrimSuffix(strings.ToLower(fc.VM[0].Memory), "mb"))
		lim, ok := strings.CutSuffix(fc.Env["GOMEMLIMIT"], "MiB")
		mib, err := strconv.Atoi(lim)
		if !ok || err != nil || mib <= 0 || float64(mib)*1.048576 > 0.85*float64(vm) {
			t.Errorf("GOMEMLIMIT %q for a %d MB VM: want NNNMiB, at most 85%% of the VM", fc.Env["GOMEMLIMIT"], vm)
		}
	}
	if fc.Build.Dockerfile != "Dockerfile" {
		t.Errorf("build.dockerfile = %q", fc.Build.Dockerfile)
	}
}

// The Dockerfile builds with ops/build.sh, runs as non-root and exposes the
// fly.toml port.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	d := string(b)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^FROM \S+ AS build$`),
		regexp.MustCompile(`(?m)^RUN .*sh ops/build.sh /out/party-sockets$`),
		regexp.MustCompile(`(?m)^COPY --from=build /out/party-sockets /party-sockets$`),
		regexp.MustCompile(`(?m)^ENV PORT=3000$`),
		regexp.MustCompile(`(?m)^EXPOSE 3000$`),
		regexp.MustCompile(`(?m)^USER nonroot`),
		regexp.MustCompile(`(?m)^ENTRYPOINT \["/party-sockets"\]$`),
	} {
		if !want.MatchString(d) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	if strings.Count(d, "\nFROM ") < 1 || strings.Count(d, "FROM ") != 2 {
		t.Error("Dockerfile is not a two-stage build")
	}
	build, err := os.ReadFile("build.sh")
	if err != nil || !strings.Contains(string(build), "CGO_ENABLED=0") || !strings.Contains(string(build), "-X main.version=") {
		t.Error("ops/build.sh must build with CGO_ENABLED=0 and stamp main.version")
	}
	ignore, _ := os.ReadFile("../.dockerignore")
	for _, must := range []string{"go.mod", "go.sum", "ops/build.sh", "ops"} {
		if strings.Contains(string(ignore), "\n"+must+"\n") {
			t.Errorf(".dockerignore excludes %s, which the build needs", must)
		}
	}
}
