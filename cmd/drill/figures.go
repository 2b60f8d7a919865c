package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// finalState is the k of the state every host sets once play has
// stopped: every member still in its room must end on it.
const finalState = 1 << 30

// figures are the drill's counts for one fault's slot (from its start to
// the next fault's) or for the whole night.
type figures struct {
	Label string `json:"label"`

	RoomsLost       int `json:"rooms_lost"`
	RoomsLostToKill int `json:"rooms_lost_to_kill"` // their code was on a machine killed -9, lost in the kill's slot
	// of those, rooms none of whose members held the tickets, or whose
	// host held none (old-relay clients): the README's limit
	RoomsLostNoTickets int `json:"rooms_lost_no_tickets"`
	RoomsLostInDNS     int `json:"rooms_lost_in_dns"` // lost in a rolling deploy with the DNS down (a known limit)
	RoomsKept          int `json:"rooms_kept"`        // in the total only
	NeverJoined        int `json:"never_joined"`      // members whose first create or join failed

	EndedRecover int `json:"ended_recover"`  // members who opted in to recovery and ended for good
	EndedOld     int `json:"ended_old"`      // old-relay members who ended for good
	EndedInLimit int `json:"ended_in_limit"` // of those, members of rooms lost to a known limit the flags allow

	LostRecover       int `json:"lost_recover"`        // messages a recovery member never got
	LostRecoverFailed int `json:"lost_recover_failed"` // of those, in an outage that rejoined with recovered: false
	LostOld           int `json:"lost_old"`            // messages an old-relay member never got
	DupRecover        int `json:"dup_recover"`
	DupOld            int `json:"dup_old"`
	ReorderRecover    int `json:"reorder_recover"`
	ReorderOld        int `json:"reorder_old"`
	StateGaps         int `json:"state_gaps"`     // states a recovery member skipped, outside recovered: false
	StatesMissing     int `json:"states_missing"` // members who did not end on their room's latest state (total only)
	RecoveryFailed    int `json:"recovery_failed"`
	SlotMoves         int `json:"slot_moves"`
	NotFound          int `json:"room_not_found"`

	Rejoins   int     `json:"rejoins"`
	RejoinP50 float64 `json:"rejoin_p50_s"`
	RejoinP99 float64 `json:"rejoin_p99_s"`
	RejoinMax float64 `json:"rejoin_max_s"`
	PeakRSS   int64   `json:"peak_rss"` // the largest machine's, in the slot
	rejoinSet []time.Duration
}

// analysis turns what every member saw into figures per fault and in
// total.
type analysis struct {
	faults    []*fault
	end       time.Time // play and settle over
	killLoses bool      // rooms lost to a kill -9 are the README's known limit
	dnsLoses  bool      // and so are rooms lost in a rolling deploy with the DNS down
	held      map[*room]bool
	lastSeen  map[string]time.Time // room code → the last time a machine listed it
	slots     []*figures           // one per fault, in order
	endedOut  []string             // recovery members who ended outside a known limit: who, where, why
	lostOut   []string             // first messages recovery members lost outside recovered: false, with their history
	before    *figures             // before the first fault
	total     *figures
}

// slot is the figures a moment belongs to: the last fault started by then.
func (a *analysis) slot(t time.Time) *figures {
	out := a.before
	for i, f := range a.faults {
		if !t.Before(f.Start) {
			out = a.slots[i]
		}
	}
	return out
}

// add applies fn to the moment's slot and to the total.
func (a *analysis) add(t time.Time, fn func(*figures)) { fn(a.slot(t)); fn(a.total) }

func analyse(
	pop *population,
	faults []*fault,
	held map[*room]bool,
	lastSeen map[string]time.Time,
	samples []sample,
	end time.Time,
	killLoses, dnsLoses bool,
) *analysis {
	a := &analysis{faults: faults, end: end, killLoses: killLoses, dnsLoses: dnsLoses, held: held, lastSeen: lastSeen,
		before: &figures{Label: "before the first fault"}, total: &figures{Label: "total"}}
	for _, f := range faults {
		a.slots = append(a.slots, &figures{Label: f.Label})
	}
	killed := map[string]bool{}
	for _, f := range faults {
		for _, c := range f.Killed {
			killed[c] = true
		}
	}
	for _, rm := range pop.rooms {
		a.room(rm, killed[rm.code])
	}
	for _, s := range samples {
		for _, rss := range s.RSS {
			fig := a.slot(s.At)
			fig.PeakRSS, a.total.PeakRSS = max(fig.PeakRSS, rss), max(a.total.PeakRSS, rss)
		}
	}
	for _, fig := range append(append([]*figures{a.before}, a.slots...), a.total) {
		fig.finish()
	}
	return a
}

// anyTickets reports whether a member of rm holds the room's tickets:
// the drill's recovery members, unless -tickets=false.
func anyTickets(rm *room) bool {
	for _, m := range rm.members {
		if m.tickets {
			return true
		}
	}
	return false
}

