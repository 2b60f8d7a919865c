package routing

import (
	"testing"

	"github.com/party-sockets/party-sockets/regions"
)

var (
	fraCode = regions.Encode(regions.Pack(6, 12345)) // fra is index 6
	iadCode = regions.Encode(regions.Pack(8, 777))   // iad is index 8
	badCode = regions.Encode(regions.Pack(25, 1))    // no region
)

func TestDecide(t *testing.T) {
	t.Parallel()
	fly := func(in Input) Input {
		in.OnFly, in.ViaProxy, in.Self = true, true, "0a1b2c3d4e5f01"
		if in.Region == "" {
			in.Region = "fra"
		}
		return in
	}
	tests := []struct {
		name string
		in   Input
		want Decision
	}{
		{"off fly", Input{Path: "/" + iadCode, Region: "fra"}, Serve{}},
		{"not via proxy (peer probe)", Input{OnFly: true, Self: "0a1b2c3d4e5f01", Region: "fra", Path: "/room/" + fraCode}, Serve{}},
		{"no pin no code", fly(Input{Path: "/"}), Serve{}},
		{"pin other", fly(Input{Path: "/x", RawQuery: "instance=0a1b2c3d4e5f02"}), ReplayInstance{"0a1b2c3d4e5f02"}},
		{"pin self", fly(Input{Path: "/" + iadCode, RawQuery: "instance=0a1b2c3d4e5f01"}), Serve{}},
		{"empty pin is no pin", fly(Input{Path: "/", RawQuery: "instance="}), Serve{}},
		{
			"pin with src, websocket",
			fly(Input{Path: "/" + fraCode, RawQuery: "instance=0a1b2c3d4e5f02", ReplaySrc: true, Upgrade: true}),
			Serve{},
		},
		{
			"pin with src, http",
			fly(Input{Path: "/room/" + fraCode, RawQuery: "a=1&instance=0a1b2c3d4e5f02&b=2", ReplaySrc: true}),
			Redirect{"/room/" + fraCode + "?a=1&b=2"},
		},
		{"pin with failed, http", fly(Input{Path: "/p", RawQuery: "instance=0a1b2c3d4e5f02", ReplayFailed: true}), Redirect{"/p"}},
		{
			"pin with failed, websocket",
			fly(Input{Path: "/", RawQuery: "instance=0a1b2c3d4e5f02", ReplayFailed: true, Upgrade: true}),
			Serve{},
		},
		// Regression (injection): "x;app=other" once went into fly-replay
		// verbatim, adding fields the proxy obeys. A pin that is not shaped
		// like a machine id is ignored, as if absent.
		{"pin injecting fields ignored", fly(Input{Path: "/x", RawQuery: "instance=x;app=other"}), Serve{}},
		{"hex pin injecting fields ignored", fly(Input{Path: "/x", RawQuery: "instance=0a1b2c3d4e5f02;app=other"}), Serve{}},
		{"upper-case pin ignored", fly(Input{Path: "/x", RawQuery: "instance=0A1B2C3D4E5F02"}), Serve{}},
		{"bad pin falls through to code routing", fly(Input{Path: "/" + iadCode, RawQuery: "instance=zz"}), ReplayRegion{"iad"}},
		// Regression (open redirect): "//evil.example/x" once became
		// "Location: //evil.example/x", another host.
		{
			"redirect stays on this host",
			fly(Input{Path: "//evil.example/x", RawQuery: "instance=0a1b2c3d4e5f02", ReplaySrc: true}),
			Redirect{"/evil.example/x"},
		},
		{
			"redirect backslash stays on this host",
			fly(Input{Path: "/\\evil.example/x", RawQuery: "instance=0a1b2c3d4e5f02", ReplaySrc: true}),
			Redirect{"/evil.example/x"},
		},
		{"pin beats code", fly(Input{Path: "/" + iadCode, RawQuery: "instance=0a1b2c3d4e5f02"}), ReplayInstance{"0a1b2c3d4e5f02"}},
		{"other region", fly(Input{Path: "/" + iadCode}), ReplayRegion{"iad"}},
		{"other region via /room", fly(Input{Path: "/room/" + iadCode}), ReplayRegion{"iad"}},
		{"other region, replayed: no loop", fly(Input{Path: "/" + iadCode, ReplaySrc: true}), Serve{}},
		{"other region, fallback: no loop", fly(Input{Path: "/" + iadCode, ReplayFailed: true}), Serve{}},
		{"region not in table", fly(Input{Path: "/" + iadCode, Region: "xyz"}), Serve{}},
		{"machine without region", Input{OnFly: true, ViaProxy: true, Self: "0a1b2c3d4e5f01", Path: "/" + iadCode}, Serve{}},
		{"code without region", fly(Input{Path: "/" + badCode}), Serve{}},
		{"not a code", fly(Input{Path: "/abc"}), Serve{}},
		{"health never a code", fly(Input{Path: "/health"}), Serve{}},
		{"metrics never a code", fly(Input{Path: "/metrics"}), Serve{}},
		{"own region, held", fly(Input{Path: "/" + fraCode, Held: true}), Serve{}},
		{"own region, not held: probe", fly(Input{Path: "/" + fraCode}), Probe{fraCode}},
		{
			"own region, probe found",
			fly(Input{Path: "/" + fraCode, Probed: true, Holder: "0a1b2c3d4e5f03"}),
			ReplayInstance{"0a1b2c3d4e5f03"},
		},
		{"own region, probe empty", fly(Input{Path: "/" + fraCode, Probed: true}), Serve{}},
		{
			"held nowhere, an upgrade: to the code's rendezvous machine",
			fly(Input{Path: "/" + fraCode, Upgrade: true, Probed: true, Rendezvous: "0a1b2c3d4e5f04"}),
			ReplayInstance{"0a1b2c3d4e5f04"},
		},
		{
			"held nowhere, this machine decides",
			fly(Input{Path: "/" + fraCode, Upgrade: true, Probed: true, Rendezvous: "0a1b2c3d4e5f01"}),
			Serve{},
		},
		{
			"held nowhere, a lookup: no rendezvous",
			fly(Input{Path: "/room/" + fraCode, Probed: true, Rendezvous: "0a1b2c3d4e5f04"}),
			Serve{},
		},
		{
			"replayed to the rendezvous: served, no second probe",
			fly(Input{Path: "/" + fraCode, Upgrade: true, ReplaySrc: true, SrcState: "rendezvous"}),
			Serve{},
		},
		{"own region, replayed: instance hop allowed", fly(Input{Path: "/" + fraCode, ReplaySrc: true}), Probe{fraCode}},
		{"own region, fallback: no replay", fly(Input{Path: "/" + fraCode, ReplayFailed: true}), Serve{}},
		// Hand-off: a room that left follows its holder, pinned or not,
		// unless this is already a fallback delivery.
		{
			"moved, pinned here",
			fly(Input{Path: "/" + fraCode, RawQuery: "instance=0a1b2c3d4e5f01", MovedTo: "0a1b2c3d4e5f09"}),
			ReplayInstance{"0a1b2c3d4e5f09"},
		},
		{
			"moved, replayed here",
			fly(Input{Path: "/" + fraCode, ReplaySrc: true, MovedTo: "0a1b2c3d4e5f09"}),
			ReplayInstance{"0a1b2c3d4e5f09"},
		},
		{"moved, fallback: no replay", fly(Input{Path: "/" + fraCode, ReplayFailed: true, MovedTo: "0a1b2c3d4e5f09"}), Serve{}},
		{
			"pin to a machine that is gone: the code routes",
			fly(Input{Path: "/" + iadCode, RawQuery: "instance=0a1b2c3d4e5f02", PinGone: true}),
			ReplayRegion{"iad"},
		},
		{
			"pin gone, on the fallback itself: redirect without the pin",
			fly(Input{Path: "/room/" + iadCode, RawQuery: "instance=0a1b2c3d4e5f02", PinGone: true, ReplayFailed: true}),
			Redirect{"/room/" + iadCode},
		},
		{
			"pin gone, no code: the pin is all there is",
			fly(Input{Path: "/", RawQuery: "instance=0a1b2c3d4e5f02", PinGone: true}),
			ReplayInstance{"0a1b2c3d4e5f02"},
		},
		{"pin gone, own region", fly(Input{Path: "/" + fraCode, RawQuery: "instance=0a1b2c3d4e5f02", PinGone: true}), Probe{fraCode}},
		{
			"moved twice: not followed again",
			fly(Input{Path: "/" + fraCode, ReplaySrc: true, SrcState: "moved", MovedTo: "0a1b2c3d4e5f09"}),
			Serve{},
		},
		{"replayed after a probe: no second probe", fly(Input{Path: "/" + fraCode, ReplaySrc: true, SrcState: "probe"}), Serve{}},
		{"home region empty: probe everywhere", fly(Input{Path: "/" + iadCode, HomeEmpty: true}), Probe{iadCode}},
		{
			"home region empty: holder found",
			fly(Input{Path: "/" + iadCode, HomeEmpty: true, Probed: true, Holder: "0a1b2c3d4e5f03"}),
			ReplayInstance{"0a1b2c3d4e5f03"},
		},
		{"home region empty, held here", fly(Input{Path: "/" + iadCode, HomeEmpty: true, Held: true}), Serve{}},
		{"home region empty, replayed: no loop", fly(Input{Path: "/" + iadCode, HomeEmpty: true, ReplaySrc: true}), Serve{}},
		{"room path percent-decoded", fly(Input{Path: "/room/" + "%" + "31" + fraCode[1:]}), decodedProbe()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.in); got != tt.want {
				t.Errorf("Decide(%+v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// decodedProbe: "%31" is "1", so the percent-decoded code is "1"+fraCode[1:].
func decodedProbe() Decision {
	code := "1" + fraCode[1:]
	if r, ok := regions.HomeOf(code); ok && r == "fra" {
		return Probe{code}
	}
	if r, ok := regions.HomeOf(code); ok {
		return ReplayRegion{r}
	}
	return Serve{}
}

func TestReplayHeader(t *testing.T) {
	t.Parallel()
	if got := ReplayHeader(ReplayInstance{"abc"}); got != "instance=abc;timeout=5s;fallback=force_self" {
		t.Errorf("instance header %q", got)
	}
	if got := ReplayHeader(ReplayRegion{"iad"}); got != "region=iad;timeout=5s;fallback=force_self" {
		t.Errorf("region header %q", got)
	}
}

func TestCandidateCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path, code string
		ok         bool
	}{
		{"/abcDE1", "abcDE1", true}, {"/abcDE", "abcDE", false}, {"/abc12Z", "abc12Z", true},
		{"/room/", "", true}, {"/room/a%2Fb", "a/b", true}, {"/room/%zz", "", false},
		{"/ab-12Z", "", false}, {"/health", "", false}, {"/metrics", "", false},
	}
	for _, tt := range tests {
		code, ok := CandidateCode(tt.path)
		if ok != tt.ok || (ok && code != tt.code) {
			t.Errorf("CandidateCode(%q) = %q, %v, want %q, %v", tt.path, code, ok, tt.code, tt.ok)
		}
	}
}

func TestParseReplay(t *testing.T) {
	t.Parallel()
	r, err := ParseReplay(`region="syd,fra";timeout=2s;fallback=force_self;state=abc;elsewhere=true`)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Regions) != 2 || r.Regions[0] != "syd" || r.Regions[1] != "fra" || r.Timeout.Seconds() != 2 ||
		r.Fallback != "force_self" || r.State != "abc" || !r.Elsewhere {
		t.Fatalf("ParseReplay = %+v", r)
	}
	for _, bad := range []string{"", "timeout=5s", "instance=a;timeout=soon", "instance=a;fallback=maybe", "elsewhere=perhaps"} {
		if _, err := ParseReplay(bad); err == nil {
			t.Errorf("ParseReplay(%q) accepted", bad)
		}
	}
	src := ParseFields(`region=fra;t=1700000000;instance=0a1b2c3d4e5f01;state="a;b"`)
	if src["instance"] != "0a1b2c3d4e5f01" || src["region"] != "fra" || src["state"] != "a;b" || src["t"] != "1700000000" {
		t.Fatalf("ParseFields = %v", src)
	}
}

func FuzzParseReplay(f *testing.F) {
	for _, s := range []string{"instance=a;timeout=5s;fallback=force_self", `region="a,b"`, `state="x;y";elsewhere=1`, `;;=;"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReplay(s)
		if err == nil && r.Instance == "" && len(r.Regions) == 0 && r.PreferInstance == "" && !r.Elsewhere {
			t.Fatalf("ParseReplay(%q) = %+v without a target", s, r)
		}
	})
}

func FuzzParseFields(f *testing.F) {
	for _, s := range []string{"instance=a;region=fra;t=1;state=s", `state="a;b";x`, `"`, "=;="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for k := range ParseFields(s) {
			if k == "" {
				t.Fatalf("ParseFields(%q) has an empty key", s)
			}
		}
	})
}
