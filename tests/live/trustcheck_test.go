package live

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/party-sockets/party-sockets/internal/peerauth"
)

// The trust check (docs/limits.md "What we trust of Fly, checked"): what Fly's
// proxy does with headers a client sends itself, and where proxied
// requests come from, which no document settles. It asks a machine's
// GET /.trust-check (TRUST_CHECK=on), signed with the key derived from
// the app's secret, through the proxy with forged headers, and logs each
// answer as a line starting "FACT:" (go test -v). It fails only when an
// assumption the server's safety rests on is broken, whichever way the
// facts fall. Against a deployed app it needs LIVE_SECRET (the app's
// HANDOFF_SECRET); against the local cluster it runs once per way its
// edges can behave.

// Forged values: documentation addresses and an edge no one has.
const (
	forgedRegion  = "zzz"
	forgedIP      = "203.0.113.7"
	forgedSrc     = "instance=0000trustcheck;region=zzz;t=1"
	forgedFailed  = "instance=0000trustcheck;app=x;region=zzz;replay_source=x;reason=forged;elapsed_ms=1"
	trustCheckURI = "/.trust-check"
)

// trustEcho is the machine's answer (server/trustcheck.go).
type trustEcho struct {
	Instance  string              `json:"instance"`
	Region    string              `json:"region"`
	Remote    string              `json:"remote"`
	Headers   map[string][]string `json:"headers"`
	Truncated bool                `json:"truncated"`
	ViaProxy  bool                `json:"viaProxy"`
	CountedAs string              `json:"countedAs"`
	// ProxyHeaders: a proxy header was present; TrustedProxies and
	// InTrustedProxies: the machine's TRUSTED_PROXIES, absent when unset,
	// and whether the socket address fell in it.
	ProxyHeaders     bool     `json:"proxyHeaders"`
	TrustedProxies   []string `json:"trustedProxies"`
	InTrustedProxies *bool    `json:"inTrustedProxies"`
}

func TestTrustCheck(t *testing.T) {
	if cluster.live {
		secret := os.Getenv("LIVE_SECRET")
		if secret == "" {
			t.Skip("LIVE_SECRET (the app's HANDOFF_SECRET, with TRUST_CHECK=on) is not set")
		}
		trustCheck(t, secret)
		return
	}
	local(t)
	for _, mode := range []struct{ proxy, replay string }{{"replace", "strip"}, {"append", "keep"}} {
		t.Run(mode.proxy+","+mode.replay, func(t *testing.T) {
			cluster.control(t, "settings?client_proxy_headers="+mode.proxy+"&client_replay_headers="+mode.replay)
			t.Cleanup(func() { cluster.restore(t, "settings?client_proxy_headers=replace&client_replay_headers=strip") })
			f := trustCheck(t, localSecret)
			// Locally the facts are known: the check must find the mode.
			want := facts{appendsRegion: mode.proxy == "append", appendsClientIP: mode.proxy == "append",
				keepsSrc: mode.replay == "keep", keepsFailed: mode.replay == "keep", remote: cluster.Proxy}
			if f != want {
				t.Errorf("the trust check found %+v, want %+v", f, want)
			}
		})
	}
}

// facts are the trust check's findings.
type facts struct {
	appendsRegion, appendsClientIP bool   // the client's own value reaches the machine, before the proxy's
	keepsSrc, keepsFailed          bool   // the client's own fly-replay-src, fly-replay-failed reach the machine
	remote                         string // the socket address proxied requests come from (no port)
}

