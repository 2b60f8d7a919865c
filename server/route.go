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

// lookupMissed charges a failed HTTP lookup to its address, unless it is
// a peer's probe or its own probe already charged it.
func (s *Server) lookupMissed(r *http.Request) {
	if !s.exempt(r) && r.Context().Value(missCharged{}) == nil {
		s.ipl.miss(s.clientIP(r))
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
		ViaProxy:     r.Header.Get("Fly-Region") != "",
		ReplaySrc:    r.Header.Get("Fly-Replay-Src") != "",
		ReplayFailed: r.Header.Get("Fly-Replay-Failed") != "",
		Upgrade:      isUpgrade(r),
		Self:         s.cfg.Instance,
		Region:       s.cfg.Region,
		Path:         r.URL.EscapedPath(),
		RawQuery:     r.URL.RawQuery,
	}
	if in.ReplayFailed {
		s.noteFailedReplay(r.Header.Get("Fly-Replay-Failed"))
	}
	if in.ReplaySrc {
		in.SrcState = routing.ParseFields(r.Header.Get("Fly-Replay-Src"))["state"]
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
		// peers about; anything else is answered here. A probe is a
		// lookup, so it is checked against, and charged to, the
		// address's miss budget first (refunded when a peer holds it).
		if in.Upgrade || (r.Method == http.MethodGet && strings.HasPrefix(in.Path, "/room/")) || isAPI(r) {
			ip := s.clientIP(r)
			if !s.ipl.chargeMiss(ip) {
				s.metrics.errorSent(errTooManyRequests)
				writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": errTooManyRequests.Error()})
				return r, true
			}
			if in.Holder = s.probe(r, p.Code); in.Holder != "" {
				s.ipl.refundMiss(ip)
			} else {
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

// probe asks the same-region peers for the code; "" when none holds it.
func (s *Server) probe(r *http.Request, code string) string {
	if s.cfg.Prober == nil {
		return ""
	}
	stop := s.metrics.probeTimer()
	region := s.cfg.Region
	if home, ok := regions.RegionOf(code); ok {
		region = home // a home region with no machine: the prober asks everyone
	}
	holder, outcome := s.cfg.Prober.Find(r.Context(), code, region)
	stop(outcome)
	s.log.Debug("probe", "room", code, "outcome", outcome, "holder", holder)
	return holder
}

// goneTTL is how long a machine that a replay could not reach is taken as
// gone: pins to it are ignored (the code routes the request) meanwhile.
// Short: a machine keeps its id when it restarts.
const goneTTL = 10 * time.Second

// goneMax bounds the table of machines taken as gone.
const goneMax = 1024

// noteFailedReplay remembers the machine a fallback delivery names as
// unreachable. A client that forges the header gains nothing: a pin it
// makes this machine ignore only sends requests through code routing,
// which reaches every room too.
func (s *Server) noteFailedReplay(failed string) {
	id := routing.ParseFields(failed)["instance"]
	if !routing.MachineID(id) || id == s.cfg.Instance {
		return
	}
	s.goneMu.Lock()
	defer s.goneMu.Unlock()
	if len(s.gone) >= goneMax {
		clear(s.gone)
	}
	s.gone[id] = time.Now().Add(goneTTL)
}

// pinGone reports whether a replay to machine id failed moments ago.
func (s *Server) pinGone(id string) bool {
	s.goneMu.Lock()
	defer s.goneMu.Unlock()
	until, ok := s.gone[id]
	if ok && time.Now().After(until) {
		delete(s.gone, id)
		return false
	}
	return ok
}
