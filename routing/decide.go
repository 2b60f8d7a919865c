// Package routing decides where a request belongs (serve here, replay to an
// instance or a region, redirect) from the request's facts, finds the
// same-region peer that holds a room, and parses Fly's replay headers.
package routing

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/party-sockets/party-sockets/regions"
)

// Input is what Decide needs to know about a request and this machine.
type Input struct {
	OnFly        bool   // FLY_APP_NAME is set
	ViaProxy     bool   // the request carries a header of Fly's proxy: it came through it
	ReplaySrc    bool   // fly-replay-src present: the proxy replayed it here
	ReplayFailed bool   // fly-replay-failed present: a fallback delivery
	Upgrade      bool   // a WebSocket upgrade
	Self         string // this machine's id
	Region       string // this machine's region
	Path         string // escaped URL path
	RawQuery     string
	Held         bool   // the candidate code's room lives here
	Probed       bool   // a peer probe has run for this request
	Holder       string // the peer that answered 200 to the probe, if any
	// MovedTo is the sibling this machine handed the candidate code's
	// room to moments ago (a hand-off on stop), "" otherwise.
	MovedTo string
	// HomeEmpty: no machine of the code's home region is running (so a
	// hand-off took its rooms to another region).
	HomeEmpty bool
	// PinGone: a replay to the pinned machine failed moments ago (it
	// stopped): the pin is ignored when the path has a code to route by.
	PinGone bool
	// SrcState is the state field of fly-replay-src: "moved" or "probe"
	// when the machine that replayed this request here had followed a
	// hand-off or a probe, "rendezvous" when it sent it to the machine
	// that decides its code. Such a request is not sent on again.
	SrcState string
	// Rendezvous is the machine of the code's region that decides a code
	// no machine holds (restores: docs/protocol.md "One owner"), "" when unknown
	// or tickets are off. Set only after a probe found no holder.
	Rendezvous string
}

// Decision is one of Serve, ReplayInstance, ReplayRegion, Redirect, Probe.
type Decision interface{ decision() }

// Serve handles the request here.
type Serve struct{}

// ReplayInstance asks the proxy to deliver the request to machine ID.
type ReplayInstance struct{ ID string }

// ReplayRegion asks the proxy to deliver the request to region R.
type ReplayRegion struct{ Region string }

// Redirect answers 302 with a relative Location.
type Redirect struct{ Location string }

// Probe asks the caller to probe same-region peers for Code, then decide
// again with Probed and Holder set.
type Probe struct{ Code string }

func (Serve) decision()          {}
func (ReplayInstance) decision() {}
func (ReplayRegion) decision()   {}
func (Redirect) decision()       {}
func (Probe) decision()          {}

func (d ReplayInstance) String() string { return "ReplayInstance{" + d.ID + "}" }
func (d ReplayRegion) String() string   { return "ReplayRegion{" + d.Region + "}" }
func (d Redirect) String() string       { return "Redirect{" + d.Location + "}" }
func (d Probe) String() string          { return "Probe{" + d.Code + "}" }
func (Serve) String() string            { return "Serve{}" }

