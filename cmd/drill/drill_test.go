package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/testutil"
)

// TestShortDrill runs the -short drill, as CI does, and fails on a broken
// correctness promise (the drill's exit status says which). Then it opens
// the HTML report in Chromium and keeps a screenshot in cmd/drill/out/.
func TestShortDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("the drill plays a whole fleet for a minute")
	}
	testutil.TrackModule(t) // the drill builds and runs the server and flylocal
	bin := filepath.Join(t.TempDir(), "drill")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, _ := filepath.Abs("out")
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-short", "-out", out)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stdout
	err := cmd.Run()
	t.Logf("drill output:\n%s", stdout.String())
	if err != nil {
		t.Fatalf("drill -short: %v (its last lines above say which promise broke)", err)
	}
	var rep struct {
		Faults []fault   `json:"faults"`
		Total  figures   `json:"total"`
		Broken []string  `json:"broken"`
		Slots  []figures `json:"per_fault"`
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Faults) != len(faultOrder) || len(rep.Slots) != len(faultOrder)+1 {
		t.Errorf("%d faults ran, %d slots; want %d and %d", len(rep.Faults), len(rep.Slots), len(faultOrder), len(faultOrder)+1)
	}
	for _, f := range rep.Faults {
		if f.Err != "" {
			t.Errorf("fault %s: %s", f.Label, f.Err)
		}
	}
	if rep.Total.RoomsKept == 0 || rep.Total.Rejoins == 0 {
		t.Errorf("total %+v: want rooms kept and rejoins (a deploy moves every room)", rep.Total)
	}
	screenshot(t, filepath.Join(out, "report.html"), filepath.Join(out, "report.png"))
}

// screenshot opens page in headless Chromium, saves a PNG and checks the
// page drew: the timeline's first region's colour (#4285f4) on it.
func screenshot(t *testing.T, page, shot string) {
	chromium, err := exec.LookPath("chromium")
	testutil.Need(t, err == nil, "chromium (apt-get install chromium)")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	os.Remove(shot)
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--window-size=1200,1600", "--screenshot="+shot, "file://"+page)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	blue := 0
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if r>>8 == 0x42 && g>>8 == 0x85 && b>>8 == 0xf4 {
				blue++
			}
		}
	}
	if blue < 500 {
		t.Errorf("screenshot %s has %d pixels of the timeline's colour; the report did not draw", shot, blue)
	}
	t.Logf("screenshot in %s", shot)
}

func TestReportHTMLIsSelfContained(t *testing.T) {
	t.Parallel()
	start := time.Now()
	rep := &report{Config: map[string]any{}, Regions: []string{"fra", "iad"}, Start: start, End: start.Add(time.Minute),
		Total: &figures{Label: "total"}, Rejoins: []time.Duration{time.Second},
		Samples: []sample{
			{At: start, Clients: map[string]int{"fra": 3}},
			{At: start.Add(time.Minute), Clients: map[string]int{"iad": 2}},
		},
		Faults: []*fault{{Label: "kill -9 <fra>", Start: start.Add(10 * time.Second), End: start.Add(12 * time.Second)}}}
	var b strings.Builder
	if err := rep.html(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, bad := range []string{"<script", "src=", "href=", "<fra>"} {
		if strings.Contains(page, bad) {
			t.Errorf("report contains %q: it must load nothing and escape every label", bad)
		}
	}
	for _, want := range []string{`id="timeline"`, "<polyline", `id="rejoins"`, `id="figures"`, "kill -9 &lt;fra&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
