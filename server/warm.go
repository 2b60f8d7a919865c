package server

import (
	"context"
	"time"

	"github.com/party-sockets/party-sockets/routing"
)

// warmEvery is how often a machine asks the DNS for its siblings while it
// runs. The answers are the resolver's last good ones (routing.CachingResolver
// keeps them 10 minutes), so a machine stopped while the DNS is down still
// knows where to hand its rooms (docs/deploys.md).
const warmEvery = 30 * time.Second

// warmPeers is how many siblings' addresses one round asks for at most,
// this machine's region first: a hand-off prefers those, and the bound keeps
// a large app's rounds small (one TXT and at most this many AAAA questions
// every warmEvery).
const warmPeers = 16

// WarmSiblings asks for the machine list and the siblings' addresses now
// and every warmEvery until ctx ends. It does nothing without a prober.
func (s *Server) WarmSiblings(ctx context.Context) {
	if s.cfg.Prober == nil {
		return
	}
	t := time.NewTicker(warmEvery)
	defer t.Stop()
	for {
		s.warmOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) warmOnce(ctx context.Context) {
	peers, err := s.cfg.Prober.FreshPeers(ctx)
	if err != nil {
		return // the last good answer stays; asked again next round
	}
	var near, far []routing.Peer
	for _, p := range peers {
		switch {
		case p.ID == s.cfg.Instance || !routing.MachineID(p.ID):
		case p.Region == s.cfg.Region:
			near = append(near, p)
		default:
			far = append(far, p)
		}
	}
	for i, p := range append(near, far...) {
		if i == warmPeers || ctx.Err() != nil {
			return
		}
		_, _ = s.siblingAddr(ctx, p.ID)
	}
}
