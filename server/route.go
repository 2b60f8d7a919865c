package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/party-sockets/party-sockets/regions"
	"github.com/party-sockets/party-sockets/routing"
)

// missCharged marks a request whose probe already spent a miss: a local
// 404 for it is not charged twice.
type missCharged struct{}

// lookupMissed charges a failed HTTP request to its address, unless its
// own probe already charged it.
func (s *Server) lookupMissed(r *http.Request) {
	if r.Context().Value(missCharged{}) == nil {
		s.perAddr.miss(s.clientIP(r))
	}
}

// route applies the Fly routing steps (pin, then code) and answers the
// request itself when it belongs elsewhere. It reports whether it answered,
// and returns the request to carry on with.
func (s *Server) route(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	if s.cfg.AppName == "" {
		return r, false
	}
	in := routing.Input{
		OnFly:        true,
		ViaProxy:     s.proxied(r), // forged headers from elsewhere: answered here
		ReplaySrc:    r.Header.Get("Fly-Replay-Src") != "",
		ReplayFailed: r.Header.Get("Fly-Replay-Failed") != "",
		Upgrade:      isUpgrade(r),
		Self:         s.cfg.Instance,
		Region:       s.cfg.Region,
		Path:         r.URL.EscapedPath(),
		RawQuery:     r.URL.RawQuery,
	}
	if in.ViaProxy {
		s.readReplayHeaders(r, &in) // only the proxy's say anything
	}
	if pin, ok := routing.Pin(in.RawQuery); ok {
		in.PinGone = s.pinGone(pin)
	}
	if code, ok := routing.CandidateCode(in.Path); ok {
		in.Held = s.rooms.Held(code)
		if !in.Held {
			in.MovedTo = s.movedTo(code)
		}
	}
	d := routing.Decide(in)
	if rr, ok := d.(routing.ReplayRegion); ok && s.cfg.Prober != nil && s.cfg.Prober.Wide &&
		s.cfg.Prober.RegionEmpty(r.Context(), rr.Region) {
		// Nothing runs in the code's region: its rooms, if any, were
		// handed to another region. Look for the room everywhere.
		in.HomeEmpty = true
		d = routing.Decide(in)
	}
	if p, ok := d.(routing.Probe); ok {
		in.Probed = true
		// Only a join (an upgrade) or a lookup is worth asking the
		// peers about; anything else is answered here.
		if in.Upgrade || (r.Method == http.MethodGet && strings.HasPrefix(in.Path, "/room/")) || isAPI(r) {
			var refused bool
			if in.Holder, refused = s.probeFor(r, p.Code); refused {
				s.apiError(w, http.StatusTooManyRequests, errTooManyRequests)
				return r, true
			}
			if in.Holder == "" && in.Upgrade {
				in.Rendezvous = s.rendezvous(r.Context(), p.Code)
			}
			if in.Holder == "" && !in.Upgrade {
				// A miss, charged here once. A join is charged when it
				// fails: the socket may yet create a room instead.
				s.perAddr.missCode(s.clientIP(r), p.Code)
				r = r.WithContext(context.WithValue(r.Context(), missCharged{}, true))
			}
		}
		d = routing.Decide(in)
	}
	switch d := d.(type) {
	case routing.ReplayInstance, routing.ReplayRegion:
		kind := "instance"
		if _, ok := d.(routing.ReplayRegion); ok {
			kind = "region"
		}
		s.metrics.replays.WithLabelValues(kind).Inc()
		// state says why (Fly hands it on in fly-replay-src; the local
		// cluster's overview shows it): a room that moved, a probe's find.
		header := routing.ReplayHeader(d)
		switch ri, _ := d.(routing.ReplayInstance); {
		case ri.ID != "" && ri.ID == in.MovedTo:
			header += ";state=moved"
		case ri.ID != "" && ri.ID == in.Holder:
			header += ";state=probe"
		case ri.ID != "" && ri.ID == in.Rendezvous:
			header += ";state=rendezvous"
		}
		w.Header().Set("Fly-Replay", header)
		w.WriteHeader(http.StatusConflict)
		return r, true
	case routing.Redirect:
		s.metrics.replays.WithLabelValues("redirect").Inc()
		w.Header().Set("Location", d.Location)
		w.WriteHeader(http.StatusFound)
		return r, true
	}
	return r, false
}

