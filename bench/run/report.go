package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// measurement aggregates the runs of one id: the median of the runs' p50 and of their p99 (a
// run disturbed by another process moves the median less than it moves the mean).
type measurement struct {
	ID        string  `json:"id"`
	Group     string  `json:"group"`
	Mechanism string  `json:"mechanism"`
	Param     string  `json:"param"`
	Placement string  `json:"placement"`
	Unit      string  `json:"unit"`
	Bytes     int64   `json:"bytes"`
	Runs      int     `json:"runs"`
	P50       float64 `json:"p50"`
	P99       float64 `json:"p99"`
	Mean      float64 `json:"mean"`   // median of the runs' means
	Min       float64 `json:"min"`    // over all runs
	Max       float64 `json:"max"`    // over all runs
	Status    string  `json:"status"` // "ok", "failed" or "skipped" (a competitor not installed)
	Error     string  `json:"error,omitempty"`
	// Round trips only: the configuration as the driver ran it (for bench/plot).
	RoundTrip *rtMeta `json:"round_trip,omitempty"`
	// Ring throughputs only (ns per message), the same for the chart's throughput panels.
	RingTput *rtMeta `json:"ring_tput,omitempty"`
}

// withMeta adds the chart's description of a ring measurement, read from its id.
func withMeta(m measurement) measurement {
	rt, tput := ringMeta(m.ID)
	if m.RoundTrip == nil {
		m.RoundTrip = rt
	}
	m.RingTput = tput
	return m
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func aggregate(rs []result) measurement {
	m := measurement{ID: rs[0].ID, Group: rs[0].Group, Mechanism: rs[0].Mechanism, Param: rs[0].Param,
		Placement: rs[0].Placement, Unit: rs[0].Unit, Bytes: rs[0].Bytes, Runs: len(rs), Status: "ok",
		Min: math.Inf(1)}
	var p50, p99, mean []float64
	for _, r := range rs {
		p50 = append(p50, r.P50)
		p99 = append(p99, r.P99)
		mean = append(mean, r.Mean)
		m.Min = min(m.Min, r.Min)
		m.Max = max(m.Max, r.Max)
	}
	m.P50, m.P99, m.Mean = median(p50), median(p99), median(mean)
	return m
}

// row is one line of the table: an mmipc measurement next to one baseline.
type row struct {
	Group        string  `json:"group"`
	Measurement  string  `json:"measurement"`
	MmipcID      string  `json:"mmipc_id"`
	Baseline     string  `json:"baseline"`
	BaselineID   string  `json:"baseline_id"`
	MmipcP50     float64 `json:"mmipc_p50"`
	MmipcP99     float64 `json:"mmipc_p99"`
	BaselineP50  float64 `json:"baseline_p50"`
	BaselineP99  float64 `json:"baseline_p99"`
	Ratio        float64 `json:"ratio"` // mmipc p50 / baseline p50: above 1 means mmipc is slower (or bigger)
	Unit         string  `json:"unit"`
	Bytes        int64   `json:"bytes"`
	MmipcGBps    float64 `json:"mmipc_gbps,omitempty"`
	BaselineGBps float64 `json:"baseline_gbps,omitempty"`
	// Message rates (per second) of the rows timed in ns per message.
	MmipcRate    float64 `json:"mmipc_msgs_per_s,omitempty"`
	BaselineRate float64 `json:"baseline_msgs_per_s,omitempty"`
	// The goal for the ratio, if the row has one ("≤1.5x"), and whether this run met it
	// (absent when the row failed).
	Target    string  `json:"target,omitempty"`
	TargetMax float64 `json:"target_max_ratio,omitempty"`
	TargetMet *bool   `json:"target_met,omitempty"`
	Runs      int     `json:"runs"`
	Status    string  `json:"status"`
	Error     string  `json:"error,omitempty"`
}

func makeRows(defs []rowDef, ms map[string]measurement) []row {
	var rows []row
	for _, d := range defs {
		a, aok := ms[d.MmipcID]
		b, bok := ms[d.BaselineID]
		if !aok && !bok {
			continue // not selected by -only
		}
		r := row{Group: d.Group, Measurement: d.Measurement, MmipcID: d.MmipcID, Baseline: d.Baseline,
			BaselineID: d.BaselineID, Status: "ok"}
		if d.Target != nil {
			r.Target, r.TargetMax = d.Target.Text, d.Target.Max
		}
		var errs []string
		skipped := 0 // errors that are a competitor skipped on purpose (bench/run/peers.go)
		for _, x := range []struct {
			id string
			m  measurement
			ok bool
		}{{d.MmipcID, a, aok}, {d.BaselineID, b, bok}} {
			switch {
			case !x.ok:
				errs = append(errs, x.id+": not run")
			case x.m.Status != "ok":
				errs = append(errs, x.id+": "+x.m.Error)
				if x.m.Status == "skipped" {
					skipped++
				}
			}
		}
		if aok && a.Status == "ok" {
			r.MmipcP50, r.MmipcP99, r.Unit, r.Bytes, r.Runs = a.P50, a.P99, a.Unit, a.Bytes, a.Runs
			if d.Throughput && a.Unit == "ns" {
				r.MmipcGBps = float64(a.Bytes) / a.P50 // bytes per ns = GB/s
			}
			if d.Rate && a.Unit == "ns" {
				r.MmipcRate = 1e9 / a.P50
			}
		}
		if bok && b.Status == "ok" {
			r.BaselineP50, r.BaselineP99 = b.P50, b.P99
			if d.Throughput && b.Unit == "ns" {
				r.BaselineGBps = float64(b.Bytes) / b.P50
			}
			if d.Rate && b.Unit == "ns" {
				r.BaselineRate = 1e9 / b.P50
			}
			if r.Unit == "" {
				r.Unit = b.Unit
			}
			if r.Runs == 0 || b.Runs < r.Runs {
				r.Runs = b.Runs
			}
		}
		if errs != nil {
			r.Status, r.Error = "failed", strings.Join(errs, "; ")
			if skipped == len(errs) {
				r.Status = "skipped"
			}
		} else {
			if a.Unit != b.Unit {
				r.Status, r.Error = "failed", fmt.Sprintf("units differ: %s vs %s", a.Unit, b.Unit)
			} else {
				r.Ratio = a.P50 / b.P50
				if d.Target != nil {
					met := r.Ratio <= d.Target.Max
					r.TargetMet = &met
				}
			}
		}
		rows = append(rows, r)
	}
	return rows
}

// human formats a value of the unit for a person: ns, µs, ms, s; KiB, MiB.
func human(v float64, unit string) string {
	if unit == "KiB" {
		if v >= 1024 {
			return sig3(v/1024) + " MiB"
		}
		return sig3(v) + " KiB"
	}
	switch {
	case v < 1e3:
		return sig3(v) + " ns"
	case v < 1e6:
		return sig3(v/1e3) + " µs"
	case v < 1e9:
		return sig3(v/1e6) + " ms"
	}
	return sig3(v/1e9) + " s"
}

// sig3 prints three significant digits (12.3, 1.23, 123; and 1234 as 1234).
func sig3(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func gbps(v float64) string { return sig3(v) + " GB/s" }

// rate formats messages per second: 47.6 M/s, 312 k/s.
func rate(v float64) string {
	switch {
	case v >= 1e6:
		return sig3(v/1e6) + " M msg/s"
	case v >= 1e3:
		return sig3(v/1e3) + " k msg/s"
	}
	return sig3(v) + " msg/s"
}

// targetCell is the target column: the goal, and whether this run met it.
func targetCell(r row) string {
	switch {
	case r.Target == "":
		return ""
	case r.TargetMet == nil:
		return r.Target
	case *r.TargetMet:
		return r.Target + " met"
	}
	return r.Target + " NOT MET"
}

// printTable writes the rows grouped under their titles, columns aligned.
func printTable(w io.Writer, rows []row) {
	header := []string{"measurement", "mmipc p50", "mmipc p99", "baseline", "baseline p50", "ratio", "runs", "target"}
	right := []bool{false, true, true, false, true, true, true, false}
	cells := [][]string{}
	groupOf := []string{}
	for _, r := range rows {
		var c []string
		if r.Status != "ok" && r.MmipcP50 == 0 {
			c = []string{r.Measurement, "FAILED", "", r.Baseline, "", "", "", targetCell(r)}
		} else {
			mp50, bp50 := human(r.MmipcP50, r.Unit), human(r.BaselineP50, r.Unit)
			if r.MmipcGBps > 0 {
				mp50 += " (" + gbps(r.MmipcGBps) + ")"
			}
			if r.BaselineGBps > 0 {
				bp50 += " (" + gbps(r.BaselineGBps) + ")"
			}
			if r.MmipcRate > 0 {
				mp50 += " (" + rate(r.MmipcRate) + ")"
			}
			if r.BaselineRate > 0 {
				bp50 += " (" + rate(r.BaselineRate) + ")"
			}
			ratio := fmt.Sprintf("%.2fx", r.Ratio)
			if r.Ratio < 0.095 {
				ratio = fmt.Sprintf("%.2gx", r.Ratio) // 0.0028x, not 0.00x
			}
			if r.Status != "ok" {
				bp50, ratio = strings.ToUpper(r.Status), ""
			}
			c = []string{r.Measurement, mp50, human(r.MmipcP99, r.Unit), r.Baseline, bp50, ratio, strconv.Itoa(r.Runs), targetCell(r)}
		}
		// The same mmipc measurement against its next baseline: leave its cells blank, so that
		// each measurement reads as one block.
		if n := len(cells); n > 0 && rows[n-1].MmipcID == r.MmipcID && rows[n-1].Measurement == r.Measurement &&
			rows[n-1].MmipcP50 > 0 && r.MmipcP50 > 0 {
			c[0], c[1], c[2] = "", "", ""
		}
		cells = append(cells, c)
		groupOf = append(groupOf, r.Group)
	}
	width := make([]int, len(header))
	for _, c := range append([][]string{header}, cells...) {
		for i, s := range c {
			width[i] = max(width[i], utf8.RuneCountInString(s))
		}
	}
	line := func(c []string) string {
		var b strings.Builder
		for i, s := range c {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(s))
			if i > 0 {
				b.WriteString(" | ")
			}
			if right[i] {
				b.WriteString(pad + s)
			} else {
				b.WriteString(s + pad)
			}
		}
		return strings.TrimRight(b.String(), " ")
	}
	total := 0
	for _, n := range width {
		total += n + 3
	}
	fmt.Fprintln(w, line(header))
	fmt.Fprintln(w, strings.Repeat("-", total-3))
	last := ""
	for i, c := range cells {
		if groupOf[i] != last {
			last = groupOf[i]
			if i > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "[%s] %s\n", last, groupTitles[last])
		}
		fmt.Fprintln(w, line(c))
	}
}

