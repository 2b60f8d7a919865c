package testutil

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// FlyDNS is a real DNS server (miekg/dns, UDP and TCP on loopback) with
// Fly's internal names for one app: TXT vms.<app>.internal and A records
// for <id>.vm.<app>.internal, TTL 5.
type FlyDNS struct {
	App  string
	Addr string // host:port, UDP and TCP

	mu       sync.Mutex        // guards machines
	machines map[string]string // id → "region ip"
	order    []string

	Queries atomic.Int64 // every question answered
	TXT     atomic.Int64 // TXT questions answered
}

// StartFlyDNS serves app's names until the test ends.
func StartFlyDNS(t testing.TB, app string) *FlyDNS {
	t.Helper()
	f, stop, err := NewFlyDNS(app)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return f
}

// NewFlyDNS serves app's names on a loopback port until stop is called.
func NewFlyDNS(app string) (f *FlyDNS, stop func(), err error) {
	f = &FlyDNS{App: app, machines: map[string]string{}}
	var pc net.PacketConn
	var ln net.Listener
	for try := 0; ln == nil; try++ {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			return nil, nil, err
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err != nil {
			pc.Close()
			if try == 20 {
				return nil, nil, err
			}
		}
	}
	udp := &dns.Server{PacketConn: pc, Handler: f}
	tcp := &dns.Server{Listener: ln, Handler: f}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	f.Addr = pc.LocalAddr().String()
	return f, func() { udp.Shutdown(); tcp.Shutdown() }, nil
}

// Add lists a started machine.
func (f *FlyDNS) Add(id, region, ip string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.machines[id]; !ok {
		f.order = append(f.order, id)
	}
	f.machines[id] = region + " " + ip
}

// ServeDNS implements dns.Handler.
func (f *FlyDNS) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	f.Queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(q)
	name := q.Question[0].Name
	hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: 5}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case name == "vms."+f.App+".internal." && q.Question[0].Qtype == dns.TypeTXT:
		f.TXT.Add(1)
		var entries []string
		for _, id := range f.order {
			region, _, _ := strings.Cut(f.machines[id], " ")
			entries = append(entries, id+" "+region)
		}
		hdr.Rrtype = dns.TypeTXT
		txt := strings.Join(entries, ",")
		var parts []string
		for len(txt) > 0 {
			n := min(255, len(txt))
			parts, txt = append(parts, txt[:n]), txt[n:]
		}
		m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: parts})
	case strings.HasSuffix(name, ".vm."+f.App+".internal."):
		v, ok := f.machines[strings.TrimSuffix(name, ".vm."+f.App+".internal.")]
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case q.Question[0].Qtype == dns.TypeA:
			_, ip, _ := strings.Cut(v, " ")
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.ParseIP(ip)})
		}
	default:
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}
