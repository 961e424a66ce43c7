package main

// The competitors of the message ring (bench/peers, README.md there): iceoryx2, iceoryx (classic),
// Boost.Interprocess message_queue and ZeroMQ ipc://, each an engine of its own that prints
// ring-rt/<mech>/64/<placement> and ring-tput/<mech>/64/<placement> like mmipc's ring engine.
// bench/peers/install.sh installs what they need (Debian packages, the iceoryx2 crate) and writes
// OUT/peers.status; a peer that could not be installed or built is skipped: its rows say why,
// and the run does not fail for it.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// peerMech is one competitor: its mechanism name (in its ids), the table's label, its binary.
type peerMech struct {
	Mech, Label, Bin string
	// Round trips block in the kernel (about 50-100 µs each on two cores here): fewer of them.
	SlowRT bool
}

var peerMechs = []peerMech{
	{Mech: "iceoryx2", Label: "iceoryx2 0.10 (Rust, pub-sub, polls)", Bin: "iox2-bench"},
	{Mech: "iceoryx", Label: "iceoryx 2.0 (C binding + RouDi, polls)", Bin: "iceoryx-bench"},
	{Mech: "boost-mq", Label: "Boost.Interprocess message_queue", Bin: "boost-mq-bench", SlowRT: true},
	{Mech: "zmq-ipc", Label: "ZeroMQ PAIR over ipc://", Bin: "zmq-ipc-bench", SlowRT: true},
}

// peerCounts are the peers' own repetitions. Their engines cost very different amounts per round
// trip (1 µs polling to 100 µs through ZeroMQ's I/O threads), and iceoryx pays ~0.4 s per process
// to start and stop its daemon; these keep all 24 peer jobs at 5 runs each under a minute on two
// cores (measured: ~35 s of engine time, about 7 s per round of all 24).
type peerCounts struct {
	RTIters, RTSlowIters, RT1CoreIters, RTWarmup int // fast peers, blocking peers, both on one core
	TputBatch, TputBatches, TputWarmup           int // messages per sample, samples per run, warm-up
}

var defaultPeerCounts = peerCounts{RTIters: 10000, RTSlowIters: 4000, RT1CoreIters: 5000, RTWarmup: 500,
	TputBatch: 10000, TputBatches: 20, TputWarmup: 20000}

var smokePeerCounts = peerCounts{RTIters: 50, RTSlowIters: 50, RT1CoreIters: 50, RTWarmup: 10,
	TputBatch: 100, TputBatches: 2, TputWarmup: 100}

// peerSet is what setupPeers found: the engines that were built, and why the others are skipped.
type peerSet struct {
	bins    map[string]string // mechanism -> engine path
	skipped map[string]string // mechanism -> reason
	c       peerCounts
}

// peerState is nil when the peers are off (-peers=false, or -smoke): then they have no rows.
var peerState *peerSet

func peerRTID(mech, place string) string   { return fmt.Sprintf("ring-rt/%s/64/%s", mech, place) }
func peerTputID(mech, place string) string { return fmt.Sprintf("ring-tput/%s/64/%s", mech, place) }

// setupPeers runs bench/peers/install.sh OUT, reads OUT/peers.status and builds the engines of the
// installed peers into binDir (after buildEngines, which empties it). It sets peerState and logs
// to w. Nothing here fails the benchmark: a peer that cannot be had is skipped, with the reason.
func setupPeers(ctx context.Context, root, outDir, binDir, cc string, smoke bool, w io.Writer) *peerSet {
	ps := &peerSet{bins: map[string]string{}, skipped: map[string]string{}, c: defaultPeerCounts}
	if smoke {
		ps.c = smokePeerCounts
	}
	peerState = ps
	skipAll := func(why string) *peerSet {
		for _, p := range peerMechs {
			if _, ok := ps.skipped[p.Mech]; !ok {
				ps.skipped[p.Mech] = why
			}
		}
		return ps
	}
	fmt.Fprintf(w, "bench: installing the peers (bench/peers/install.sh %s)\n", outDir)
	ictx, cancel := context.WithTimeout(ctx, 45*time.Minute)
	defer cancel()
	install := exec.CommandContext(ictx, "bash", filepath.Join(root, "bench", "peers", "install.sh"), outDir)
	install.Dir = root
	install.Stdout, install.Stderr = w, w
	if err := install.Run(); err != nil {
		return skipAll(fmt.Sprintf("bench/peers/install.sh failed: %v", err))
	}
	status, err := readPeerStatus(filepath.Join(outDir, "peers.status"))
	if err != nil {
		return skipAll(err.Error())
	}
	var toBuild []peerMech
	for _, p := range peerMechs {
		switch s, ok := status[p.Mech]; {
		case !ok:
			ps.skipped[p.Mech] = "not in peers.status"
		case !strings.HasPrefix(s, "ok"):
			ps.skipped[p.Mech] = strings.TrimSpace(strings.TrimPrefix(s, "skipped:"))
		default:
			toBuild = append(toBuild, p)
		}
	}
	for mech, err := range buildPeers(ctx, root, outDir, binDir, cc, toBuild) {
		fmt.Fprintf(w, "bench: building the %s peer engine: %v\n", mech, err)
		ps.skipped[mech] = "build failed (see the build output above)"
	}
	for _, p := range toBuild {
		if _, bad := ps.skipped[p.Mech]; !bad {
			ps.bins[p.Mech] = filepath.Join(binDir, p.Bin)
		}
	}
	return ps
}

