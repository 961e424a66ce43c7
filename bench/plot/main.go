// Command plot draws the round-trip latency chart of the mmipc benchmarks from the driver's
// results.json: one panel per placement, bars of p50 latency per mechanism grouped by payload
// size on a log scale, with a p99 whisker on each bar; and, when the run measured the message
// ring's one-way throughput, a second row of panels with the ns per message of each mechanism.
//
//	go run . -in ../../build/bench/results.json -out ../../build/bench/latency.png
//
// A separate module, so that gonum stays out of the library's go.mod.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// results is the part of results.json the chart needs.
type results struct {
	Machine struct {
		CPUModel  string `json:"cpu_model"`
		Cores     int    `json:"cores"`
		Kernel    string `json:"kernel"`
		Date      string `json:"date"`
		LoadStart string `json:"loadavg_start"`
	} `json:"machine"`
	Config struct {
		Smoke bool `json:"smoke"`
	} `json:"config"`
	Measurements []struct {
		ID        string  `json:"id"`
		P50       float64 `json:"p50"`
		P99       float64 `json:"p99"`
		Runs      int     `json:"runs"`
		Status    string  `json:"status"`
		RoundTrip *meta   `json:"round_trip"`
		RingTput  *meta   `json:"ring_tput"`
	} `json:"measurements"`
}

// meta is the driver's description of a round trip or a ring throughput.
type meta struct {
	Mechanism string `json:"mechanism"`
	Size      int    `json:"size"`
	Placement string `json:"placement"`
}

// series is one mechanism: its bars share a colour in every panel.
type series struct {
	mech, label string
	color       color.Color
}

func rgb(hex uint32) color.Color {
	return color.RGBA{uint8(hex >> 16), uint8(hex >> 8), uint8(hex), 255}
}

// Shared memory in blues and greens (mmipc dark, the raw-mmap limit light), kernel paths in
// warm colours.
var allSeries = []series{
	{"mmipc-spin", "mmipc, spin", rgb(0x1f5fa8)},
	{"raw-spin", "raw mmap, spin", rgb(0x9cc3e6)},
	{"mmipc-spin-gopeer", "mmipc, spin, Go peer", rgb(0x6a3d9a)},
	{"mmipc-futex", "mmipc, futex", rgb(0x2b8a3e)},
	{"raw-futex", "raw mmap, futex", rgb(0xa6d9a0)},
	{"pipe", "pipe", rgb(0xf08c00)},
	{"uds", "Unix socket", rgb(0xd6336c)},
	{"mq", "POSIX mq", rgb(0x8c564b)},
	{"mmipc-ring", "mmipc ring, blocking", rgb(0x0b2e59)},
	{"mmipc-ring-gopeer", "mmipc ring, Go responder", rgb(0xb197fc)},
	// The message ring's competitors (bench/peers).
	{"iceoryx2", "iceoryx2", rgb(0x0ca678)},
	{"iceoryx", "iceoryx", rgb(0x5c940d)},
	{"boost-mq", "Boost message_queue", rgb(0x495057)},
	{"zmq-ipc", "ZeroMQ ipc", rgb(0xfab005)},
}

// tputSeries are the bars of the throughput panels (ns per 64 B message, one way).
var tputSeries = []series{
	{"mmipc-ring", "mmipc ring, blocking", rgb(0x0b2e59)},
	{"raw-spsc", "raw SPSC ring, spin", rgb(0x99e9f2)},
	{"mmipc-ring-c2go", "mmipc ring, C->Go", rgb(0x7048e8)},
	{"mmipc-ring-go2c", "mmipc ring, Go->C", rgb(0xd0bfff)},
	{"uds", "Unix socket", rgb(0xd6336c)},
	{"iceoryx2", "iceoryx2", rgb(0x0ca678)},
	{"iceoryx", "iceoryx", rgb(0x5c940d)},
	{"boost-mq", "Boost message_queue", rgb(0x495057)},
	{"zmq-ipc", "ZeroMQ ipc", rgb(0xfab005)},
}

// otherColors colour the mechanisms the lists above do not know (the competitors' rings of
// bench/peers), in the order they appear.
var otherColors = []color.Color{rgb(0xe64980), rgb(0x1098ad), rgb(0xfd7e14), rgb(0x862e9c), rgb(0x74b816),
	rgb(0x868e96)}