// faultAt is the fault whose slot t is in, nil before the first.
func (a *analysis) faultAt(t time.Time) *fault {
	var out *fault
	for _, f := range a.faults {
		if !t.Before(f.Start) {
			out = f
		}
	}
	return out
}

func (a *analysis) room(rm *room, onKilled bool) {
	allowed := false // lost to a known limit the flags allow
	if a.held[rm] {
		a.total.RoomsKept++
	} else if rm.code != "" {
		// Lost when its machine last listed it; else when its first
		// member ended (a room of the relay's old clients may go before).
		// (a sample a second: it went in the second after).
		at, seen := a.lastSeen[rm.code]
		at = at.Add(time.Second)
		if !seen {
			at = a.end
			for _, m := range rm.members {
				if e := endedAt(m); !e.IsZero() && e.Before(at) {
					at = e
				}
			}
		}
		// Lost to the kill when it went in the kill's slot: a room that
		// came back from its ticket and was lost later is not the kill's,
		// unless its host held no ticket (an old-relay client does not
		// come back: the rebuilt room ends with the host's grace).
		f := a.faultAt(at)
		inKill := onKilled && (f != nil && f.Kind == faultKill || !rm.members[0].tickets)
		inDNS := !inKill && f != nil && f.Kind == faultDNSDeploy
		// A room none of whose members holds a ticket (the relay's old
		// clients), or whose host holds none, cannot come back from a
		// kill -9: the README's limit.
		allowed = (inKill && (a.killLoses || !anyTickets(rm) || !rm.members[0].tickets)) || (inDNS && a.dnsLoses)
		a.add(at, func(f *figures) {
			f.RoomsLost++
			if inKill {
				f.RoomsLostToKill++
				if !anyTickets(rm) || !rm.members[0].tickets {
					f.RoomsLostNoTickets++
				}
			}
			if inDNS {
				f.RoomsLostInDNS++
			}
		})
	}
	for _, m := range rm.members {
		a.member(m, allowed)
		if e := m.ended; e != nil && m.recover && !allowed {
			a.endedOut = append(a.endedOut, a.describeEnd(rm, m))
		}
	}
	a.messages(rm)
	a.finalStates(rm)
	got := map[int]bool{} // the states some member got: the others reached the server
	for _, m := range rm.members {
		for _, d := range m.states {
			got[d.n] = true
		}
	}
	for _, m := range rm.members {
		if m.recover {
			a.stateGaps(m, got)
		}
	}
}

func (a *analysis) member(m *member, allowed bool) {
	if m.joined.IsZero() {
		a.total.NeverJoined++
		return
	}
	if e := endedAt(m); !e.IsZero() {
		a.add(e, func(f *figures) {
			if m.recover {
				f.EndedRecover++
			} else {
				f.EndedOld++
			}
			if allowed && m.recover {
				f.EndedInLimit++
			}
		})
	}
	for _, r := range m.rejoins {
		a.add(r.drop, func(f *figures) { f.Rejoins++; f.rejoinSet = append(f.rejoinSet, r.took) })
	}
	for _, t := range m.notFound {
		a.add(t, func(f *figures) { f.NotFound++ })
	}
	for _, ep := range m.failed {
		a.add(ep.from, func(f *figures) { f.RecoveryFailed++ })
	}
	a.total.SlotMoves += m.slotMoves
}

// describeEnd says which member of which room ended, how, and in which
// fault's slot, so a broken promise can be followed into the fleet's log.
func (a *analysis) describeEnd(rm *room, m *member) string {
	who, fate := "player", "kept"
	if m.host {
		who = "host"
	}
	if !a.held[rm] {
		fate = "lost"
	}
	label := "before the first fault"
	if f := a.faultAt(endedAt(m)); f != nil {
		label = f.Label
	}
	return fmt.Sprintf("%s %d of room %s (home %s, %s) via %s: %q (final %v) at %s, dropped at %s, in %q",
		who, m.index, rm.code, rm.home, fate, m.edge, m.ended.reason, m.ended.final,
		m.ended.at.Format("15:04:05.000"), m.lastDrop.Format("15:04:05.000"), label)
}

// endedAt is when a member that ended for good lost its room: the start
// of the outage it never came back from (zero: it did not end).
func endedAt(m *member) time.Time {
	if m.ended == nil {
		return time.Time{}
	}
	if !m.lastDrop.IsZero() {
		return m.lastDrop
	}
	return m.ended.at
}

// inFailed reports whether t falls in one of m's outages that rejoined
// with recovered: false (a second either side: the moments are measured
// at different ends).
func inFailed(m *member, t time.Time) bool {
	for _, ep := range m.failed {
		if t.After(ep.from.Add(-time.Second)) && t.Before(ep.to.Add(time.Second)) {
			return true
		}
	}
	return false
}

// span is when m was in its room: from its first joined to the end, or to
// the start of the outage it never came back from.
func (a *analysis) span(m *member) (from, to time.Time) {
	to = a.end
	if m.ended != nil {
		to = m.lastDrop
		if to.IsZero() {
			to = m.ended.at
		}
	}
	return m.joined, to
}