func trustCheck(t *testing.T, secret string) facts {
	region := cluster.regions()[0]
	base := trustCall(t, secret, region, nil)
	counted := base.CountedAs
	if _, err := netip.ParseAddr(counted); err != nil {
		t.Fatalf("a plain proxied request is counted against %q, not an address: %+v", counted, base)
	}
	if !cluster.live && counted != "127.0.0.1" {
		t.Errorf("counted against %s, want the test's own address 127.0.0.1", counted)
	}
	host, _, _ := net.SplitHostPort(base.Remote)
	t.Logf(
		"FACT: the proxy writes Fly-Client-IP %q and Fly-Region %q for this client",
		base.Headers["Fly-Client-Ip"],
		base.Headers["Fly-Region"],
	)
	trustedProxiesFacts(t, secret, base)

	forged := trustCall(t, secret, region, http.Header{"Fly-Region": {forgedRegion}, "Fly-Client-Ip": {forgedIP},
		"Fly-Replay-Src": {forgedSrc}, "Fly-Replay-Failed": {forgedFailed}})
	f := facts{
		appendsRegion:   carries(forged, "Fly-Region", forgedRegion),
		appendsClientIP: carries(forged, "Fly-Client-Ip", forgedIP),
		keepsSrc:        carries(forged, "Fly-Replay-Src", forgedSrc),
		keepsFailed:     carries(forged, "Fly-Replay-Failed", forgedFailed),
		remote:          host,
	}
	t.Logf("FACT: a client's own Fly-Region is %s: the machine sees %q",
		fate(f.appendsRegion, "kept, the proxy's value after it", "replaced"), forged.Headers["Fly-Region"])
	t.Logf("FACT: a client's own Fly-Client-IP is %s: the machine sees %q",
		fate(f.appendsClientIP, "kept, the proxy's value after it", "replaced"), forged.Headers["Fly-Client-Ip"])
	t.Logf(
		"FACT: a client's own fly-replay-src is %s: the machine sees %q",
		fate(f.keepsSrc, "kept", "stripped"),
		forged.Headers["Fly-Replay-Src"],
	)
	t.Logf(
		"FACT: a client's own fly-replay-failed is %s: the machine sees %q",
		fate(f.keepsFailed, "kept", "stripped"),
		forged.Headers["Fly-Replay-Failed"],
	)

	// Empty values, alone and first: what issue 20 found got past a check
	// of the first Fly-Region.
	empty := trustCall(t, secret, region, http.Header{"Fly-Region": {""}, "Fly-Client-Ip": {""}})
	t.Logf("FACT: with empty Fly-Region and Fly-Client-IP sent, the machine sees %q and %q",
		empty.Headers["Fly-Region"], empty.Headers["Fly-Client-Ip"])

	// What the server's safety rests on, however the facts fall.
	for name, e := range map[string]trustEcho{"plain": base, "forged": forged, "empty": empty} {
		if !e.ViaProxy {
			t.Errorf("%s: the machine did not see the request as proxied (no proxy header): %+v", name, e)
		}
		if e.CountedAs != counted {
			t.Errorf("%s: counted against %s, not %s: a client chose the address its limits count", name, e.CountedAs, counted)
		}
	}
	trustRefusals(t, secret, region, base.Instance)
	return f
}

// trustedProxiesFacts logs, for every region's edge, the socket address
// proxied requests arrive from (the value TRUSTED_PROXIES wants) and,
// when it is set, whether the address falls in it: one outside it fails,
// since that machine counts every player against the proxy's address and
// routes nothing. Locally, where a machine can be reached without the
// proxy, a request with forged proxy headers straight to a machine must
// then count against its own socket address.
func trustedProxiesFacts(t *testing.T, secret string, first trustEcho) {
	t.Helper()
	for i, region := range cluster.regions() {
		e := first
		if i > 0 {
			e = trustCall(t, secret, region, nil)
		}
		host, _, _ := net.SplitHostPort(e.Remote)
		t.Logf("FACT: proxied requests through %s arrive from %s (%s), machine %s in %s", region, e.Remote, addrClass(host),
			e.Instance, e.Region)
		switch {
		case e.InTrustedProxies == nil:
			t.Logf("FACT: TRUSTED_PROXIES is unset on %s: a process on the private network can name any Fly-Client-IP; "+
				"set it to a range that holds %s (every region's, above)", e.Instance, host)
		case *e.InTrustedProxies:
			t.Logf("FACT: TRUSTED_PROXIES=%s on %s holds the proxy's address %s", strings.Join(e.TrustedProxies, ","), e.Instance, host)
		default:
			t.Errorf("TRUSTED_PROXIES=%s on %s does not hold the proxy's address %s: every player there counts as the "+
				"proxy, and nothing is routed", strings.Join(e.TrustedProxies, ","), e.Instance, host)
		}
	}
	if cluster.live || first.InTrustedProxies == nil {
		return
	}
	direct := directTrustCall(t, secret, cluster.Machines[0].Addr, http.Header{"Fly-Region": {"fra"}, "Fly-Client-Ip": {forgedIP}})
	if direct.ViaProxy || !direct.ProxyHeaders || direct.CountedAs == forgedIP {
		t.Errorf("forged proxy headers straight to a machine, with TRUSTED_PROXIES set: %+v; want them present, "+
			"not taken, and the socket's address counted", direct)
	}
	t.Logf("FACT: forged proxy headers from %s straight to a machine are counted against %s", direct.Remote, direct.CountedAs)
}

