package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"
)

// report is everything the drill writes.
type report struct {
	Config   map[string]any `json:"config"`
	Faults   []*fault       `json:"faults"`
	Slots    []*figures     `json:"per_fault"` // before the first fault, then one per fault
	Total    *figures       `json:"total"`
	Machines []machineUse   `json:"machines"`
	Samples  []sample       `json:"timeline"`
	Regions  []string       `json:"regions"`
	Start    time.Time      `json:"start"`
	End      time.Time      `json:"end"`
	Broken   []string       `json:"broken"`
	// LostRooms says, for each room lost, how each member ended.
	LostRooms []lostRoom `json:"lost_rooms"`
	// EndedOutside names each recovery member that ended for good outside
	// a room lost to a known limit (the "members ended" promise).
	EndedOutside []string `json:"ended_outside_limits"`
	// LostOutside names the first messages recovery members lost outside
	// a recovered: false rejoin, with each member's drops and rejoins.
	LostOutside []string        `json:"lost_outside_recovery_failed"`
	Rejoins     []time.Duration `json:"-"`
}

// promises are the README's correctness promises the drill can break
// (timings and memory are reported, not gated: they belong to benchmarks
// on a shared machine). Each broken one is a sentence saying which.
func promises(t *figures, killLoses, dnsLoses bool) []string {
	var out []string
	lost, ended := t.RoomsLost, t.EndedRecover-t.EndedInLimit
	if killLoses {
		lost -= t.RoomsLostToKill
	} else {
		// docs/protocol.md "Crash-proof rooms": a room whose members hold
		// no ticket (old-relay clients) is lost to a kill -9.
		lost -= t.RoomsLostNoTickets
	}
	if dnsLoses {
		// docs/testing.md "The game-night drill": a known limit, with its figure.
		lost -= t.RoomsLostInDNS
	}
	if lost > 0 {
		out = append(out, fmt.Sprintf("rooms: %d lost (README: deploys, stops, freezes, DNS outages and cuts keep every room; "+
			"-kill-loses-rooms=%v, -dns-deploy-loses-rooms=%v)", lost, killLoses, dnsLoses))
	}
	if t.NeverJoined > 0 {
		out = append(out, fmt.Sprintf("rooms: %d members could not create or join at the start (a join by code "+
			"through any edge reaches the room)", t.NeverJoined))
	}
	if t.SlotMoves > 0 {
		out = append(out, fmt.Sprintf("slots: %d rejoins landed in another slot (a rejoin with the same clientId takes its slot back)",
			t.SlotMoves))
	}
	if n := t.LostRecover - t.LostRecoverFailed; n > 0 {
		out = append(out, fmt.Sprintf("messages: members who opted in to recovery lost %d messages outside a recovered: false "+
			"rejoin (no gap, no duplicate)", n))
	}
	if d := t.DupRecover + t.DupOld + t.ReorderRecover + t.ReorderOld; d > 0 {
		out = append(out, fmt.Sprintf("messages: %d duplicated and %d reordered (recovery members %d and %d)",
			t.DupRecover+t.DupOld, t.ReorderRecover+t.ReorderOld, t.DupRecover, t.ReorderRecover))
	}
	if t.StateGaps > 0 {
		out = append(out, fmt.Sprintf("states: members who opted in to recovery skipped %d states (every state frame is numbered "+
			"and recovered)", t.StateGaps))
	}
	if t.StatesMissing > 0 {
		out = append(out, fmt.Sprintf("states: %d members did not end on their room's latest state (it is sent after every joined)",
			t.StatesMissing))
	}
	if ended > 0 {
		out = append(out, fmt.Sprintf("members ended: %d who opted in to recovery ended for good, outside rooms lost to a known limit "+
			"(our clients reconnect and wait for a moving room)", ended))
	}
	return out
}

type lostRoom struct {
	Code    string   `json:"code"`
	Home    string   `json:"home"`
	Members []string `json:"members"` // "host rec: room not found at 12.3s (dropped at 2.1s)"
}