// Decide applies the pin and code steps of the HTTP order (docs/deploys.md "How a
// player reaches the right machine (Fly)", steps 1 and 2), and
// follows rooms that a hand-off moved: a code whose room left this machine
// is replayed to its new holder, and a code whose home region has no
// machine running is probed for here, where the machines that list its
// region's codes are asked (Prober, away.go).
//
// Loop guards: with fly-replay-src there is no pin replay and no
// cross-region replay (a same-region instance hop is still allowed); with
// fly-replay-failed there is no replay of any kind. A request that did not
// come through the proxy (a peer's probe) is always served here, so probes
// never chain.
func Decide(in Input) Decision {
	if !in.OnFly || !in.ViaProxy {
		return Serve{}
	}
	// Followed once already (state in fly-replay-src): no chain.
	followed := in.SrcState == "moved" || in.SrcState == "probe" || in.SrcState == "rendezvous"
	if in.MovedTo != "" && in.MovedTo != in.Self && !in.ReplayFailed && !followed {
		// The room left with a hand-off: send the request after it,
		// pinned here or not. The holder serves it (it holds the code).
		return ReplayInstance{in.MovedTo}
	}
	fallback := in.ReplaySrc || in.ReplayFailed
	pin, pinned := Pin(in.RawQuery)
	if _, hasCode := CandidateCode(in.Path); pinned && in.PinGone && pin != in.Self && hasCode && !in.ReplayFailed {
		pinned = false // the code finds the room, wherever it went
	}
	if pinned {
		if pin == in.Self {
			return Serve{}
		}
		switch {
		case !fallback:
			return ReplayInstance{pin}
		case in.Upgrade:
			return Serve{}
		default:
			return Redirect{withoutInstance(in.Path, in.RawQuery)}
		}
	}
	code, ok := CandidateCode(in.Path)
	if !ok || !regions.Known(in.Region) {
		return Serve{}
	}
	home, ok := regions.HomeOf(code)
	switch {
	case !ok:
		return Serve{}
	case home != in.Region && fallback:
		return Serve{}
	case home != in.Region && !in.HomeEmpty:
		return ReplayRegion{home}
	case in.Held || in.ReplayFailed || followed:
		return Serve{}
	case !in.Probed:
		return Probe{code}
	case in.Holder != "" && in.Holder != in.Self:
		return ReplayInstance{in.Holder}
	case in.Holder == "" && in.Upgrade && in.Rendezvous != "" && in.Rendezvous != in.Self:
		// Held nowhere: a restore, if that is what comes, is decided by
		// one machine per code.
		return ReplayInstance{in.Rendezvous}
	}
	return Serve{}
}

// Pin returns the value of the instance query parameter. Only a value
// shaped like a machine id counts: anything else (empty, or a value that
// would add fields to the fly-replay header Fly's proxy obeys, such as
// "x;app=other") is ignored, as if absent.
func Pin(raw string) (string, bool) {
	q, _ := url.ParseQuery(raw)
	v := q.Get("instance")
	return v, MachineID(v)
}

// MachineID reports whether s is shaped like a Fly machine id: lower-case
// hex. Fly's are 14 characters today; the length is not promised, so 8 to
// 32 are accepted.
func MachineID(s string) bool {
	if len(s) < 8 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// withoutInstance is the same path and query minus every instance parameter.
func withoutInstance(path, raw string) string {
	var keep []string
	for _, part := range strings.Split(raw, "&") {
		key, _, _ := strings.Cut(part, "=")
		if k, err := url.QueryUnescape(key); part == "" || (err == nil && k == "instance") {
			continue
		}
		keep = append(keep, part)
	}
	// A Location that starts with two slashes (or a slash and a
	// backslash, which browsers read alike) names another host: keep one.
	path = "/" + strings.TrimLeft(path, "/\\")
	if len(keep) == 0 {
		return path
	}
	return path + "?" + strings.Join(keep, "&")
}

// APIActions are the server API's verbs: POST /room/<code>/<action>.
var APIActions = []string{"send", "state", "close"}

// APIPath splits /room/<code>/<action> for a server API action.
func APIPath(escapedPath string) (code, action string, ok bool) {
	rest, ok := strings.CutPrefix(escapedPath, "/room/")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", "", false
	}
	for _, a := range APIActions {
		if rest[i+1:] == a {
			code, err := url.PathUnescape(rest[:i])
			return code, a, err == nil
		}
	}
	return "", "", false
}

// CandidateCode extracts a room code from /<6 letters or digits> or
// /room/<anything> (percent-decoded), including a server API path
// /room/<code>/<action>. /health and /metrics are never codes.
func CandidateCode(escapedPath string) (string, bool) {
	if code, _, ok := APIPath(escapedPath); ok {
		return code, true
	}
	if rest, ok := strings.CutPrefix(escapedPath, "/room/"); ok {
		code, err := url.PathUnescape(rest)
		if err != nil {
			return "", false
		}
		return code, true
	}
	p := strings.TrimPrefix(escapedPath, "/")
	if len(p) != 6 || p == "health" || p == "metrics" {
		return "", false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return "", false
		}
	}
	return p, true
}

// ReplayHeader is the fly-replay value for a decision.
func ReplayHeader(d Decision) string {
	switch d := d.(type) {
	case ReplayInstance:
		return fmt.Sprintf("instance=%s;timeout=5s;fallback=force_self", d.ID)
	case ReplayRegion:
		return fmt.Sprintf("region=%s;timeout=5s;fallback=force_self", d.Region)
	}
	return ""
}