var placements = []struct{ key, title string }{
	{"unpinned", "unpinned (the scheduler places both)"},
	{"2cores", "2 cores (pinned to CPU 0 and CPU 1)"},
	{"1core", "1 core (both pinned to CPU 0)"},
}

type bar struct {
	s        series
	p50, p99 float64
}

// groupedBars draws, for each payload size (x = 0, 1, 2...), the bars of the mechanisms measured
// at that size side by side. Bars rise from the bottom of the axis: a log scale has no zero.
type groupedBars struct {
	groups [][]bar
	yMax   float64 // whiskers above it are clipped and marked
	slots  int     // bar slots per group: the most bars any group of the chart has
}

func (g *groupedBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	catW := trX(1) - trX(0)
	if len(g.groups) == 1 { // one group fills the panel: p.X spans -0.5 to 0.5
		catW = trX(0.5) - trX(-0.5)
	}
	slot := catW * 0.86 / vg.Length(max(g.slots, 1))
	bottom := trY(p.Y.Min)
	whisker := draw.LineStyle{Color: color.Gray{40}, Width: vg.Points(1.2)}
	for x, bars := range g.groups {
		left := trX(float64(x)) - slot*vg.Length(len(bars))/2
		for i, b := range bars {
			x0 := left + slot*vg.Length(i) + slot*0.08
			x1 := x0 + slot*0.84
			top := trY(b.p50)
			c.FillPolygon(b.s.color, []vg.Point{{X: x0, Y: bottom}, {X: x0, Y: top}, {X: x1, Y: top}, {X: x1, Y: bottom}})
			if b.p99 > b.p50 {
				mid := (x0 + x1) / 2
				y := trY(math.Min(b.p99, g.yMax))
				c.StrokeLine2(whisker, mid, top, mid, y)
				if b.p99 <= g.yMax {
					c.StrokeLine2(whisker, mid-slot*0.25, y, mid+slot*0.25, y)
				} else { // an arrow head: the p99 is off the chart
					c.StrokeLine2(whisker, mid-slot*0.25, y-vg.Points(5), mid, y)
					c.StrokeLine2(whisker, mid+slot*0.25, y-vg.Points(5), mid, y)
				}
			}
		}
	}
}

// human labels a latency in ns with its unit.
func human(ns float64) string {
	f := func(v float64, unit string) string {
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v), "0"), ".") + " " + unit
	}
	switch {
	case ns < 1e3:
		return f(ns, "ns")
	case ns < 1e6:
		return f(ns/1e3, "µs")
	case ns < 1e9:
		return f(ns/1e6, "ms")
	}
	return f(ns/1e9, "s")
}

// logTicks labels 1, 2 and 5 times each power of ten (and marks the rest as minor ticks),
// in ns, µs, ms.
func logTicks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(min)); e <= math.Ceil(math.Log10(max)); e++ {
		for m := 1.0; m < 10; m++ {
			v := m * math.Pow(10, e)
			if v < min*0.999 || v > max*1.001 {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = human(v)
			}
			ts = append(ts, t)
		}
	}
	return ts
}

// step125 returns the largest 1, 2 or 5 times a power of ten not above v.
func step125(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{5, 2, 1} {
		if m*p <= v {
			return m * p
		}
	}
	return p
}

func sizeLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func main() {
	in := flag.String("in", "results.json", "the benchmark driver's results.json")
	out := flag.String("out", "latency.png", "the PNG to write")
	width := flag.Int("width", 1600, "image width in pixels")
	height := flag.Int("height", 0, "image height in pixels (default 900, 1420 with the ring throughput row)")
	flag.Parse()
	if err := run(*in, *out, *width, *height); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
	fmt.Println("wrote", *out)
}

// chartRow is one row of panels (one per placement): round trips by payload, or ring
// throughputs.
type chartRow struct {
	series  []series // the mechanisms with a bar somewhere in the row, in bar order
	plots   []*plot.Plot
	yLabel  string
	missing []string
}