// readReplayHeaders takes what the proxy's replay headers say: the
// state a replay that reached us was made with, and the machines a replay
// of ours did not reach.
func (s *Server) readReplayHeaders(r *http.Request, in *routing.Input) {
	if in.ReplayFailed {
		s.noteFailedReplay(r.Context(), r.Header.Get("Fly-Replay-Failed"))
	}
	if in.ReplaySrc {
		src := routing.ParseFields(r.Header.Get("Fly-Replay-Src"))
		in.SrcState = src["state"]
		if src["instance"] == s.cfg.Instance && s.cfg.Prober != nil {
			// A replay of ours came back to us: the machines we took to
			// be there were not. Whatever the DNS cache says is stale.
			s.cfg.Prober.Stale()
		}
	}
}

// probeFor looks for the holder of code on behalf of r's address. A
// probe is a lookup: an address that has used up its misses asks nothing,
// and nor does a newcomer the machine has no token for (newcomers.go; the
// server API's caller holds its key, and is only held to its misses). The
// round it may start is paid for from the address's probe allowance,
// found or not. refused: the address is over one or the other, and
// nothing was asked.
func (s *Server) probeFor(r *http.Request, code string) (holder string, refused bool) {
	ip := s.clientIP(r)
	var took newcomer
	if isAPI(r) {
		if s.perAddr.blocked(ip) {
			return "", true
		}
	} else {
		var admitted bool
		if admitted, took = s.perAddr.admit(ip, code); !admitted {
			return "", true
		}
	}
	a := probeAllowance{rate: s.probes, ip: ip, now: time.Now()}
	holder, outcome := s.probe(r, code, a)
	if holder != "" && s.pinGone(holder) {
		// Remembered on a machine a replay could not reach: ask again.
		s.cfg.Prober.Forget(code)
		holder, outcome = s.probe(r, code, a)
	}
	if holder != "" {
		s.perAddr.found(ip, took)
	}
	return holder, outcome == routing.OutcomeRefused
}

// probe asks the code's region's peers (and, for a code known to have
// left it, where it went) for the code; "" when none holds it.
func (s *Server) probe(r *http.Request, code string, a routing.Allowance) (holder, outcome string) {
	if s.cfg.Prober == nil {
		return "", routing.OutcomeNoPeers
	}
	stop := s.metrics.probeTimer()
	region := s.cfg.Region
	if home, ok := regions.HomeOf(code); ok {
		region = home // a home region with no machine: asked where its codes went
	}
	holder, outcome = s.cfg.Prober.FindFor(r.Context(), code, region, a)
	stop(outcome)
	s.log.Debug("probe", "room", code, "outcome", outcome, "holder", holder)
	return holder, outcome
}

// goneTTL is how long a machine that a replay could not reach is taken as
// gone: pins to it are ignored (the code routes the request) meanwhile.
// Short: a machine keeps its id when it restarts.
const goneTTL = 10 * time.Second

// goneMax bounds the table of machines taken as gone; past it the oldest
// entry goes.
const goneMax = 1024

// noteFailedReplay remembers the machine a fallback delivery names as
// unreachable, if DNS no longer lists it as started (a cached answer will
// do). The header is the proxy's, but a client may send one too: a forged
// one must not turn the pins to a running machine into probe rounds.
func (s *Server) noteFailedReplay(ctx context.Context, failed string) {
	id := routing.ParseFields(failed)["instance"]
	if !routing.MachineID(id) || id == s.cfg.Instance || s.cfg.Prober == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if s.cfg.Prober.Listed(ctx, id) {
		return
	}
	s.goneMu.Lock()
	defer s.goneMu.Unlock()
	s.gone.Set(id, struct{}{}, time.Now())
}

// pinGone reports whether a replay to machine id failed moments ago.
func (s *Server) pinGone(id string) bool {
	s.goneMu.Lock()
	defer s.goneMu.Unlock()
	_, ok := s.gone.Get(id, time.Now())
	return ok
}
