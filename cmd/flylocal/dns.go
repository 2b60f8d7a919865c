package main

import (
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// ServeDNS answers Fly's internal names from the live machine table:
// vms.<app>.internal and all.vms.<app>.internal (TXT), <id>.vm.<app>.internal,
// <region>.<app>.internal, <app>.internal and top<N>.nearest.of.<app>.internal
// (A; no AAAA on loopback). Unknown names are NXDOMAIN; TTL 5. Over UDP an
// answer larger than the client's buffer is truncated so it retries on TCP.
func (c *cluster) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	if c.dnsDown.Load() {
		return // a resolver that is down never answers
	}
	if d := c.dnsDelay.Load(); d > 0 {
		time.Sleep(time.Duration(d)) // a slow resolver
	}
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	if len(q.Question) == 1 {
		c.answer(m, q.Question[0])
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := q.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

func (c *cluster) answer(m *dns.Msg, q dns.Question) {
	name := strings.ToLower(q.Name)
	suffix := "." + c.app + ".internal."
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: 5}
	}
	txt := func(list []*machine) {
		if q.Qtype != dns.TypeTXT {
			return
		}
		parts := make([]string, len(list))
		for i, mc := range list {
			parts[i] = mc.ID + " " + mc.Region
		}
		m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: split255(strings.Join(parts, ","))})
	}
	addrs := func(list []*machine) {
		if q.Qtype != dns.TypeA {
			return
		}
		for _, mc := range list {
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: net.ParseIP(mc.IP).To4()})
		}
	}
	switch {
	case name == "vms"+suffix:
		txt(c.started())
	case name == "all.vms"+suffix:
		txt(c.machines)
	case name == c.app+".internal.":
		addrs(c.started())
	case strings.HasSuffix(name, ".vm"+suffix):
		mc := c.machine(strings.TrimSuffix(name, ".vm"+suffix))
		if mc == nil {
			m.Rcode = dns.RcodeNameError
			return
		}
		addrs([]*machine{mc})
	case strings.HasPrefix(name, "top") && strings.HasSuffix(name, ".nearest.of"+suffix):
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "top"), ".nearest.of"+suffix))
		if err != nil || n < 1 {
			m.Rcode = dns.RcodeNameError
			return
		}
		list := c.started()
		addrs(list[:min(n, len(list))])
	case strings.HasSuffix(name, suffix) && c.hasRegion(strings.TrimSuffix(name, suffix)):
		var list []*machine
		for _, mc := range c.started() {
			if mc.Region == strings.TrimSuffix(name, suffix) {
				list = append(list, mc)
			}
		}
		addrs(list)
	default:
		m.Rcode = dns.RcodeNameError
	}
}

// split255 cuts a TXT value into character-strings of at most 255 bytes.
func split255(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}
