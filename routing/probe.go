package routing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Resolver answers one DNS question. DNSResolver is the real one; tests run
// it against a miekg/dns server on loopback.
type Resolver interface {
	Lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error)
}

// DNSResolver asks one server directly (Fly's internal resolver), never the
// host's resolver configuration. It retries over TCP when a UDP answer is
// truncated.
type DNSResolver struct {
	Server string // host:port
}

// ErrNXDomain is returned for a name that does not exist.
var ErrNXDomain = errors.New("dns: no such name")

// Lookup implements Resolver.
func (r DNSResolver) Lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.SetEdns0(4096, false)
	c := &dns.Client{Net: "udp"}
	in, _, err := c.ExchangeContext(ctx, q, r.Server)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, q, r.Server)
	}
	if err != nil {
		return nil, err
	}
	switch in.Rcode {
	case dns.RcodeSuccess:
		return in.Answer, nil
	case dns.RcodeNameError:
		return nil, ErrNXDomain
	}
	return nil, fmt.Errorf("dns: %s for %s", dns.RcodeToString[in.Rcode], name)
}

// Peer is a started machine of the app.
type Peer struct{ ID, Region string }

// Peers reads TXT vms.<app>.internal: its strings joined read
// "id region,id region,...".
func Peers(ctx context.Context, res Resolver, app string) ([]Peer, error) {
	rrs, err := res.Lookup(ctx, "vms."+app+".internal", dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var peers []Peer
	for _, rr := range rrs {
		txt, ok := rr.(*dns.TXT)
		if !ok {
			continue
		}
		for _, entry := range strings.Split(strings.Join(txt.Txt, ""), ",") {
			id, region, ok := strings.Cut(strings.TrimSpace(entry), " ")
			if ok && id != "" {
				peers = append(peers, Peer{ID: id, Region: strings.TrimSpace(region)})
			}
		}
	}
	return peers, nil
}

// Address resolves <id>.vm.<app>.internal, AAAA first, then A.
func Address(ctx context.Context, res Resolver, app, id string) (net.IP, error) {
	name := id + ".vm." + app + ".internal"
	for _, qt := range []uint16{dns.TypeAAAA, dns.TypeA} {
		rrs, err := res.Lookup(ctx, name, qt)
		if err != nil && !errors.Is(err, ErrNXDomain) {
			return nil, err
		}
		for _, rr := range rrs {
			switch rr := rr.(type) {
			case *dns.AAAA:
				return rr.AAAA, nil
			case *dns.A:
				return rr.A, nil
			}
		}
	}
	return nil, fmt.Errorf("dns: no address for %s", name)
}

// Prober finds the same-region peer that holds a room.
type Prober struct {
	App      string
	Self     string
	Port     int
	Resolver Resolver
	Client   *http.Client  // nil means a plain client
	Limit    time.Duration // per peer; 0 means 3 s
}

// Outcome of a probe round, a fixed set for metrics.
const (
	OutcomeFound    = "found"
	OutcomeNotFound = "not_found"
	OutcomeNoPeers  = "no_peers"
	OutcomeDNSError = "dns_error"
)

// Find asks every started peer of region for GET /room/<code>, all at once;
// the first 200 wins and the rest are cancelled. Any failure means "not
// found": the returned outcome says which.
func (p *Prober) Find(ctx context.Context, code, region string) (holder, outcome string) {
	limit := p.Limit
	if limit <= 0 {
		limit = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	peers, err := Peers(ctx, p.Resolver, p.App)
	if err != nil {
		return "", OutcomeDNSError
	}
	var ask []string
	for _, peer := range peers {
		if peer.ID != p.Self && peer.Region == region {
			ask = append(ask, peer.ID)
		}
	}
	if len(ask) == 0 {
		return "", OutcomeNoPeers
	}
	found := make(chan string, len(ask))
	for _, id := range ask {
		go func() {
			if p.holds(ctx, id, code) {
				found <- id
			} else {
				found <- ""
			}
		}()
	}
	for range ask {
		if id := <-found; id != "" {
			return id, OutcomeFound
		}
	}
	return "", OutcomeNotFound
}

func (p *Prober) holds(ctx context.Context, id, code string) bool {
	ip, err := Address(ctx, p.Resolver, p.App, id)
	if err != nil {
		return false
	}
	u := "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(p.Port)) + "/room/" + url.PathEscape(code)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false
	}
	client := p.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
