package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/peerauth"
)

const trustSecret = "trust-check-test-secret-0123456789abcdef"

func trustSign(label, method, uri string, at time.Time) string {
	return peerauth.Sign(peerauth.DeriveKey([]byte(trustSecret), label), "operator", peerauth.AnyTarget, method, uri, nil, at)
}

// trustGet sends one request to the trust check and returns the status
// and body.
func trustGet(t *testing.T, base, method, uri, sig string, hdr http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, base+uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if sig != "" {
		req.Header.Set(peerauth.Header, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

const notFound = `{"error":"Not found"}` + "\n"

// The trust check is off by default, and closed without a secret: the
// path is then a 404 like any unknown one, even for a well-signed call,
// and not the dashboard redirect or the text summary.
func TestTrustCheckOffOrWithoutSecretIs404(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		{"off, with a secret", Config{AppName: "app", HandoffSecret: trustSecret, DashboardURL: "http://127.0.0.1:9/"}},
		{"on, without a secret", Config{AppName: "app", TrustCheck: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, tt.cfg)
			sig := trustSign(peerauth.LabelDebug, "GET", TrustCheckPath, time.Now())
			if status, body := trustGet(t, ts.URL, "GET", TrustCheckPath, sig, nil); status != 404 || body != notFound {
				t.Fatalf("GET %s = %d %q, want 404 %q", TrustCheckPath, status, body, notFound)
			}
		})
	}
}

// Only a fresh call signed with the trust check's own key, for this path
// and method, is answered; every other one is a 404 that says nothing.
func TestTrustCheckOnlyAnswersTheOperatorsSignedCall(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{AppName: "app", Instance: "m1", Region: "fra", HandoffSecret: trustSecret, TrustCheck: true})
	now := time.Now()
	tests := []struct {
		name, method, uri, sig string
	}{
		{"unsigned", "GET", TrustCheckPath, ""},
		{"the siblings' key", "GET", TrustCheckPath, trustSign(peerauth.LabelInternal, "GET", TrustCheckPath, now)},
		{"another secret", "GET", TrustCheckPath,
			peerauth.Sign(
				peerauth.DeriveKey([]byte("another-secret-0123456789abcdefghij"), peerauth.LabelDebug),
				"x",
				peerauth.AnyTarget,
				"GET",
				TrustCheckPath,
				nil,
				now,
			)},
		{"signed for another query", "GET", TrustCheckPath, trustSign(peerauth.LabelDebug, "GET", TrustCheckPath+"?a=1", now)},
		{"signed for POST", "POST", TrustCheckPath, trustSign(peerauth.LabelDebug, "POST", TrustCheckPath, now)},
		{"stale", "GET", TrustCheckPath, trustSign(peerauth.LabelDebug, "GET", TrustCheckPath, now.Add(-time.Minute))},
		{"garbage", "GET", TrustCheckPath, "v1;id=x;t=1;n=2;s=3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, body := trustGet(t, ts.URL, tt.method, tt.uri, tt.sig, nil); status != 404 || body != notFound {
				t.Fatalf("%s %s = %d %q, want 404", tt.method, tt.uri, status, body)
			}
		})
	}

	sig := trustSign(peerauth.LabelDebug, "GET", TrustCheckPath+"?n=1", now)
	forged := http.Header{"Fly-Region": {"zzz", "fra"}, "Fly-Client-Ip": {"203.0.113.7", "198.51.100.9"},
		"Fly-Replay-Src": {"instance=forged"}, "Authorization": {"Bearer not-echoed"}}
	status, body := trustGet(t, ts.URL, "GET", TrustCheckPath+"?n=1", sig, forged)
	if status != 200 {
		t.Fatalf("signed GET = %d %q", status, body)
	}
	var e trustEcho
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatal(err)
	}
	if e.Instance != "m1" || !strings.HasPrefix(e.Remote, "127.0.0.1:") || !e.ViaProxy || e.Truncated ||
		strings.Join(
			e.Headers["Fly-Region"],
			",",
		) != "zzz,fra" || strings.Join(e.Headers["Fly-Replay-Src"], ",") != "instance=forged" ||
		strings.Contains(body, "not-echoed") {
		t.Errorf("echo %s", body)
	}
	// The limits count the proxy's value, the last, never the client's.
	if e.CountedAs != "198.51.100.9" {
		t.Errorf("counted as %q, want the last Fly-Client-IP, 198.51.100.9", e.CountedAs)
	}
	// A captured call cannot be replayed.
	if status, _ := trustGet(t, ts.URL, "GET", TrustCheckPath+"?n=1", sig, nil); status != 404 {
		t.Errorf("the same signed call again = %d, want 404", status)
	}
}