// directTrustCall is trustCall to a machine's own address, not through
// an edge (the local cluster only).
func directTrustCall(t *testing.T, secret, addr string, hdr http.Header) trustEcho {
	t.Helper()
	uri := trustCheckURI + "?n=" + nonce()
	req, err := http.NewRequestWithContext(t.Context(), "GET", "http://"+addr+uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	req.Header.Set(
		peerauth.Header,
		peerauth.Sign(
			peerauth.DeriveKey([]byte(secret), peerauth.LabelDebug),
			"trust-check",
			peerauth.AnyTarget,
			"GET",
			uri,
			nil,
			time.Now(),
		),
	)
	resp, body := do(t, noRedirect(), req)
	var e trustEcho
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &e) != nil {
		t.Fatalf("trust check straight to %s: %d %q", addr, resp.StatusCode, body)
	}
	return e
}

// trustRefusals: through the proxy too, an unsigned call and a replayed
// one are 404s. Each machine remembers the nonces it accepted, so the
// replay goes to the same machine (fly-force-instance-id).
func trustRefusals(t *testing.T, secret, region, instance string) {
	t.Helper()
	req := cluster.edgeRequest(t, "GET", region, trustCheckURI)
	if resp, body := do(t, noRedirect(), req); resp.StatusCode != 404 {
		t.Errorf("an unsigned trust check through the proxy = %d %q, want 404", resp.StatusCode, body)
	}
	uri := trustCheckURI + "?n=" + nonce()
	sig := peerauth.Sign(
		peerauth.DeriveKey([]byte(secret), peerauth.LabelDebug),
		"trust-check",
		peerauth.AnyTarget,
		"GET",
		uri,
		nil,
		time.Now(),
	)
	for i, want := range []int{200, 404} {
		req := cluster.edgeRequest(t, "GET", region, uri)
		req.Header.Set(peerauth.Header, sig)
		req.Header.Set("Fly-Force-Instance-Id", instance)
		if resp, body := do(t, noRedirect(), req); resp.StatusCode != want {
			t.Errorf("signed call, sent %d times: %d %q, want %d", i+1, resp.StatusCode, body, want)
		}
	}
}

// trustCall sends one signed trust check through region's edge with the
// extra headers, and decodes the answer.
func trustCall(t *testing.T, secret, region string, hdr http.Header) trustEcho {
	t.Helper()
	uri := trustCheckURI + "?n=" + nonce()
	req := cluster.edgeRequest(t, "GET", region, uri)
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	req.Header.Set(
		peerauth.Header,
		peerauth.Sign(
			peerauth.DeriveKey([]byte(secret), peerauth.LabelDebug),
			"trust-check",
			peerauth.AnyTarget,
			"GET",
			uri,
			nil,
			time.Now(),
		),
	)
	resp, body := do(t, noRedirect(), req)
	var e trustEcho
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &e) != nil {
		t.Fatalf("trust check through %s: %d %q (is TRUST_CHECK=on, and the secret the app's?)", region, resp.StatusCode, body)
	}
	return e
}

func carries(e trustEcho, header, value string) bool {
	return slices.Contains(e.Headers[header], value)
}

func fate(kept bool, yes, no string) string {
	if kept {
		return yes
	}
	return no
}

// addrClass says what kind of address a machine sees proxied requests
// come from.
func addrClass(host string) string {
	ip, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		return "not an address"
	case ip.IsLoopback():
		return "loopback"
	case netip.MustParsePrefix("fdaa::/16").Contains(ip):
		return "Fly's private network, 6PN"
	case ip.IsPrivate():
		return "private"
	}
	return "public"
}

func nonce() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