// buildRow makes the panels of the measurements pick describes (nil: not in this row). Known
// mechanisms come first, in their list's order; others (the competitors' rings) follow in the
// order they appear, coloured from otherColors through colorOf, shared by both rows.
func buildRow(res *results, pick func(i int) *meta, known []series, colorOf func(string) color.Color,
	xLabel, yLabel string, sizeTick func(int) string) (chartRow, bool) {
	type key struct {
		place, mech string
		size        int
	}
	row := chartRow{yLabel: yLabel}
	data := map[key]bar{}
	var sizes []int
	order := slices.Clone(known)
	seriesOf := map[string]series{}
	for _, s := range known {
		seriesOf[s.mech] = s
	}
	for i, m := range res.Measurements {
		md := pick(i)
		if md == nil {
			continue
		}
		s, ok := seriesOf[md.Mechanism]
		if !ok {
			s = series{md.Mechanism, md.Mechanism, colorOf(md.Mechanism)}
			seriesOf[s.mech] = s
			order = append(order, s)
		}
		if m.Status != "ok" || !(m.P50 > 0) {
			row.missing = append(row.missing, m.ID)
			continue
		}
		data[key{md.Placement, md.Mechanism, md.Size}] = bar{s, m.P50, m.P99}
		if !slices.Contains(sizes, md.Size) {
			sizes = append(sizes, md.Size)
		}
	}
	if len(data) == 0 {
		return row, false
	}
	slices.Sort(sizes)

	// One y range for every panel of the row, so that bars compare across panels.
	lo, hiP50, hiP99 := math.Inf(1), 0.0, 0.0
	for _, b := range data {
		lo, hiP50, hiP99 = math.Min(lo, b.p50), math.Max(hiP50, b.p50), math.Max(hiP99, b.p99)
	}
	yMin := step125(lo * 0.7)
	// A p99 far above every p50 (a preempted run) would flatten the bars: clip whiskers at 30x.
	yMax := math.Max(math.Min(hiP99, hiP50*30), hiP50) * 1.15

	used := map[string]bool{}
	var groups [][][]bar // [panel][size][bar]
	slots := 0
	for _, pl := range placements {
		var gs [][]bar
		for _, size := range sizes {
			var bars []bar
			for _, s := range order {
				if b, ok := data[key{pl.key, s.mech, size}]; ok {
					bars = append(bars, b)
					used[s.mech] = true
				}
			}
			slots = max(slots, len(bars))
			gs = append(gs, bars)
		}
		groups = append(groups, gs)
	}
	for _, s := range order {
		if used[s.mech] {
			row.series = append(row.series, s)
		}
	}
	for i := range placements {
		p := plot.New()
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.TickerFunc(logTicks)
		p.Y.Min, p.Y.Max = yMin, yMax
		p.X.Min, p.X.Max = -0.5, float64(len(sizes))-0.5
		p.X.Padding, p.Y.Padding = 0, 0
		p.X.Label.Text = xLabel
		p.X.Label.TextStyle.Font.Size = vg.Points(12)
		p.X.Tick.Label.Font.Size = vg.Points(12)
		p.Y.Tick.Label.Font.Size = vg.Points(11)
		var ticks []plot.Tick
		for x, size := range sizes {
			ticks = append(ticks, plot.Tick{Value: float64(x), Label: sizeTick(size)})
		}
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
		grid := plotter.NewGrid()
		grid.Vertical.Color = nil
		grid.Horizontal.Color = color.Gray{215}
		p.Add(grid, &groupedBars{groups: groups[i], yMax: yMax, slots: slots})
		row.plots = append(row.plots, p)
	}
	return row, true
}

