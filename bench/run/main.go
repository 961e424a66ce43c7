// Command run is the mmipc benchmark driver: it builds the measurement engines of bench/c,
// bench/gopeer and bench/py, runs every configuration of the benchmark (bench_spec, bench/ENGINES.md),
// pairs each mmipc measurement with its baselines, prints the table and writes results.csv and
// results.json. Standard library only, so that the smoke test needs nothing beyond the main module.
//
//	go run ./bench/run [-out build/bench] [-lib build] [-smoke] [-only REGEX] [-runs N] [-peers=false] [-v]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(mainErr())
}

func mainErr() int {
	start := time.Now()
	out := flag.String("out", "", "output directory (default <root>/build/bench)")
	lib := flag.String("lib", "", "directory holding libmmipc.so (default <root>/build)")
	smoke := flag.Bool("smoke", false, "a few iterations of everything, one run each: checks the harness, not the numbers")
	only := flag.String("only", "", "run only the table rows whose measurement, group or ids match this regexp (both sides of each)")
	runs := flag.Int("runs", 0, "runs of each measurement (default 5, 1 with -smoke)")
	timeout := flag.Duration("timeout", 0, "deadline of each engine process (default 90s, 60s with -smoke)")
	verbose := flag.Bool("v", false, "print each engine's command line and log output")
	peers := flag.Bool("peers", true, "also install, build and run the message ring's competitors (bench/peers); "+
		"off with -smoke unless given")
	flag.Parse()
	peersGiven := false
	flag.Visit(func(f *flag.Flag) { peersGiven = peersGiven || f.Name == "peers" })
	runPeers := *peers && (!*smoke || peersGiven)
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", flag.Args())
		return 2
	}

	root, err := findRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	abs := func(p, def string) string {
		if p == "" {
			return filepath.Join(root, def)
		}
		a, _ := filepath.Abs(p)
		return a
	}
	outDir, libDir := abs(*out, "build/bench"), abs(*lib, "build")
	if _, err := os.Stat(filepath.Join(libDir, "libmmipc.so")); err != nil {
		fmt.Fprintf(os.Stderr, "bench: no libmmipc.so in %s (build it with ./build.sh lib %s)\n", libDir, libDir)
		return 2
	}
	c := defaultCounts
	if *smoke {
		c = smokeCounts
	}
	if *runs > 0 {
		c.Runs = *runs
	}
	if *timeout > 0 {
		c.TimeoutSecond = max(1, int(timeout.Seconds()))
	}
	var sel *regexp.Regexp
	if *only != "" {
		if sel, err = regexp.Compile(*only); err != nil {
			fmt.Fprintln(os.Stderr, "bench: -only:", err)
			return 2
		}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	cc := goEnv("CC")
	if cc == "" {
		cc = "cc"
	}
	mach := machineInfo(cc)

	// ^C, a kill, a closed terminal or a closed output pipe (go run ./bench/run | head) stops the
	// engine running now (its whole process group) and still cleans up.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer stop()

	becomeSubreaper()
	binDir := filepath.Join(outDir, "bin")
	fmt.Fprintf(os.Stderr, "bench: building engines into %s\n", binDir)
	buildErr := buildEngines(root, libDir, binDir, cc)
	if buildErr != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", buildErr)
	}
	if runPeers {
		// Never fails the run: a competitor that cannot be installed or built is skipped.
		setupPeers(ctx, root, outDir, binDir, cc, *smoke, os.Stderr)
	}

	// The engines' regions live in a private directory, so that nothing is left in /dev/shm and
	// nothing there collides with them.
	parent := "/dev/shm"
	if st, err := os.Stat(parent); err != nil || !st.IsDir() {
		parent = ""
	}
	regionDir, err := os.MkdirTemp(parent, "mmipc-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	defer os.RemoveAll(regionDir)

	e := env{root: root, lib: libDir, bin: binDir, regionDir: regionDir, c: c, cpus: allowedCPUs()}
	defs := rowDefs()
	all := append(jobs(e), peerJobs(e)...)
	if sel != nil {
		defs, all = selectRows(sel, defs, all)
		if len(all) == 0 {
			fmt.Fprintf(os.Stderr, "bench: -only %q matches no measurement\n", *only)
			return 2
		}
	}

	var raw []result
	ms := peerSkippedMeasurements() // skipped competitors: their rows say why
	var failures []string
	vw := io.Writer(nil)
	if *verbose {
		vw = os.Stderr
	}
	type state struct {
		results []result
		err     error
	}
	states := make([]state, len(all))
	for i, j := range all {
		if buildErr != nil && strings.HasPrefix(j.argv[0], binDir) {
			if _, err := os.Stat(j.argv[0]); err != nil {
				states[i].err = fmt.Errorf("engine %s was not built (see the build errors above)", filepath.Base(j.argv[0]))
			}
		}
	}
	// Round-robin: run r of every job, then run r+1 (see jobs).
	rounds := 0
	for _, j := range all {
		rounds = max(rounds, j.procs)
	}
	for round := range rounds {
		t0 := time.Now()
		n := 0
		if !*verbose {
			fmt.Fprintf(os.Stderr, "run %d/%d ", round+1, rounds)
		}
		for i, j := range all {
			st := &states[i]
			if st.err != nil || round >= j.procs {
				continue
			}
			if *verbose {
				fmt.Fprintf(os.Stderr, "[run %d/%d] [%d/%d] %s\n  $ %s\n", round+1, rounds, i+1, len(all), j.name, strings.Join(j.argv, " "))
			}
			p0 := time.Now()
			rs, log, err := runProcess(ctx, j, vw)
			n++
			st.results = append(st.results, rs...)
			if err != nil {
				st.err = err
				fmt.Fprintf(os.Stderr, "\n%s FAILED after %.1fs: %v\n", j.name, time.Since(p0).Seconds(), err)
				if !*verbose && log != "" {
					fmt.Fprintf(os.Stderr, "  $ %s\n  | %s\n", strings.Join(j.argv, " "),
						strings.ReplaceAll(lastLines(log, 15), "\n", "\n  | "))
				}
			} else if *verbose {
				fmt.Fprintf(os.Stderr, "  done in %.2fs\n", time.Since(p0).Seconds())
			} else {
				fmt.Fprint(os.Stderr, ".")
			}
			if ctx.Err() != nil {
				fmt.Fprintln(os.Stderr, "bench: interrupted")
				return 130
			}
		}
		fmt.Fprintf(os.Stderr, " %d processes in %.1fs\n", n, time.Since(t0).Seconds())
	}
	for i, j := range all {
		st := &states[i]
		if st.err == nil {
			st.err = finishJob(j, st.results)
		}
		raw = append(raw, st.results...)
		if st.err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", j.name, st.err))
			for _, id := range j.ids {
				ms[id] = withMeta(measurement{ID: id, Status: "failed", Error: st.err.Error(), RoundTrip: j.rt})
			}
			continue
		}
		byID := map[string][]result{}
		for _, r := range st.results {
			byID[r.ID] = append(byID[r.ID], r)
		}
		for _, id := range j.ids {
			m := aggregate(byID[id])
			m.RoundTrip = j.rt
			ms[id] = withMeta(m)
		}
	}
	mach.LoadEnd = loadavg()

	rows := makeRows(defs, ms)
	var mlist []measurement
	for _, j := range all {
		for _, id := range j.ids {
			mlist = append(mlist, ms[id])
		}
	}
	fmt.Println()
	fmt.Printf("mmipc benchmarks: %s, %d cores, %s, %s, %s\n", mach.CPUModel, mach.Cores, mach.Kernel, mach.GoVersion, mach.Date)
	fmt.Printf("load average %s at the start, %s at the end; p50/p99 = median over runs of each run's percentile; ratio = mmipc p50 / baseline p50\n\n",
		mach.LoadStart, mach.LoadEnd)
	printTable(os.Stdout, rows)
	printPeerNotes(os.Stdout)

	wall := time.Since(start)
	cfg := map[string]any{
		"smoke": *smoke, "only": *only, "peers": runPeers, "counts": c, "lib": libDir, "cc": cc, "cflags": strings.Join(cflags, " "),
		"placements": map[string]string{"unpinned": "no affinity, each run a separate process",
			"2cores": fmt.Sprintf("initiator on CPU %d, responder on CPU %d", e.cpus[0], e.cpus[len(e.cpus)-1]),
			"1core":  fmt.Sprintf("both on CPU %d", e.cpus[0])},
		"scheduling":   "each run of each configuration is a separate engine process; runs go round-robin over all configurations",
		"wall_seconds": wall.Seconds(), "failures": failures,
	}
	rep := report{Machine: mach, Config: cfg, Raw: raw, Measurements: mlist, Rows: rows}
	if rep.Raw == nil {
		rep.Raw = []result{}
	}
	csvPath, jsonPath := filepath.Join(outDir, "results.csv"), filepath.Join(outDir, "results.json")
	if err := errors.Join(writeCSV(csvPath, rows), writeJSON(jsonPath, rep)); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	fmt.Printf("\nwrote %s and %s\n", csvPath, jsonPath)
	fmt.Printf("total wall time %.1fs\n", wall.Seconds())
	if buildErr != nil || len(failures) > 0 {
		fmt.Fprintf(os.Stderr, "\nbench: %d of %d configurations FAILED:\n", len(failures), len(all))
		for _, f := range failures {
			fmt.Fprintln(os.Stderr, "  "+f)
		}
		if buildErr != nil {
			fmt.Fprintln(os.Stderr, "  (and the build failed, see above)")
		}
		return 1
	}
	return 0
}

// selectRows keeps the rows that -only matches (by measurement, group or either id) and the jobs
// that those rows need, both sides of each pair.
func selectRows(sel *regexp.Regexp, defs []rowDef, all []job) ([]rowDef, []job) {
	need := map[string]bool{}
	var keep []rowDef
	for _, d := range defs {
		if sel.MatchString(d.Measurement) || sel.MatchString(d.Group) || sel.MatchString(d.MmipcID) || sel.MatchString(d.BaselineID) {
			keep = append(keep, d)
			need[d.MmipcID], need[d.BaselineID] = true, true
		}
	}
	var js []job
	for _, j := range all {
		if slices.ContainsFunc(j.ids, func(id string) bool { return need[id] }) {
			js = append(js, j)
		}
	}
	return keep, js
}

// findRoot walks up from the working directory to the main module's go.mod.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/mmipc/mmipc\n")) {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", fmt.Errorf("not inside the mmipc checkout (no go.mod of github.com/mmipc/mmipc above %s)", dir)
		}
		dir = up
	}
}

func goEnv(key string) string {
	out, err := exec.Command("go", "env", key).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
