package flydns_test

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/party-sockets/party-sockets/internal/flydns"
	"github.com/party-sockets/party-sockets/internal/testutil"
)

func listen(t *testing.T, app string, source func() []flydns.Machine) *flydns.Server {
	t.Helper()
	s, err := flydns.Listen(app, source)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// ask puts one question to s over network ("udp" or "tcp").
func ask(t *testing.T, s *flydns.Server, network, name string, qtype uint16) (*dns.Msg, error) {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.ExchangeContext(t.Context(), q, s.Addr)
	return r, err
}

// values is an answer as text: TXT strings joined, addresses as written.
func values(t *testing.T, r *dns.Msg) []string {
	t.Helper()
	var out []string
	for _, rr := range r.Answer {
		if rr.Header().Ttl != 5 {
			t.Errorf("%s: TTL %d, want 5", rr.Header().Name, rr.Header().Ttl)
		}
		switch rr := rr.(type) {
		case *dns.TXT:
			out = append(out, strings.Join(rr.Txt, ""))
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	return out
}

func TestNames(t *testing.T) {
	t.Parallel()
	s := listen(t, "app", nil)
	s.Add("aaaa0001", "fra", "127.0.0.2")
	s.Put(flydns.Machine{ID: "aaaa0002", Region: "fra", IP: "127.0.0.3", Stopped: true})
	s.Add("aaaa0003", "iad", "127.0.0.4")
	s.Add("aaaa0004", "syd", "fdaa::5")
	nx := dns.RcodeNameError
	tests := []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
	}{
		{"vms.app.internal", dns.TypeTXT, 0, []string{"aaaa0001 fra,aaaa0003 iad,aaaa0004 syd"}},
		{"VMS.App.Internal", dns.TypeTXT, 0, []string{"aaaa0001 fra,aaaa0003 iad,aaaa0004 syd"}},
		{"all.vms.app.internal", dns.TypeTXT, 0, []string{"aaaa0001 fra,aaaa0002 fra,aaaa0003 iad,aaaa0004 syd"}},
		{"vms.app.internal", dns.TypeA, 0, nil},
		{"app.internal", dns.TypeA, 0, []string{"127.0.0.2", "127.0.0.4"}},
		{"app.internal", dns.TypeAAAA, 0, []string{"fdaa::5"}},
		{"aaaa0002.vm.app.internal", dns.TypeA, 0, []string{"127.0.0.3"}},
		{"aaaa0004.vm.app.internal", dns.TypeAAAA, 0, []string{"fdaa::5"}},
		{"aaaa0004.vm.app.internal", dns.TypeA, 0, nil},
		{"aaaa0009.vm.app.internal", dns.TypeA, nx, nil},
		{"fra.app.internal", dns.TypeA, 0, []string{"127.0.0.2"}},
		{"ams.app.internal", dns.TypeA, nx, nil},
		{"top2.nearest.of.app.internal", dns.TypeA, 0, []string{"127.0.0.2", "127.0.0.4"}},
		{"top9.nearest.of.app.internal", dns.TypeAAAA, 0, []string{"fdaa::5"}},
		{"top0.nearest.of.app.internal", dns.TypeA, nx, nil},
		{"topx.nearest.of.app.internal", dns.TypeA, nx, nil},
		{"top99999999999999999999.nearest.of.app.internal", dns.TypeA, nx, nil},
		{"vms.other.internal", dns.TypeTXT, nx, nil},
		{"example.com", dns.TypeA, nx, nil},
	}
	for _, tt := range tests {
		r, err := ask(t, s, "udp", tt.name, tt.qtype)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.name, dns.TypeToString[tt.qtype], err)
		}
		if got := values(t, r); r.Rcode != tt.rcode || !r.Authoritative || !slices.Equal(got, tt.want) {
			t.Errorf("%s %s = %s %v (authoritative %v), want %s %v", tt.name, dns.TypeToString[tt.qtype],
				dns.RcodeToString[r.Rcode], got, r.Authoritative, dns.RcodeToString[tt.rcode], tt.want)
		}
	}
	if n := s.Queries.Load(); n != int64(len(tests)) {
		t.Errorf("Queries = %d, want %d", n, len(tests))
	}
	if n := s.TXT.Load(); n != 3 {
		t.Errorf("TXT = %d, want 3", n)
	}
}

// A fleet's TXT value over 255 bytes is split into character-strings, and
// over UDP the answer is truncated, so a client retries on TCP.
func TestLongTXTSplitAndTruncatedOverUDP(t *testing.T) {
	t.Parallel()
	s := listen(t, "big", nil)
	var want []string
	for i := range 400 {
		id := fmt.Sprintf("d%08d", i)
		s.Add(id, "fra", "")
		want = append(want, id+" fra")
	}
	r, err := ask(t, s, "udp", "vms.big.internal", dns.TypeTXT)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Truncated || r.Len() > dns.MinMsgSize {
		t.Fatalf("UDP answer of %d bytes, truncated %v; want at most %d, truncated", r.Len(), r.Truncated, dns.MinMsgSize)
	}
	if r, err = ask(t, s, "tcp", "vms.big.internal", dns.TypeTXT); err != nil {
		t.Fatal(err)
	}
	if r.Truncated || len(r.Answer) != 1 {
		t.Fatalf("TCP answer: truncated %v, %d records", r.Truncated, len(r.Answer))
	}
	txt := r.Answer[0].(*dns.TXT).Txt
	for i, part := range txt {
		if len(part) > 255 || (i < len(txt)-1 && len(part) != 255) {
			t.Fatalf("character-string %d of %d is %d bytes", i, len(txt), len(part))
		}
	}
	if got := strings.Join(txt, ""); got != strings.Join(want, ",") {
		t.Fatalf("joined TXT is %d bytes, want %d", len(got), len(strings.Join(want, ",")))
	}
	if s.TCP.Load() != 1 {
		t.Fatalf("TCP = %d, want 1", s.TCP.Load())
	}
}