func run(in, out string, width, height int) error {
	b, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var res results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("%s: %v", in, err)
	}
	others := map[string]color.Color{}
	colorOf := func(mech string) color.Color {
		if c, ok := others[mech]; ok {
			return c
		}
		c := otherColors[len(others)%len(otherColors)]
		others[mech] = c
		return c
	}
	rtRow, ok := buildRow(&res, func(i int) *meta { return res.Measurements[i].RoundTrip }, allSeries, colorOf,
		"payload each way", "round-trip latency, p50 (log scale)", sizeLabel)
	if !ok {
		return fmt.Errorf("%s has no round-trip measurement", in)
	}
	rows := []chartRow{rtRow}
	tputRow, ok := buildRow(&res, func(i int) *meta { return res.Measurements[i].RingTput }, tputSeries, colorOf,
		"message ring, one way, one sender and one receiver process", "ns per message, p50 (log scale)",
		func(n int) string { return sizeLabel(n) + " messages" })
	if ok {
		rows = append(rows, tputRow)
	}
	if height <= 0 {
		height = 900 + 520*(len(rows)-1)
	}
	var plots [][]*plot.Plot
	var missing []string
	for _, r := range rows {
		plots = append(plots, r.plots)
		missing = append(missing, r.missing...)
	}

	const dpi = 96
	w, h := vg.Length(width)*vg.Inch/dpi, vg.Length(height)*vg.Inch/dpi
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())

	text := func(size vg.Length, clr color.Color) draw.TextStyle {
		return draw.TextStyle{Color: clr, Font: font.From(plot.DefaultFont, size), Handler: plot.DefaultTextHandler,
			XAlign: draw.XLeft, YAlign: draw.YTop}
	}
	margin := vg.Points(14)
	y := h - margin
	title := text(vg.Points(19), color.Black)
	date := res.Machine.Date
	if t, err := time.Parse(time.RFC3339, date); err == nil {
		date = t.Format("2006-01-02 15:04 MST")
	}
	head := "mmipc round-trip latency by mechanism and payload"
	if len(rows) > 1 {
		head += "; message ring throughput"
	}
	if res.Config.Smoke {
		head += " (smoke run: a few iterations, not a measurement)"
	}
	dc.FillText(title, vg.Point{X: margin, Y: y}, head)
	y -= title.Height(head) + vg.Points(4)
	sub := text(vg.Points(12), color.Gray{60})
	line := fmt.Sprintf("%s, %d cores, %s, %s. Bars: p50 (median over runs); whiskers: p99.",
		res.Machine.CPUModel, res.Machine.Cores, res.Machine.Kernel, date)
	if res.Machine.LoadStart != "" {
		line += " Load average at start: " + res.Machine.LoadStart + "."
	}
	dc.FillText(sub, vg.Point{X: margin, Y: y}, line)
	y -= sub.Height(line) + vg.Points(10)

	// The legend: colour swatches in the order of the bars, each mechanism once (a label the
	// rows share, such as a Unix socket's, has one colour), wrapped to the image's width.
	leg := text(vg.Points(12), color.Black)
	x := margin
	sw := vg.Points(12)
	shown := map[string]bool{}
	for _, r := range rows {
		for _, s := range r.series {
			if shown[s.label] {
				continue
			}
			shown[s.label] = true
			wd := sw + vg.Points(5) + leg.Width(s.label) + vg.Points(18)
			if x > margin && x+wd > w-margin {
				x, y = margin, y-sw-vg.Points(8)
			}
			dc.FillPolygon(s.color, []vg.Point{{X: x, Y: y}, {X: x + sw, Y: y}, {X: x + sw, Y: y - sw}, {X: x, Y: y - sw}})
			dc.FillText(leg, vg.Point{X: x + sw + vg.Points(5), Y: y + vg.Points(1)}, s.label)
			x += wd
		}
	}
	y -= sw + vg.Points(18)

	bottom := vg.Length(0)
	if len(missing) > 0 {
		note := text(vg.Points(11), rgb(0xb00020))
		msg := "not measured (engine failed): " + strings.Join(missing, ", ")
		dc.FillText(note, vg.Point{X: margin, Y: margin + vg.Points(12)}, msg)
		bottom = vg.Points(20)
	}
	// The panels' titles are drawn here, centred over each data area: plot.Align lines up the
	// data areas but would place plot titles at different heights (the first panel's y label).
	panelTitle := text(vg.Points(13), color.Black)
	panelTitle.XAlign, panelTitle.YAlign = draw.XCenter, draw.YBottom
	titleH := panelTitle.Height("2 cores") + vg.Points(8)
	// The y label is drawn here too: as an axis label, gonum pads the first panel's top by it.
	yLabel := text(vg.Points(12), color.Black)
	yLabel.Rotation, yLabel.XAlign, yLabel.YAlign = math.Pi/2, draw.XCenter, draw.YTop
	yLabelW := yLabel.Height("Ag") + vg.Points(6)
	area := draw.Crop(dc, margin+yLabelW, -margin, margin+bottom, y-h-titleH)
	tiles := draw.Tiles{Rows: len(rows), Cols: len(placements), PadX: vg.Points(22), PadY: titleH + vg.Points(16)}
	canvases := plot.Align(plots, tiles, area)
	for j := range plots {
		for i, p := range plots[j] {
			p.Draw(canvases[j][i])
			data := p.DataCanvas(canvases[j][i])
			mid := (data.Min.X + data.Max.X) / 2
			dc.FillText(panelTitle, vg.Point{X: mid, Y: data.Max.Y + vg.Points(8)}, placements[i].title)
			if i == 0 {
				dc.FillText(yLabel, vg.Point{X: margin, Y: (data.Min.Y + data.Max.Y) / 2}, rows[j].yLabel)
			}
		}
	}

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
