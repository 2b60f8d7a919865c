package main

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// controlEdge starts one edge of an empty cluster on a real loopback
// port, as run does, and returns the cluster and the edge's port.
func controlEdge(t *testing.T) (*cluster, int) {
	t.Helper()
	c := &cluster{app: "app", quit: make(chan struct{})}
	stop, err := c.serveDNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &edge{c: c, region: "fra", port: ln.Addr().(*net.TCPAddr).Port}
	c.edges = append(c.edges, e)
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return c, e.port
}

// call sends one request to the edge at port with the given Host header
// and extra headers, and returns the status, the body and the response's
// headers.
func call(t *testing.T, port int, method, path, host string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, "http://127.0.0.1:"+strconv.Itoa(port)+path, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), resp.Header
}

func quitting(c *cluster) bool {
	select {
	case <-c.quit:
		return true
	default:
		return false
	}
}

// Finding 9 of issue 20: a DNS-rebound page (its own name in Host) read
// the state, room codes included. Only the loopback names of the edges
// are answered.
func TestControlRefusesAForeignHost(t *testing.T) {
	c, port := controlEdge(t)
	p := strconv.Itoa(port)
	ok := map[string]string{"X-Flylocal": "1"}
	tests := []struct {
		name, method, path, host string
		want                     int
	}{
		{"rebound name reads the state", "GET", "/.flylocal/state", "rebind.evil.example:" + p, http.StatusForbidden},
		{"rebound name reads the overview", "GET", "/.flylocal/", "rebind.evil.example", http.StatusForbidden},
		{"rebound name lists machines", "GET", "/.flylocal/machines", "rebind.evil.example:" + p, http.StatusForbidden},
		{"rebound name, with the header, shuts down", "POST", "/.flylocal/shutdown", "rebind.evil.example:" + p, http.StatusForbidden},
		{"loopback name on another port", "GET", "/.flylocal/state", "127.0.0.1:" + strconv.Itoa(port+1), http.StatusForbidden},
		{"loopback name with no port", "GET", "/.flylocal/state", "127.0.0.1", http.StatusForbidden},
		{"another loopback address", "GET", "/.flylocal/state", "127.0.0.2:" + p, http.StatusForbidden},
		{"a name that ends like localhost", "GET", "/.flylocal/state", "evil.localhost:" + p, http.StatusForbidden},
		{"127.0.0.1", "GET", "/.flylocal/state", "127.0.0.1:" + p, http.StatusOK},
		{"localhost", "GET", "/.flylocal/state", "localhost:" + p, http.StatusOK},
		{"LOCALHOST", "GET", "/.flylocal/machines", "LOCALHOST:" + p, http.StatusOK},
		{"[::1]", "GET", "/.flylocal/state", "[::1]:" + p, http.StatusOK},
		{"the overview", "GET", "/.flylocal/", "127.0.0.1:" + p, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, _ := call(t, port, tt.method, tt.path, tt.host, ok)
			if status != tt.want {
				t.Fatalf("%s %s with Host %q = %d %.200q, want %d", tt.method, tt.path, tt.host, status, body, tt.want)
			}
			if status == http.StatusForbidden && body != `{"error":"Foreign host"}`+"\n" {
				t.Errorf("refusal body %q", body)
			}
		})
	}
	if quitting(c) {
		t.Fatal("a refused shutdown stopped the cluster")
	}
	// HTTP/1.0 needs no Host: none is not ours either.
	conn, err := net.Dial("tcp", "127.0.0.1:"+p)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /.flylocal/state HTTP/1.0\r\n\r\n")
	head, _ := io.ReadAll(io.LimitReader(conn, 4096))
	if !strings.HasPrefix(string(head), "HTTP/1.0 403 ") {
		t.Fatalf("HTTP/1.0 with no Host: %q", head)
	}
}