func TestDownNeverAnswersAndUpAnswersAgain(t *testing.T) {
	t.Parallel()
	s := listen(t, "app", nil)
	s.SetDown(true)
	q := new(dns.Msg)
	q.SetQuestion("vms.app.internal.", dns.TypeTXT)
	c := &dns.Client{Timeout: 300 * time.Millisecond}
	var ne net.Error
	if _, _, err := c.Exchange(q, s.Addr); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a question to a resolver that is down: %v, want a timeout", err)
	}
	if s.Dropped.Load() != 1 || s.Queries.Load() != 0 {
		t.Fatalf("Dropped %d, Queries %d; want 1, 0", s.Dropped.Load(), s.Queries.Load())
	}
	s.SetDown(false)
	if _, err := ask(t, s, "udp", "vms.app.internal", dns.TypeTXT); err != nil {
		t.Fatalf("up again: %v", err)
	}
}

func TestSlowAnswersAfterTheDelay(t *testing.T) {
	t.Parallel()
	s := listen(t, "app", nil)
	s.SetDelay(300 * time.Millisecond)
	start := time.Now()
	if _, err := ask(t, s, "udp", "vms.app.internal", dns.TypeTXT); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("a slow resolver answered in %v, want at least 300ms", took)
	}
}

// A slow resolver holds at most MaxWaiting questions; a flood of more is
// dropped, and Close lets the held ones go at once.
func TestSlowHoldsAtMostMaxWaiting(t *testing.T) {
	t.Parallel()
	s := listen(t, "app", nil)
	s.SetDelay(time.Hour)
	c, err := net.Dial("udp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := new(dns.Msg)
	q.SetQuestion("vms.app.internal.", dns.TypeTXT)
	b, _ := q.Pack()
	const extra = 20
	// In batches the socket's buffer holds, each seen by the server
	// before the next is sent.
	for sent := 1; sent <= flydns.MaxWaiting+extra; sent++ {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		if sent%16 == 0 || sent == flydns.MaxWaiting+extra {
			testutil.Eventually(t, 5*time.Second, "a batch of questions to arrive", func() bool {
				return s.Waiting()+int(s.Dropped.Load()) == sent
			})
		}
	}
	if s.Waiting() != flydns.MaxWaiting || s.Dropped.Load() != extra {
		t.Fatalf("%d questions held, %d dropped; want %d, %d", s.Waiting(), s.Dropped.Load(), flydns.MaxWaiting, extra)
	}
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited on held questions")
	}
	testutil.Eventually(t, 5*time.Second, "every held question dropped", func() bool {
		return s.Dropped.Load() == flydns.MaxWaiting+extra && s.Queries.Load() == 0
	})
}

// With a source, every question sees the machines as the source lists
// them at that moment.
func TestSourceIsAskedOnEveryQuestion(t *testing.T) {
	t.Parallel()
	list := []flydns.Machine{{ID: "aaaa0001", Region: "fra", IP: "127.0.0.2"}}
	ch := make(chan []flydns.Machine, 1)
	ch <- list
	s := listen(t, "app", func() []flydns.Machine { l := <-ch; ch <- l; return l })
	for _, want := range []string{"aaaa0001 fra", "aaaa0001 fra,aaaa0002 ams"} {
		r, err := ask(t, s, "tcp", "vms.app.internal", dns.TypeTXT)
		if err != nil {
			t.Fatal(err)
		}
		if got := values(t, r); !slices.Equal(got, []string{want}) {
			t.Fatalf("vms = %v, want %q", got, want)
		}
		<-ch
		ch <- append(list, flydns.Machine{ID: "aaaa0002", Region: "ams"})
	}
}

func TestPutReplacesAndRemoveDrops(t *testing.T) {
	t.Parallel()
	s := listen(t, "app", nil)
	s.Add("aaaa0001", "fra", "")
	s.Put(flydns.Machine{ID: "aaaa0002", Region: "fra", Stopped: true})
	s.Add("aaaa0003", "iad", "")
	steps := []struct {
		do   func()
		want string
	}{
		{func() {}, "aaaa0001 fra,aaaa0003 iad"},
		{func() { s.Add("aaaa0002", "fra", "") }, "aaaa0001 fra,aaaa0002 fra,aaaa0003 iad"},
		{func() { s.Remove("aaaa0001") }, "aaaa0002 fra,aaaa0003 iad"},
		{func() { s.Remove("aaaa0009") }, "aaaa0002 fra,aaaa0003 iad"},
	}
	for i, st := range steps {
		st.do()
		r, err := ask(t, s, "udp", "vms.app.internal", dns.TypeTXT)
		if err != nil {
			t.Fatal(err)
		}
		if got := values(t, r); !slices.Equal(got, []string{st.want}) {
			t.Fatalf("step %d: vms = %v, want %q", i, got, st.want)
		}
	}
}

func TestNotOneQuestionIsFormatError(t *testing.T) {
	t.Parallel()
	s := listen(t, "app", nil)
	q := new(dns.Msg)
	q.SetQuestion("vms.app.internal.", dns.TypeTXT)
	q.Question = append(q.Question, q.Question[0])
	r, err := dns.Exchange(q, s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rcode != dns.RcodeFormatError || len(r.Answer) != 0 {
		t.Fatalf("two questions = %s with %d answers, want FORMERR", dns.RcodeToString[r.Rcode], len(r.Answer))
	}
}
