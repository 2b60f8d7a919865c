package main

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

//go:embed report.html
var reportHTML string

var reportPage = template.Must(template.New("report").Parse(reportHTML))

// The timeline's geometry, in SVG pixels.
const (
	svgW, svgH = 1100, 340
	plotLeft   = 40
	plotTop    = 20
	plotBottom = 300
)

var palette = []string{"#4285f4", "#db4437", "#0f9d58", "#ab47bc", "#00acc1", "#ff7043", "#9e9d24", "#5c6bc0"}

type svgSeries struct {
	Name, Color, Points string
	Width               float64
	Dashed              bool
	KeyX, KeyTextX      int
}

type svgFault struct {
	X, Width, LabelY, LabelX float64
	Label, Anchor            string // a label near the right edge ends at its fault
}

type svgTick struct {
	X, Y  float64
	Label string
}

type svgBar struct {
	X, Y, Width, Height, Mid, CountY float64
	Count                            int
	Label                            string
}

type pageRow struct {
	Label string
	Cells []string
	Total bool
}

type pageMachine struct {
	ID, Region      string
	CPUSeconds, RSS float64
}

// html writes the self-contained report: no script, no request.
func (r *report) html(w io.Writer) error {
	span := max(r.End.Sub(r.Start).Seconds(), 1)
	x := func(t time.Time) float64 { return plotLeft + (svgW-plotLeft-10)*t.Sub(r.Start).Seconds()/span }
	top := 1
	for _, s := range r.Samples {
		top = max(top, s.Connected)
		for _, c := range s.Clients {
			top = max(top, c)
		}
	}
	y := func(v int) float64 { return plotBottom - float64(plotBottom-plotTop)*float64(v)/float64(top) }
	p := map[string]any{
		"W": svgW, "H": svgH, "PlotH": plotBottom - plotTop, "PlotBottom": plotBottom, "TickEnd": plotBottom + 5,
		"TickText": plotBottom + 18, "Broken": r.Broken, "RejoinCount": len(r.Rejoins),
		"Meta": fmt.Sprintf("%v × %v machines, %v players in %v rooms, %v; %s; started %s", len(r.Regions),
			r.Config["per_region"], r.Config["players"], r.Config["rooms"], r.Config["duration"], r.Config["cpus"],
			r.Start.UTC().Format(time.RFC3339)),
	}
	p["Series"] = r.series(x, y)
	var faults []svgFault
	for i, f := range r.Faults {
		ft := svgFault{X: x(f.Start), Width: max(2, x(f.End)-x(f.Start)), LabelY: 30 + float64(i%6)*12, Label: f.Label, Anchor: "start"}
		ft.LabelX = ft.X
		if ft.X > svgW*0.7 {
			ft.LabelX, ft.Anchor = min(ft.X+ft.Width, svgW-4), "end"
		}
		faults = append(faults, ft)
	}
	p["Faults"] = faults
	var ticks []svgTick
	for s := 0.0; s <= span; s += niceStep(span) {
		ticks = append(ticks, svgTick{X: x(r.Start.Add(time.Duration(s * float64(time.Second)))), Label: fmt.Sprintf("%.0fs", s)})
	}
	p["Ticks"] = ticks
	var yticks []svgTick
	for v := 0; v <= top; v += max(1, int(niceStep(float64(top)))) {
		yticks = append(yticks, svgTick{Y: y(v), Label: fmt.Sprint(v)})
	}
	p["YTicks"] = yticks
	p["Bars"] = rejoinBars(r.Rejoins)
	var heads []string
	for _, c := range columns {
		heads = append(heads, c.head)
	}
	p["Heads"] = heads
	var rows []pageRow
	for _, f := range append(append([]*figures{}, r.Slots...), r.Total) {
		row := pageRow{Label: f.Label, Total: f == r.Total}
		for _, c := range columns {
			row.Cells = append(row.Cells, c.cell(f))
		}
		rows = append(rows, row)
	}
	p["Rows"] = rows
	t := r.Total
	p["Summary"] = fmt.Sprintf("Rooms kept %d, lost %d (%d on a machine killed -9). Members who never joined: %d. "+
		"Rejoins in another slot: %d. Members not on their room's latest state at the end: %d.",
		t.RoomsKept, t.RoomsLost, t.RoomsLostToKill, t.NeverJoined, t.SlotMoves, t.StatesMissing)
	var ms []pageMachine
	for _, m := range r.Machines {
		ms = append(ms, pageMachine{m.ID, m.Region, m.CPUSeconds, float64(m.PeakRSS) / 1e6})
	}
	p["Machines"] = ms
	return reportPage.Execute(w, p)
}

// series is one polyline per region, and the drill's own count dashed.
func (r *report) series(x func(time.Time) float64, y func(int) float64) []svgSeries {
	var out []svgSeries
	key := plotLeft
	for i, region := range append(append([]string{}, r.Regions...), "") {
		var pts strings.Builder
		for _, s := range r.Samples {
			v := s.Connected
			if region != "" {
				v = s.Clients[region]
			}
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(s.At), y(v))
		}
		s := svgSeries{Name: region, Color: palette[i%len(palette)], Points: pts.String(), Width: 1.5, KeyX: key, KeyTextX: key + 14}
		if region == "" {
			s.Name, s.Color, s.Dashed, s.Width = "all players connected (drill's view)", "#333", true, 1
		}
		key += 30 + 7*len(s.Name)
		out = append(out, s)
	}
	return out
}

// niceStep is a round axis step for about eight ticks over span.
func niceStep(span float64) float64 {
	for _, s := range []float64{1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000} {
		if span/s <= 10 {
			return s
		}
	}
	return span / 10
}

// rejoinBuckets are the histogram's upper bounds.
var rejoinBuckets = []time.Duration{100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
	2 * time.Second, 3 * time.Second, 5 * time.Second, 10 * time.Second, 1<<63 - 1}

func rejoinBars(ds []time.Duration) []svgBar {
	counts := make([]int, len(rejoinBuckets))
	for _, d := range ds {
		for i, b := range rejoinBuckets {
			if d <= b {
				counts[i]++
				break
			}
		}
	}
	most := 1
	for _, c := range counts {
		most = max(most, c)
	}
	var out []svgBar
	w := float64(svgW-80) / float64(len(counts))
	for i, c := range counts {
		h := 170 * float64(c) / float64(most)
		label := "≤ " + rejoinBuckets[i].String()
		if i == len(counts)-1 {
			label = "> " + rejoinBuckets[i-1].String()
		}
		bx := 40 + float64(i)*w
		out = append(
			out,
			svgBar{X: bx + 4, Y: 190 - h, Width: w - 8, Height: h, Mid: bx + w/2, CountY: 186 - h, Count: c, Label: label},
		)
	}
	return out
}