// messages counts, for every receiver and sender in the room, what the
// receiver never got of what the server relayed to someone while the
// receiver was in the room, what it got twice and what came out of order.
func (a *analysis) messages(rm *room) {
	delivered := map[int]map[int]time.Time{} // sender slot → n → first delivery anywhere
	for _, m := range rm.members {
		for from, ds := range m.recvs {
			if delivered[from] == nil {
				delivered[from] = map[int]time.Time{}
			}
			for _, d := range ds {
				if t, ok := delivered[from][d.n]; !ok || d.at.Before(t) {
					delivered[from][d.n] = d.at
				}
			}
		}
	}
	for _, r := range rm.members {
		if r.joined.IsZero() {
			continue
		}
		from, to := a.span(r)
		for sender, sent := range delivered {
			if sender == r.index {
				continue
			}
			a.pair(r, r.recvs[sender], sent, from, to)
		}
	}
}

func (a *analysis) pair(r *member, got []delivery, sent map[int]time.Time, from, to time.Time) {
	seen := map[int]bool{}
	lo, hi, top := 0, 0, 0
	for i, d := range got {
		switch {
		case seen[d.n]:
			a.add(d.at, func(f *figures) { count(r.recover, &f.DupRecover, &f.DupOld) })
		case d.n < top:
			a.add(d.at, func(f *figures) { count(r.recover, &f.ReorderRecover, &f.ReorderOld) })
		}
		seen[d.n], top = true, max(top, d.n)
		if i == 0 || d.n < lo {
			lo = d.n
		}
		hi = max(hi, d.n)
	}
	const margin = time.Second // the two ends measure the moments differently
	for n, at := range sent {
		inSpan := at.After(from.Add(margin)) && at.Before(to.Add(-margin))
		between := len(got) > 0 && n > lo && n < hi
		if seen[n] || !(inSpan || between) {
			continue
		}
		failed := r.recover && inFailed(r, at)
		if r.recover && !failed && len(a.lostOut) < maxLostOut {
			a.lostOut = append(a.lostOut, describeLoss(r, n, at))
		}
		a.add(at, func(f *figures) {
			count(r.recover, &f.LostRecover, &f.LostOld)
			if failed {
				f.LostRecoverFailed++
			}
		})
	}
}

// maxLostOut bounds the losses report.json describes.
const maxLostOut = 40

// describeLoss is one message a recovery member lost outside a
// recovered: false rejoin: the message, when another member got it, and
// the member's drops and rejoins.
func describeLoss(r *member, n int, at time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "room %s slot %d lost message %d (first delivered at %s); joined %s",
		r.room.code, r.index, n, at.Format("15:04:05.000"), r.joined.Format("15:04:05.000"))
	for _, j := range r.rejoins {
		fmt.Fprintf(&b, "; dropped %s, back after %v", j.drop.Format("15:04:05.000"), j.took.Round(time.Millisecond))
	}
	for _, e := range r.failed {
		fmt.Fprintf(&b, "; recovered: false for %s-%s", e.from.Format("15:04:05.000"), e.to.Format("15:04:05.000"))
	}
	return b.String()
}

// count adds one to the recovery member's counter or the old client's.
func count(recover bool, rec, old *int) {
	if recover {
		*rec++
	} else {
		*old++
	}
}

// stateGaps counts states a recovery member skipped (every state frame is
// numbered for it) outside outages that rejoined with recovered: false.
// A state no member got never reached the server (the host's socket died
// with it), and is no gap.
func (a *analysis) stateGaps(m *member, got map[int]bool) {
	for i := 1; i < len(m.states); i++ {
		prev, cur := m.states[i-1].n, m.states[i]
		if cur.n == finalState || cur.n <= prev+1 || inFailed(m, cur.at) {
			continue
		}
		missed := 0
		for k := prev + 1; k < cur.n; k++ {
			if got[k] {
				missed++
			}
		}
		if missed > 0 {
			a.add(cur.at, func(f *figures) { f.StateGaps += missed })
		}
	}
}

// finalStates holds every member still in a kept room to the final state,
// when its host set it (a host that ended sets none).
func (a *analysis) finalStates(rm *room) {
	if !a.held[rm] || !rm.members[0].finalSet {
		return
	}
	for _, m := range rm.members[1:] {
		if !m.joined.IsZero() && m.ended == nil && m.latestState() != finalState {
			a.total.StatesMissing++
		}
	}
}

func (f *figures) finish() {
	if len(f.rejoinSet) == 0 {
		return
	}
	slices.Sort(f.rejoinSet)
	q := func(p float64) float64 {
		return f.rejoinSet[min(len(f.rejoinSet)-1, int(p*float64(len(f.rejoinSet))))].Seconds()
	}
	f.RejoinP50, f.RejoinP99, f.RejoinMax = q(0.50), q(0.99), f.rejoinSet[len(f.rejoinSet)-1].Seconds()
}