func lostRooms(pop *population, held map[*room]bool) []lostRoom {
	var out []lostRoom
	for _, rm := range pop.rooms {
		if rm.code == "" || held[rm] {
			continue
		}
		lr := lostRoom{Code: rm.code, Home: rm.home}
		for _, m := range rm.members {
			who := "player"
			if m.host {
				who = "host"
			}
			if m.recover {
				who += " rec"
			} else {
				who += " old"
			}
			switch e := m.ended; {
			case e == nil:
				lr.Members = append(lr.Members, who+" via "+m.edge+": still playing")
			default:
				lr.Members = append(lr.Members, fmt.Sprintf("%s via %s: %s at %s (dropped at %s)", who, m.edge, e.reason,
					e.at.Format("15:04:05.000"), m.lastDrop.Format("15:04:05.000")))
			}
		}
		out = append(out, lr)
	}
	return out
}

func (r *report) write(dir string) error {
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), b, 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "report.html"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := r.html(f); err != nil {
		return err
	}
	fmt.Printf("drill: report in %s\n", f.Name())
	return nil
}

// columns of the figures table, shared by the text and the HTML report.
var columns = []struct {
	head string
	cell func(*figures) string
}{
	{"rooms lost (kill, dns)", func(f *figures) string {
		return fmt.Sprintf("%d (%d, %d)", f.RoomsLost, f.RoomsLostToKill, f.RoomsLostInDNS)
	}},
	{"ended rec/old", func(f *figures) string { return fmt.Sprintf("%d/%d", f.EndedRecover, f.EndedOld) }},
	{"lost rec (rf) / old", func(f *figures) string {
		return fmt.Sprintf("%d (%d) / %d", f.LostRecover, f.LostRecoverFailed, f.LostOld)
	}},
	{"dup rec/old", func(f *figures) string { return fmt.Sprintf("%d/%d", f.DupRecover, f.DupOld) }},
	{"reord rec/old", func(f *figures) string { return fmt.Sprintf("%d/%d", f.ReorderRecover, f.ReorderOld) }},
	{"state gaps", func(f *figures) string { return fmt.Sprint(f.StateGaps) }},
	{"rec. false", func(f *figures) string { return fmt.Sprint(f.RecoveryFailed) }},
	{"rejoins", func(f *figures) string { return fmt.Sprint(f.Rejoins) }},
	{"rejoin p50/p99/max s", func(f *figures) string {
		return fmt.Sprintf("%.2f/%.2f/%.2f", f.RejoinP50, f.RejoinP99, f.RejoinMax)
	}},
	{"Room not found", func(f *figures) string { return fmt.Sprint(f.NotFound) }},
	{"peak RSS MB", func(f *figures) string { return fmt.Sprintf("%.0f", float64(f.PeakRSS)/1e6) }},
}

func (r *report) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "fault\t")
	for _, c := range columns {
		fmt.Fprint(tw, c.head+"\t")
	}
	fmt.Fprintln(tw)
	for _, f := range append(append([]*figures{}, r.Slots...), r.Total) {
		fmt.Fprint(tw, f.Label+"\t")
		for _, c := range columns {
			fmt.Fprint(tw, c.cell(f)+"\t")
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	t := r.Total
	fmt.Fprintf(w, "rooms kept %d, lost %d (%d were on a machine killed -9); members who never joined %d; slot moves %d; "+
		"members not on their room's latest state at the end %d\n",
		t.RoomsKept, t.RoomsLost, t.RoomsLostToKill, t.NeverJoined, t.SlotMoves, t.StatesMissing)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "machine\tregion\tCPU s\tpeak RSS MB\t")
	for _, m := range r.Machines {
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t\n", m.ID, m.Region, m.CPUSeconds, float64(m.PeakRSS)/1e6)
	}
	tw.Flush()
}