// readPeerStatus reads install.sh's status lines, "MECH: ok (...)" or "MECH: skipped: REASON".
func readPeerStatus(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("no peer status (%v)", err)
	}
	defer f.Close()
	st := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		mech, rest, ok := strings.Cut(sc.Text(), ": ")
		if ok {
			st[strings.TrimSpace(mech)] = strings.TrimSpace(rest)
		}
	}
	return st, sc.Err()
}

// buildPeers compiles the given peer engines into binDir: the C ones with the project's flags,
// Boost's C++ half with the same warnings, iceoryx2 with cargo (offline and locked: install.sh
// fetched the crates; the target directory is install.sh's, so this is a no-op unless the source
// changed). It returns the failures by mechanism.
func buildPeers(ctx context.Context, root, outDir, binDir, cc string, ps []peerMech) map[string]error {
	src := filepath.Join(root, "bench", "peers")
	cxx := os.Getenv("CXX")
	if cxx == "" {
		cxx = "c++"
	}
	objDir := filepath.Join(outDir, "peers-obj")
	cmd := func(dir string, argv ...string) *exec.Cmd {
		c := exec.CommandContext(ctx, argv[0], argv[1:]...)
		c.Dir = dir
		return c
	}
	steps := map[string][]*exec.Cmd{}
	for _, p := range ps {
		out := filepath.Join(binDir, p.Bin)
		switch p.Mech {
		case "zmq-ipc":
			steps[p.Mech] = []*exec.Cmd{cmd(src, append(append([]string{cc}, cflags...),
				"-o", out, "zmq_ipc.c", "-lzmq", "-lpthread")...)}
		case "iceoryx":
			// The C binding's headers sit in a versioned directory: /usr/include/iceoryx/vX.Y.Z.
			incs, _ := filepath.Glob("/usr/include/iceoryx/v*")
			sort.Strings(incs)
			if len(incs) == 0 {
				steps[p.Mech] = []*exec.Cmd{cmd(src, "sh", "-c", "echo no /usr/include/iceoryx/v*; exit 1")}
				continue
			}
			inc := incs[len(incs)-1]
			ver := strings.TrimPrefix(filepath.Base(inc), "v")
			steps[p.Mech] = []*exec.Cmd{cmd(src, append(append([]string{cc}, cflags...),
				"-I"+inc, fmt.Sprintf("-DIOX_VERSION=%q", ver), "-o", out, "iceoryx.c",
				"-liceoryx_binding_c", "-lpthread")...)}
		case "boost-mq":
			cObj, cxxObj := filepath.Join(objDir, "boost_mq.o"), filepath.Join(objDir, "boost_mq_shim.o")
			steps[p.Mech] = []*exec.Cmd{
				cmd(src, "mkdir", "-p", objDir),
				cmd(src, append(append([]string{cc}, cflags...), "-c", "-o", cObj, "boost_mq.c")...),
				cmd(src, cxx, "-std=c++17", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-c", "-o", cxxObj, "boost_mq_shim.cpp"),
				cmd(src, cxx, "-o", out, cObj, cxxObj, "-lrt", "-lpthread"),
			}
		case "iceoryx2":
			target := filepath.Join(outDir, "iceoryx2-target")
			steps[p.Mech] = []*exec.Cmd{
				cmd(filepath.Join(src, "iceoryx2"), "cargo", "build", "--release", "--offline", "--locked", "--quiet",
					"--target-dir", target),
				cmd(src, "cp", filepath.Join(target, "release", "iox2-bench"), out),
			}
		}
	}
	// Two at a time: the machine has two cores.
	var mu sync.Mutex
	errs := map[string]error{}
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for mech, cmds := range steps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for _, c := range cmds {
				if out, err := c.CombinedOutput(); err != nil {
					mu.Lock()
					errs[mech] = fmt.Errorf("%v\n%s\n%s", err, strings.Join(c.Args, " "), out)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return errs
}

// peerJobs are the peers' processes: every built peer × {rt, tput} × {unpinned, 2cores, 1core}
// (2cores only with two CPUs to pin to), procs separate runs each, as the other jobs.
func peerJobs(e env) []job {
	ps := peerState
	if ps == nil {
		return nil
	}
	var js []job
	timeout := time.Duration(e.c.TimeoutSecond) * time.Second
	a, b := e.cpus[0], e.cpus[len(e.cpus)-1]
	cpus := map[string][]string{"unpinned": nil, "2cores": {"--cpus", itoa(a) + "," + itoa(b)},
		"1core": {"--cpus", itoa(a) + "," + itoa(a)}}
	for _, p := range placements {
		if p == "2cores" && a == b {
			continue
		}
		for _, m := range peerMechs {
			bin, ok := ps.bins[m.Mech]
			if !ok {
				continue
			}
			iters := ps.c.RTIters
			switch {
			case p == "1core":
				iters = ps.c.RT1CoreIters
			case m.SlowRT:
				iters = ps.c.RTSlowIters
			}
			id := peerRTID(m.Mech, p)
			js = append(js, job{name: id, env: []string{"MMIPC_DIR=" + e.regionDir}, ids: []string{id}, runs: 1,
				procs: e.c.Runs, timeout: timeout, rt: &rtMeta{m.Mech, 64, p},
				argv: append([]string{bin, "--mode", "rt", "--size", "64", "--iters", itoa(iters),
					"--warmup", itoa(ps.c.RTWarmup), "--runs", "1", "--id", id}, cpus[p]...)})
			id = peerTputID(m.Mech, p)
			js = append(js, job{name: id, env: []string{"MMIPC_DIR=" + e.regionDir}, ids: []string{id}, runs: 1,
				procs: e.c.Runs, timeout: timeout,
				argv: append([]string{bin, "--mode", "tput", "--size", "64", "--batch", itoa(ps.c.TputBatch),
					"--iters", itoa(ps.c.TputBatch * ps.c.TputBatches), "--warmup", itoa(ps.c.TputWarmup),
					"--runs", "1", "--id", id}, cpus[p]...)})
		}
	}
	return js
}

// peerRow is one competitor's measurement of a ring row: the baseline's label and id.
type peerRow struct{ Label, ID string }

// peerRows lists the competitors of a ring row ("rt" or "tput" at a placement), skipped ones
// included (their rows carry the reason); none when the peers are off.
func peerRows(kind, place string) []peerRow {
	if peerState == nil {
		return nil
	}
	var rs []peerRow
	for _, m := range peerMechs {
		id := peerRTID(m.Mech, place)
		if kind == "tput" {
			id = peerTputID(m.Mech, place)
		}
		rs = append(rs, peerRow{m.Label, id})
	}
	return rs
}

// peerSkippedMeasurements are the skipped peers' ids, each marked "skipped" with the reason, for
// the driver's measurement map (a row whose baseline is skipped shows the note, not a number).
func peerSkippedMeasurements() map[string]measurement {
	ms := map[string]measurement{}
	if peerState == nil {
		return ms
	}
	for mech, why := range peerState.skipped {
		for _, p := range placements {
			for _, id := range []string{peerRTID(mech, p), peerTputID(mech, p)} {
				ms[id] = measurement{ID: id, Group: "ring", Mechanism: mech, Param: "64", Placement: p,
					Status: "skipped", Error: "skipped: " + why}
			}
		}
	}
	return ms
}

// printPeerNotes writes, under the table, which peers were skipped and why.
func printPeerNotes(w io.Writer) {
	if peerState == nil || len(peerState.skipped) == 0 {
		return
	}
	fmt.Fprintln(w, "\npeers skipped (bench/peers/install.sh; see peers.status and peers-install.log in the output directory):")
	for _, m := range peerMechs {
		if why, ok := peerState.skipped[m.Mech]; ok {
			fmt.Fprintf(w, "  %s: %s\n", m.Mech, why)
		}
	}
}
