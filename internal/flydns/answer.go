package flydns

import (
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// ttl is the only TTL Fly's documentation shows.
const ttl = 5

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	if s.down.Load() || !s.waitDelay() {
		s.Dropped.Add(1)
		return // a resolver that is down, or overwhelmed, never answers
	}
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	if len(q.Question) == 1 {
		s.answer(m, q.Question[0])
	} else {
		m.Rcode = dns.RcodeFormatError
	}
	s.Queries.Add(1)
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := q.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	} else {
		s.TCP.Add(1)
	}
	w.WriteMsg(m)
}

// waitDelay holds a question for the delay set; false when it must be
// dropped: MaxWaiting are already held, or the server closed meanwhile.
func (s *Server) waitDelay() bool {
	d := s.Delay()
	if d <= 0 {
		return true
	}
	select {
	case s.wait <- struct{}{}:
	default:
		return false
	}
	defer func() { <-s.wait }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.closed:
		return false
	}
}

// answer fills m for q from the machines listed now.
func (s *Server) answer(m *dns.Msg, q dns.Question) {
	name := strings.ToLower(q.Name)
	suffix := "." + strings.ToLower(s.App) + ".internal."
	all := s.machines()
	switch {
	case name == "vms"+suffix:
		s.txt(m, q, started(all))
	case name == "all.vms"+suffix:
		s.txt(m, q, all)
	case name == suffix[1:]:
		addrs(m, q, started(all))
	case strings.HasSuffix(name, ".vm"+suffix):
		id := strings.TrimSuffix(name, ".vm"+suffix)
		for _, mc := range all {
			if strings.ToLower(mc.ID) == id {
				addrs(m, q, []Machine{mc})
				return
			}
		}
		m.Rcode = dns.RcodeNameError
	case strings.HasPrefix(name, "top") && strings.HasSuffix(name, ".nearest.of"+suffix):
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "top"), ".nearest.of"+suffix))
		if err != nil || n < 1 {
			m.Rcode = dns.RcodeNameError
			return
		}
		list := started(all)
		addrs(m, q, list[:min(n, len(list))])
	case strings.HasSuffix(name, suffix) && hasRegion(all, strings.TrimSuffix(name, suffix)):
		region := strings.TrimSuffix(name, suffix)
		var list []Machine
		for _, mc := range started(all) {
			if strings.ToLower(mc.Region) == region {
				list = append(list, mc)
			}
		}
		addrs(m, q, list)
	default:
		m.Rcode = dns.RcodeNameError
	}
}

// txt answers a TXT question with "<id> <region>,..." for list.
func (s *Server) txt(m *dns.Msg, q dns.Question, list []Machine) {
	if q.Qtype != dns.TypeTXT {
		return
	}
	s.TXT.Add(1)
	parts := make([]string, len(list))
	for i, mc := range list {
		parts[i] = mc.ID + " " + mc.Region
	}
	m.Answer = append(m.Answer, &dns.TXT{Hdr: header(q, dns.TypeTXT), Txt: split255(strings.Join(parts, ","))})
}

// addrs answers an A or AAAA question with the addresses of that family.
func addrs(m *dns.Msg, q dns.Question, list []Machine) {
	for _, mc := range list {
		ip := net.ParseIP(mc.IP)
		switch {
		case ip == nil:
		case q.Qtype == dns.TypeA && ip.To4() != nil:
			m.Answer = append(m.Answer, &dns.A{Hdr: header(q, dns.TypeA), A: ip.To4()})
		case q.Qtype == dns.TypeAAAA && ip.To4() == nil:
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: header(q, dns.TypeAAAA), AAAA: ip})
		}
	}
}

func header(q dns.Question, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

func started(all []Machine) []Machine {
	var out []Machine
	for _, mc := range all {
		if !mc.Stopped {
			out = append(out, mc)
		}
	}
	return out
}

func hasRegion(all []Machine, region string) bool {
	for _, mc := range all {
		if strings.ToLower(mc.Region) == region {
			return true
		}
	}
	return false
}

// split255 cuts a TXT value into character-strings of at most 255 bytes,
// the most one can hold; a reader joins them with no separator.
func split255(s string) []string {
	out := []string{}
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}