// The answer is bounded whatever the request holds: 8 values of a header,
// 256 bytes of a value.
func TestTrustCheckAnswerIsBounded(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Config{AppName: "app", HandoffSecret: trustSecret, TrustCheck: true, MaxHeaderBytes: 64 << 10})
	hdr := http.Header{}
	for range 40 {
		hdr.Add("Fly-Region", "fra")
	}
	hdr.Set("Via", strings.Repeat("v", 4000))
	sig := trustSign(peerauth.LabelDebug, "GET", TrustCheckPath, time.Now())
	status, body := trustGet(t, ts.URL, "GET", TrustCheckPath, sig, hdr)
	var e trustEcho
	if status != 200 || json.Unmarshal([]byte(body), &e) != nil {
		t.Fatalf("%d %q", status, body)
	}
	if len(e.Headers["Fly-Region"]) != maxTrustValues || len(e.Headers["Via"][0]) != maxTrustValueBytes || !e.Truncated {
		t.Fatalf("%d Fly-Region values, Via of %d bytes, truncated %v; want %d, %d, true",
			len(e.Headers["Fly-Region"]), len(e.Headers["Via"][0]), e.Truncated, maxTrustValues, maxTrustValueBytes)
	}
	if len(body) > 12<<10 {
		t.Errorf("answer of %d bytes", len(body))
	}
}

// The trust check says whether the socket it came from is in
// TRUSTED_PROXIES, and what follows: from inside, proxied and counted by
// Fly-Client-IP; from outside, headers present but not taken, counted by
// the socket. Unset, it says nothing of ranges.
func TestTrustCheckReportsTrustedProxies(t *testing.T) {
	forged := http.Header{"Fly-Region": {"fra"}, "Fly-Client-Ip": {"198.51.100.9"}}
	for _, tt := range []struct {
		name      string
		trusted   []netip.Prefix
		in        string // inTrustedProxies: "" absent
		proxied   bool
		countedAs string
	}{
		{"unset", nil, "", true, "198.51.100.9"},
		{"loopback in", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "true", true, "198.51.100.9"},
		{"loopback out", []netip.Prefix{netip.MustParsePrefix("fdaa::/16")}, "false", false, "127.0.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, Config{AppName: "app", HandoffSecret: trustSecret, TrustCheck: true, TrustedProxies: tt.trusted})
			sig := trustSign(peerauth.LabelDebug, "GET", TrustCheckPath, time.Now())
			status, body := trustGet(t, ts.URL, "GET", TrustCheckPath, sig, forged)
			var e struct {
				trustEcho
				In *bool `json:"inTrustedProxies"`
			}
			if status != 200 || json.Unmarshal([]byte(body), &e) != nil {
				t.Fatalf("%d %q", status, body)
			}
			in := ""
			if e.In != nil {
				in = strconv.FormatBool(*e.In)
			}
			if in != tt.in || e.ViaProxy != tt.proxied || !e.ProxyHeaders || e.CountedAs != tt.countedAs ||
				len(e.TrustedProxies) != len(tt.trusted) {
				t.Errorf("echo %s: want inTrustedProxies %q, viaProxy %v, proxyHeaders, countedAs %s, %d ranges",
					body, tt.in, tt.proxied, tt.countedAs, len(tt.trusted))
			}
		})
	}
}