// Finding 9 of issue 20: a page's fetch(…, {method: "POST", mode:
// "no-cors"}) changed settings and shut the cluster down. Such a request
// cannot carry a custom header, and one that tries is preflighted, which
// flylocal answers with no CORS: every POST needs X-Flylocal: 1.
func TestControlPostNeedsTheFlylocalHeader(t *testing.T) {
	c, port := controlEdge(t)
	host := "127.0.0.1:" + strconv.Itoa(port)
	// What Chromium sends for a no-cors POST from another site.
	noCORS := map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain;charset=UTF-8",
		"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Site": "cross-site"}
	for _, path := range []string{"/.flylocal/settings?stopping_replays=1", "/.flylocal/dns/down", "/.flylocal/shutdown",
		"/.flylocal/deploy", "/.flylocal/machines/x/stop"} {
		status, body, _ := call(t, port, "POST", path, host, noCORS)
		if status != http.StatusForbidden || body != `{"error":"Missing X-Flylocal: 1"}`+"\n" {
			t.Errorf("no-cors POST %s = %d %q, want 403", path, status, body)
		}
	}
	if c.stoppingReplays.Load() || c.dns.Down() || quitting(c) {
		t.Fatalf("a refused POST changed the cluster: stopping_replays=%v dns_down=%v quit=%v",
			c.stoppingReplays.Load(), c.dns.Down(), quitting(c))
	}
	for _, v := range []string{"0", "true", "", "01", "1,1"} {
		status, _, _ := call(t, port, "POST", "/.flylocal/dns/down", host, map[string]string{"X-Flylocal": v})
		if status != http.StatusForbidden || c.dns.Down() {
			t.Errorf("POST with X-Flylocal %q = %d, dns_down=%v; want 403 and no change", v, status, c.dns.Down())
		}
	}

	// The preflight of a fetch that sets the header: no CORS in the answer,
	// so the browser never sends the POST.
	status, _, h := call(t, port, "OPTIONS", "/.flylocal/shutdown", host, map[string]string{"Origin": "http://evil.example",
		"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-flylocal"})
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Errorf("preflight answered with %s: %q", k, h.Get(k))
		}
	}
	if status != http.StatusMethodNotAllowed {
		t.Errorf("preflight = %d, want 405", status)
	}

	// With the header, as the overview and the tests send it, it works.
	ok := map[string]string{"X-Flylocal": "1"}
	if status, body, _ := call(t, port, "POST", "/.flylocal/settings?stopping_replays=1", host, ok); status != 200 ||
		!c.stoppingReplays.Load() {
		t.Fatalf("POST settings with X-Flylocal: 1 = %d %q, stopping_replays=%v", status, body, c.stoppingReplays.Load())
	}
	if status, _, _ := call(t, port, "POST", "/.flylocal/shutdown", "localhost:"+strconv.Itoa(port), ok); status != 200 ||
		!quitting(c) {
		t.Fatalf("POST shutdown with X-Flylocal: 1 = %d, quit=%v", status, quitting(c))
	}
}

// POST /.flylocal/dns/<down|slow|up> switches the cluster's resolver: down
// never answers, slow answers after 4 s, up answers again; the state says
// which.
func TestDNSSwitches(t *testing.T) {
	c, port := controlEdge(t)
	host := "127.0.0.1:" + strconv.Itoa(port)
	ok := map[string]string{"X-Flylocal": "1"}
	q := new(dns.Msg)
	q.SetQuestion("vms.app.internal.", dns.TypeTXT)
	client := &dns.Client{Timeout: 300 * time.Millisecond}
	for _, tt := range []struct {
		mode   string
		body   string
		delay  time.Duration
		answer bool
	}{
		{"down", `{"dns_down":true}`, 0, false},
		{"slow", `{"dns_down":false}`, 4 * time.Second, false},
		{"up", `{"dns_down":false}`, 0, true},
	} {
		status, body, _ := call(t, port, "POST", "/.flylocal/dns/"+tt.mode, host, ok)
		if status != 200 || strings.TrimSpace(body) != tt.body || c.dnsMode() != tt.mode || c.dns.Delay() != tt.delay {
			t.Fatalf("POST dns/%s = %d %q; mode %s, delay %v", tt.mode, status, body, c.dnsMode(), c.dns.Delay())
		}
		if _, body, _ = call(t, port, "GET", "/.flylocal/state", host, nil); !strings.Contains(body, `"dns":"`+tt.mode+`"`) {
			t.Fatalf("state after dns/%s: %s", tt.mode, body)
		}
		if _, _, err := client.Exchange(q, c.dns.Addr); (err == nil) != tt.answer {
			t.Fatalf("a question with DNS %s: %v, want an answer %v", tt.mode, err, tt.answer)
		}
	}
}
