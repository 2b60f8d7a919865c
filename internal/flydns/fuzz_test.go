package flydns

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// writer is a dns.ResponseWriter that keeps the answer.
type writer struct {
	dns.ResponseWriter
	remote net.Addr
	msg    *dns.Msg
}

func (w *writer) RemoteAddr() net.Addr      { return w.remote }
func (w *writer) WriteMsg(m *dns.Msg) error { w.msg = m; return nil }

// FuzzServeDNS puts any question that unpacks to the handler: it answers
// every one with a message that packs, within the client's UDP size, and
// never lists more records than there are machines.
func FuzzServeDNS(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"vms.app.internal.", dns.TypeTXT}, {"all.vms.app.internal.", dns.TypeTXT}, {"app.internal.", dns.TypeA},
		{"aaaa0001.vm.app.internal.", dns.TypeAAAA}, {"top2.nearest.of.app.internal.", dns.TypeA},
		{"fra.app.internal.", dns.TypeA}, {"top-1.nearest.of.app.internal.", dns.TypeA}, {"x.", dns.TypeANY},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		b, _ := m.Pack()
		f.Add(b)
	}
	s := &Server{App: "app"}
	s.Add("aaaa0001", "fra", "127.0.0.2")
	s.Add("aaaa0002", "fra", "fdaa::3")
	s.Put(Machine{ID: "aaaa0003", Region: "iad", IP: "127.0.0.4", Stopped: true})
	f.Fuzz(func(t *testing.T, b []byte) {
		q := new(dns.Msg)
		if q.Unpack(b) != nil {
			return
		}
		for _, remote := range []net.Addr{&net.UDPAddr{}, &net.TCPAddr{}} {
			w := &writer{remote: remote}
			s.ServeDNS(w, q)
			if w.msg == nil {
				t.Fatal("no answer")
			}
			out, err := w.msg.Pack()
			if err != nil {
				t.Fatalf("the answer does not pack: %v", err)
			}
			limit := dns.MinMsgSize
			if opt := q.IsEdns0(); opt != nil {
				limit = max(limit, int(opt.UDPSize()))
			}
			if _, udp := remote.(*net.UDPAddr); udp && len(out) > limit {
				t.Fatalf("a UDP answer of %d bytes, over the client's %d", len(out), limit)
			}
			if len(w.msg.Answer) > 3 {
				t.Fatalf("%d records for 3 machines", len(w.msg.Answer))
			}
		}
	})
}