func writeCSV(path string, rows []row) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"group", "measurement", "mmipc_id", "baseline", "baseline_id", "unit",
		"mmipc_p50", "mmipc_p99", "baseline_p50", "baseline_p99", "ratio", "bytes",
		"mmipc_gbps", "baseline_gbps", "runs", "status", "error",
		"mmipc_msgs_per_s", "baseline_msgs_per_s", "target", "target_met"})
	num := func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
	for _, r := range rows {
		w.Write([]string{r.Group, r.Measurement, r.MmipcID, r.Baseline, r.BaselineID, r.Unit,
			num(r.MmipcP50), num(r.MmipcP99), num(r.BaselineP50), num(r.BaselineP99), num(r.Ratio),
			strconv.FormatInt(r.Bytes, 10), num(r.MmipcGBps), num(r.BaselineGBps), strconv.Itoa(r.Runs),
			r.Status, r.Error, num(r.MmipcRate), num(r.BaselineRate), r.Target, met(r.TargetMet)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// met is the CSV's target_met: "yes", "no", or "" (no target, or the row failed).
func met(b *bool) string {
	switch {
	case b == nil:
		return ""
	case *b:
		return "yes"
	}
	return "no"
}

// machine describes where the numbers were measured.
type machine struct {
	CPUModel      string `json:"cpu_model"`
	Cores         int    `json:"cores"`
	Kernel        string `json:"kernel"`
	GoVersion     string `json:"go_version"`
	CCVersion     string `json:"cc_version"`
	PythonVersion string `json:"python_version"`
	Date          string `json:"date"`
	LoadStart     string `json:"loadavg_start"` // /proc/loadavg: other jobs on the machine skew numbers
	LoadEnd       string `json:"loadavg_end"`
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		for _, key := range []string{"model name", "Hardware", "cpu model", "cpu"} {
			for _, l := range strings.Split(string(b), "\n") {
				k, v, ok := strings.Cut(l, ":")
				if ok && strings.TrimSpace(k) == key && strings.TrimSpace(v) != "" {
					return strings.TrimSpace(v)
				}
			}
		}
	}
	return runtime.GOARCH
}

func kernel() string {
	if out, err := exec.Command("uname", "-srm").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return "Linux " + strings.TrimSpace(string(b))
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

func machineInfo(cc string) machine {
	return machine{
		CPUModel:      cpuModel(),
		Cores:         runtime.NumCPU(),
		Kernel:        kernel(),
		GoVersion:     runtime.Version(),
		CCVersion:     toolVersion(cc, "--version"),
		PythonVersion: toolVersion("python3", "--version"),
		Date:          time.Now().Format(time.RFC3339),
		LoadStart:     loadavg(),
	}
}

type report struct {
	Machine      machine        `json:"machine"`
	Config       map[string]any `json:"config"`
	Raw          []result       `json:"raw"`
	Measurements []measurement  `json:"measurements"`
	Rows         []row          `json:"rows"`
}

func writeJSON(path string, rep report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
