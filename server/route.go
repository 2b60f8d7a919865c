package server

import (
	"net/http"

	"party-sockets/routing"
)

// route applies the Fly routing steps (pin, then code) and answers the
// request itself when it belongs elsewhere. It reports whether it answered.
func (s *Server) route(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.AppName == "" {
		return false
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
	if code, ok := routing.CandidateCode(in.Path); ok {
		in.Held = s.rooms.Held(code)
	}
	d := routing.Decide(in)
	if p, ok := d.(routing.Probe); ok {
		in.Probed = true
		in.Holder = s.probe(r, p.Code)
		d = routing.Decide(in)
	}
	switch d := d.(type) {
	case routing.ReplayInstance, routing.ReplayRegion:
		kind := "instance"
		if _, ok := d.(routing.ReplayRegion); ok {
			kind = "region"
		}
		s.metrics.replays.WithLabelValues(kind).Inc()
		w.Header().Set("Fly-Replay", routing.ReplayHeader(d))
		w.WriteHeader(http.StatusConflict)
		return true
	case routing.Redirect:
		s.metrics.replays.WithLabelValues("redirect").Inc()
		w.Header().Set("Location", d.Location)
		w.WriteHeader(http.StatusFound)
		return true
	}
	return false
}

// probe asks the same-region peers for the code; "" when none holds it.
func (s *Server) probe(r *http.Request, code string) string {
	if s.cfg.Prober == nil {
		return ""
	}
	stop := s.metrics.probeTimer()
	holder, outcome := s.cfg.Prober.Find(r.Context(), code, s.cfg.Region)
	stop(outcome)
	s.log.Debug("probe", "room", code, "outcome", outcome, "holder", holder)
	return holder
}
