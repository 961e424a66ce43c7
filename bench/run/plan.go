package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// counts are the repetitions of each kind of measurement. The defaults keep the whole run under
// three minutes on two cores; -smoke only checks that every engine works.
type counts struct {
	Runs          int `json:"runs"`           // runs of each measurement (RESULT lines)
	RTIters       int `json:"rt_iters"`       // round trips per run
	RTWarmup      int `json:"rt_warmup"`      // round trips before the first run
	RTSlowIters   int `json:"rt_slow_iters"`  // round trips per run when both sides share one core
	BWItersSmall  int `json:"bw_iters_1mib"`  // 1 MiB transfers per run
	BWItersLarge  int `json:"bw_iters_64mib"` // 64 MiB transfers per run
	LifeIters     int `json:"life_iters"`     // create/open cycles per run
	ABICalls      int `json:"abi_calls"`      // calls per timed sample
	ABISamples    int `json:"abi_samples"`    // samples per run
	PyLifeIters   int `json:"py_life_iters"`  // Python create/close/unlink cycles per run
	PyABICalls    int `json:"py_abi_calls"`   // ctypes calls per sample
	SpawnIters    int `json:"spawn_iters"`    // fork+exec+wait of each start-up program per run
	RingBatch     int `json:"ring_batch"`     // messages per ring throughput sample
	RingBatches   int `json:"ring_batches"`   // samples per run of a shared-memory ring throughput
	RingUDSBatch  int `json:"ring_uds_batches"`
	RingWarmup    int `json:"ring_warmup"`     // messages before the first throughput sample
	PyRingBatch   int `json:"py_ring_batch"`   // messages per Python ring sample (and warm-up)
	PyRingBatches int `json:"py_ring_batches"` // Python ring samples per run
	TimeoutSecond int `json:"timeout_s"`       // per engine process
}

var defaultCounts = counts{
	Runs: 5, RTIters: 10000, RTWarmup: 1000, RTSlowIters: 5000,
	BWItersSmall: 300, BWItersLarge: 8, LifeIters: 4000,
	ABICalls: 1000000, ABISamples: 5, PyLifeIters: 2000, PyABICalls: 100000, SpawnIters: 30,
	RingBatch: 10000, RingBatches: 50, RingUDSBatch: 5, RingWarmup: 20000, PyRingBatch: 1000, PyRingBatches: 20,
	TimeoutSecond: 90,
}

var smokeCounts = counts{
	Runs: 1, RTIters: 50, RTWarmup: 10, RTSlowIters: 50,
	BWItersSmall: 3, BWItersLarge: 2, LifeIters: 20,
	ABICalls: 1000, ABISamples: 2, PyLifeIters: 20, PyABICalls: 1000, SpawnIters: 3,
	RingBatch: 200, RingBatches: 2, RingUDSBatch: 2, RingWarmup: 100, PyRingBatch: 100, PyRingBatches: 2,
	TimeoutSecond: 60,
}

var (
	placements = []string{"unpinned", "2cores", "1core"}
	rtSizes    = []int{8, 64, 4096}
	spinBases  = []string{"raw-spin", "uds", "pipe", "mq"}
	blockBases = []string{"raw-futex", "pipe", "uds"}
	bwSizes    = []int{1 << 20, 64 << 20}
)

// Group names, in table order; the smoke test expects a row of each.
var groups = []string{"roundtrip", "blocking", "bandwidth", "lifecycle", "abi", "startup", "gopeer", "ring"}

var groupTitles = map[string]string{
	"roundtrip": "Round trip, spinning waits (ns per round trip, payload each way)",
	"blocking":  "Round trip, blocking waits (every wait sleeps in futex; pipe and uds block in the kernel)",
	"bandwidth": "Bulk transfer (time per transfer, producer fill to consumer ack)",
	"lifecycle": "Region lifecycle (ns per cycle)",
	"abi":       "Call cost through the ABI (ns per call)",
	"startup":   "Process start-up (fork+exec+exit+wait)",
	"gopeer":    "C initiator with a Go peer (CGO_ENABLED=0) vs a C peer",
	"ring":      "Message ring, blocking calls (round trips through two rings; one-way ns per message); target: the goal for the ratio",
}

// rowDef pairs an mmipc measurement with one baseline.
type rowDef struct {
	Group       string
	Measurement string
	MmipcID     string
	Baseline    string
	BaselineID  string
	Throughput  bool    // also shown as GB/s
	Rate        bool    // ns per message, also shown as messages per second
	Target      *target // the goal for the ratio, if the row has one
}

// target is a goal for a row's ratio (mmipc p50 / baseline p50, time per operation): met when the
// ratio is at most Max.
type target struct {
	Max  float64
	Text string // as the table states it
}

// atMost is a target "ratio ≤ max"; note says what it means in other terms, if anything.
func atMost(max float64, note string) *target {
	t := &target{Max: max, Text: fmt.Sprintf("≤%.3gx", max)}
	if note != "" {
		t.Text += " (" + note + ")"
	}
	return t
}

// The measurement ids the engines print (bench/ENGINES.md).
func rtID(mech string, size int, place string) string {
	return fmt.Sprintf("pingpong/%s/%d/%s", mech, size, place)
}
func rtGoID(size int, place string) string {
	return fmt.Sprintf("pingpong/mmipc-spin-gopeer/%d/%s", size, place)
}
func bwID(mech string, size int) string { return fmt.Sprintf("bandwidth/%s/%d", mech, size) }
func bwGoID(size int) string            { return fmt.Sprintf("bandwidth/mmipc-gopeer/%d", size) }
func lifeID(mech string) string         { return "lifecycle/" + mech }
func abiID(fn string) string            { return "abicost/" + fn }
func spawnID(prog, what string) string  { return fmt.Sprintf("spawn/%s/%s", prog, what) }
func pyLifeID(mech string) string       { return "py-lifecycle/" + mech }
func pyABIID(fn string) string          { return "py-abicost/" + fn }

func sizeLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// rowDefs is the table, in order.
func rowDefs() []rowDef {
	var rows []rowDef
	add := func(g, m, id, b, bid string) {
		rows = append(rows, rowDef{Group: g, Measurement: m, MmipcID: id, Baseline: b, BaselineID: bid})
	}
	addBW := func(g, m, id, b, bid string) {
		rows = append(rows, rowDef{Group: g, Measurement: m, MmipcID: id, Baseline: b, BaselineID: bid, Throughput: true})
	}
	for _, p := range placements {
		for _, s := range rtSizes {
			m := fmt.Sprintf("round trip %s %s", sizeLabel(s), p)
			for _, b := range spinBases {
				add("roundtrip", m, rtID("mmipc-spin", s, p), b, rtID(b, s, p))
			}
		}
	}
	for _, p := range placements {
		for _, s := range rtSizes {
			m := fmt.Sprintf("blocking round trip %s %s", sizeLabel(s), p)
			for _, b := range blockBases {
				add("blocking", m, rtID("mmipc-futex", s, p), b, rtID(b, s, p))
			}
		}
	}
	for _, s := range bwSizes {
		m := "bandwidth " + sizeLabel(s)
		addBW("bandwidth", m, bwID("mmipc", s), "memcpy (1 core)", bwID("memcpy", s))
		addBW("bandwidth", m, bwID("mmipc", s), "uds", bwID("uds", s))
	}
	add("lifecycle", "create+detach+unlink 4 KiB", lifeID("mmipc-create"), "shm_open+ftruncate+mmap", lifeID("raw-create"))
	add("lifecycle", "open+detach 4 KiB", lifeID("mmipc-open"), "shm_open+fstat+mmap", lifeID("raw-open"))
	add("lifecycle", "Python mmipc.SharedMemory cycle", pyLifeID("mmipc-sharedmemory"), "multiprocessing.shared_memory", pyLifeID("shared_memory"))
	add("lifecycle", "Python mmipc.create/close/unlink", pyLifeID("mmipc-create"), "multiprocessing.shared_memory", pyLifeID("shared_memory"))
	add("abi", "mmipc_size", abiID("mmipc_size"), "plain_size (C .so)", abiID("plain_size"))
	add("abi", "mmipc_data", abiID("mmipc_data"), "plain_size (C .so)", abiID("plain_size"))
	add("abi", "mmipc_open(\"\") control call", abiID("control"), "plain_control (C .so)", abiID("plain_control"))
	add("abi", "Python ctypes mmipc_size", pyABIID("mmipc_size"), "ctypes plain_size", pyABIID("plain_size"))
	add("abi", "Python ctypes control call", pyABIID("control"), "ctypes plain_control", pyABIID("plain_control"))
	add("startup", "start-up wall time", spawnID("startup_mmipc", "wall"), "startup_raw", spawnID("startup_raw", "wall"))
	add("startup", "start-up peak RSS", spawnID("startup_mmipc", "rss"), "startup_raw", spawnID("startup_raw", "rss"))
	for _, p := range placements {
		add("gopeer", "round trip 64 B C<->Go "+p, rtGoID(64, p), "C<->C mmipc-spin", rtID("mmipc-spin", 64, p))
	}
	addBW("gopeer", "bandwidth 64 MiB C->Go", bwGoID(64<<20), "C->C mmipc", bwID("mmipc", 64<<20))
	return append(rows, ringRowDefs()...)
}

// env is what the jobs need to know about this run.
type env struct {
	root, lib, bin, regionDir string
	c                         counts
	cpus                      []int // the CPUs to pin to: the first two the driver may run on
}

// allowedCPUs returns up to two CPUs of the driver's affinity mask (a container may not own CPUs
// 0 and 1), or CPU 0 if the mask cannot be read.
func allowedCPUs() []int {
	var mask [128]uint64
	_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, 0, uintptr(len(mask)*8), uintptr(unsafe.Pointer(&mask[0])))
	var cpus []int
	for i := 0; errno == 0 && i < len(mask)*64 && len(cpus) < 2; i++ {
		if mask[i/64]&(1<<(i%64)) != 0 {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) == 0 {
		cpus = []int{0}
	}
	return cpus
}

func itoa(n int) string { return strconv.Itoa(n) }

// jobs lists every engine process of a full run, in the order they run.
func jobs(e env) []job {
	var js []job
	timeout := time.Duration(e.c.TimeoutSecond) * time.Second
	base := []string{"MMIPC_DIR=" + e.regionDir}
	// Every run is a process of its own (--runs 1), and the driver runs them round-robin: run 1
	// of every measurement, then run 2... A disturbance (another program taking a core for a few
	// seconds) then hits a run of everything rather than every run of one thing, and the median
	// over runs discards it. Unpinned, the scheduler also picks the placement once per process
	// (same core or not, a factor of 50 apart), so the median is the common placement.
	runs := "1"
	// add appends a job; the pointer is valid until the next add.
	add := func(name string, ids []string, argv ...string) *job {
		js = append(js, job{name: name, argv: argv, env: base, ids: ids, runs: 1, procs: e.c.Runs, timeout: timeout})
		return &js[len(js)-1]
	}
	bin := func(name string) string { return filepath.Join(e.bin, name) }
	a, b := e.cpus[0], e.cpus[len(e.cpus)-1]
	cpus := map[string][]string{"unpinned": nil, "2cores": {"--cpus", itoa(a) + "," + itoa(b)}, "1core": {"--cpus", itoa(a) + "," + itoa(a)}}

	rtMechs := []string{"mmipc-spin", "raw-spin", "uds", "pipe", "mq", "mmipc-futex", "raw-futex"}
	for _, p := range placements {
		if p == "2cores" && a == b {
			continue // one CPU to run on: the rows say "not run"
		}
		for _, s := range rtSizes {
			iters := e.c.RTIters
			if p == "1core" {
				iters = e.c.RTSlowIters
			}
			for _, m := range append(slices.Clone(rtMechs), "gopeer") {
				if m == "gopeer" && s != 64 {
					continue
				}
				mech, label, id, peer := m, m, rtID(m, s, p), []string(nil)
				if m == "gopeer" {
					mech, label, id, peer = "mmipc-spin", "mmipc-spin-gopeer", rtGoID(s, p), []string{"--peer", bin("gopeer")}
				}
				argv := []string{bin("pingpong"), "--mech", mech, "--size", itoa(s), "--iters", itoa(iters),
					"--warmup", itoa(e.c.RTWarmup), "--runs", runs, "--id", id}
				if strings.HasSuffix(mech, "-futex") {
					// Always sleep: a short spin first makes these rows bimodal on two cores (both
					// sides settle either spinning, ~0.4 us, or sleeping, ~40 us, run by run), and
					// the blocking rows are about the kernel's wake-up, as pipes and sockets are.
					argv = append(argv, "--spin", "0")
				}
				argv = append(append(argv, peer...), cpus[p]...)
				add(id, []string{id}, argv...)
				js[len(js)-1].rt = &rtMeta{label, s, p}
			}
		}
	}
	ringJobs(e, add, cpus, a == b)
	for _, s := range bwSizes {
		iters := e.c.BWItersSmall
		if s > 1<<20 {
			iters = e.c.BWItersLarge
		}
		for _, m := range []string{"mmipc", "uds", "memcpy"} {
			id := bwID(m, s)
			add(id, []string{id}, bin("bandwidth"), "--mech", m, "--size", itoa(s), "--iters", itoa(iters), "--runs", runs,
				"--id", id)
		}
		if s == 64<<20 {
			id := bwGoID(s)
			add(id, []string{id}, bin("bandwidth"), "--mech", "mmipc", "--size", itoa(s), "--iters", itoa(iters),
				"--runs", runs, "--peer", bin("gopeer"), "--id", id)
		}
	}
	for _, m := range []string{"mmipc-create", "raw-create", "mmipc-open", "raw-open"} {
		add(lifeID(m), []string{lifeID(m)}, bin("lifecycle"), "--mech", m, "--iters", itoa(e.c.LifeIters), "--runs", runs,
			"--id", lifeID(m))
	}
	add("abicost", []string{abiID("mmipc_size"), abiID("mmipc_data"), abiID("plain_size"), abiID("control"), abiID("plain_control")},
		bin("abicost"), "--calls", itoa(e.c.ABICalls), "--samples", itoa(e.c.ABISamples), "--runs", runs)
	for _, prog := range []string{"startup_mmipc", "startup_raw"} {
		add("spawn/"+prog, []string{spawnID(prog, "wall"), spawnID(prog, "rss")},
			bin("spawn"), "--prog", bin(prog), "--iters", itoa(e.c.SpawnIters), "--runs", runs,
			"--id", "spawn/"+prog)
	}
	py := append([]string{}, base...)
	py = append(py, "PYTHONPATH="+filepath.Join(e.root, "python"), "MMIPC_LIB="+filepath.Join(e.lib, "libmmipc.so"),
		"BENCH_PLAIN_LIB="+bin("libbenchplain.so"))
	js = append(js, job{name: "py-lifecycle", env: py, runs: 1, procs: e.c.Runs, timeout: timeout,
		ids:  []string{pyLifeID("shared_memory"), pyLifeID("mmipc-sharedmemory"), pyLifeID("mmipc-create")},
		argv: []string{"python3", filepath.Join(e.root, "bench", "py", "lifecycle.py"), "--iters", itoa(e.c.PyLifeIters), "--runs", runs}})
	js = append(js, job{name: "py-abicost", env: py, runs: 1, procs: e.c.Runs, timeout: timeout,
		ids: []string{pyABIID("mmipc_size"), pyABIID("plain_size"), pyABIID("control"), pyABIID("plain_control")},
		argv: []string{"python3", filepath.Join(e.root, "bench", "py", "abicost.py"), "--calls", itoa(e.c.PyABICalls),
			"--samples", itoa(e.c.ABISamples), "--runs", runs}})
	js = append(js, job{name: "py-ring", env: py, runs: 1, procs: e.c.Runs, timeout: timeout,
		ids: []string{ringPyID("mmipc-ring"), ringPyID("mp-queue"), ringPyID("mp-pipe")},
		argv: []string{"python3", filepath.Join(e.root, "bench", "py", "ring.py"), "--batch", itoa(e.c.PyRingBatch),
			"--batches", itoa(e.c.PyRingBatches), "--warmup", itoa(e.c.PyRingBatch), "--runs", runs}})
	return js
}

// ---- the message ring (bench/c/ring.c, bench/gopeer/ring.go, bench/py/ring.py) --------------

func ringRTID(mech string, size int, place string) string {
	return fmt.Sprintf("ring-rt/%s/%d/%s", mech, size, place)
}
func ringTputID(mech string, size int, place string) string {
	return fmt.Sprintf("ring-tput/%s/%d/%s", mech, size, place)
}
func ringPyID(mech string) string { return "ring-py/" + mech + "/64" }

// ringRowDefs are the ring group's rows. The targets are the goals: a round trip on two
// cores within 1.5x of raw spinning and 10x faster than a Unix socket; a blocking round trip
// within 1.3x of a pure futex hand-off on one and on two cores and never slower than a pipe;
// one-way throughput at least 0.7x a raw SPSC ring's; Go peers at least half as fast as C; Python
// at least 5x multiprocessing.Queue. The round-trip baselines are pingpong's rows of the same
// payload and placement (raw-futex always sleeps: it runs with --spin 0).
func ringRowDefs() []rowDef {
	var rows []rowDef
	add := func(m, id, b, bid string, rate bool, t *target) {
		rows = append(rows, rowDef{Group: "ring", Measurement: m, MmipcID: id, Baseline: b, BaselineID: bid, Rate: rate, Target: t})
	}
	for _, p := range placements {
		for _, s := range rtSizes {
			m := fmt.Sprintf("ring round trip %s %s", sizeLabel(s), p)
			id := ringRTID("mmipc-ring", s, p)
			var tSpin, tFutex, tUDS *target
			if p == "2cores" {
				tSpin, tUDS = atMost(1.5, ""), atMost(0.1, "10x faster")
			}
			if p != "unpinned" {
				tFutex = atMost(1.3, "")
			}
			add(m, id, "raw-spin (pingpong)", rtID("raw-spin", s, p), false, tSpin)
			add(m, id, "raw-futex (pingpong, sleeps)", rtID("raw-futex", s, p), false, tFutex)
			add(m, id, "pipe", rtID("pipe", s, p), false, atMost(1, "never slower"))
			add(m, id, "uds", rtID("uds", s, p), false, tUDS)
			if s == 64 {
				for _, pr := range peerRows("rt", p) { // the competitors (bench/run/peers.go)
					add(m, id, pr.Label, pr.ID, false, nil)
				}
			}
		}
		add("ring round trip 64 B Go responder "+p, ringRTID("mmipc-ring-gopeer", 64, p), "C responder",
			ringRTID("mmipc-ring", 64, p), false, atMost(2, "≥0.5x C's speed"))
		m := "ring throughput 64 B " + p
		id := ringTputID("mmipc-ring", 64, p)
		add(m, id, "raw-spsc (spin, no blocking)", ringTputID("raw-spsc", 64, p), true, atMost(1/0.7, "≥0.7x msg/s"))
		add(m, id, "uds", ringTputID("uds", 64, p), true, nil)
		for _, pr := range peerRows("tput", p) {
			add(m, id, pr.Label, pr.ID, true, nil)
		}
		add("ring throughput 64 B C->Go "+p, ringTputID("mmipc-ring-c2go", 64, p), "C->C", id, true, atMost(2, "≥0.5x msg/s"))
		add("ring throughput 64 B Go->C "+p, ringTputID("mmipc-ring-go2c", 64, p), "C->C", id, true, atMost(2, "≥0.5x msg/s"))
	}
	m := "Python ring 64 B, 2 processes"
	add(m, ringPyID("mmipc-ring"), "multiprocessing.Queue", ringPyID("mp-queue"), true, atMost(0.2, "≥5x msg/s"))
	add(m, ringPyID("mmipc-ring"), "multiprocessing.Pipe bytes", ringPyID("mp-pipe"), true, nil)
	return rows
}

// ringJobs are the ring engines' processes: round trips through two rings at every payload and
// placement (and with a Go responder at 64 B); throughput C->C, raw SPSC, uds, C->Go and Go->C.
// (The Python comparison is with the other Python jobs.)
func ringJobs(e env, add func(name string, ids []string, argv ...string) *job, cpus map[string][]string, skip2 bool) {
	bin := func(name string) string { return filepath.Join(e.bin, name) }
	for _, p := range placements {
		if p == "2cores" && skip2 {
			continue
		}
		iters := e.c.RTIters
		if p == "1core" {
			iters = e.c.RTSlowIters
		}
		for _, s := range rtSizes {
			id := ringRTID("mmipc-ring", s, p)
			add(id, []string{id}, append([]string{bin("ring"), "rt", "--size", itoa(s), "--iters", itoa(iters),
				"--warmup", itoa(e.c.RTWarmup), "--runs", "1", "--id", id}, cpus[p]...)...)
		}
		id := ringRTID("mmipc-ring-gopeer", 64, p)
		add(id, []string{id}, append([]string{bin("ring"), "rt", "--size", "64", "--iters", itoa(iters),
			"--warmup", itoa(e.c.RTWarmup), "--runs", "1", "--peer", bin("gopeer"), "--id", id}, cpus[p]...)...)
		for _, m := range []string{"mmipc-ring", "raw-spsc", "uds", "mmipc-ring-c2go", "mmipc-ring-go2c"} {
			id := ringTputID(m, 64, p)
			batches := e.c.RingBatches
			if m == "uds" {
				batches = e.c.RingUDSBatch
			}
			argv := []string{bin("ring"), "tput", "--mech", strings.TrimSuffix(strings.TrimSuffix(m, "-c2go"), "-go2c"),
				"--size", "64", "--batch", itoa(e.c.RingBatch), "--batches", itoa(batches),
				"--warmup", itoa(e.c.RingWarmup), "--runs", "1", "--id", id}
			switch m {
			case "mmipc-ring-c2go":
				argv = append(argv, "--peer", bin("gopeer"), "--peer-role", "recv")
			case "mmipc-ring-go2c":
				argv = append(argv, "--peer", bin("gopeer"), "--peer-role", "send")
			}
			add(id, []string{id}, append(argv, cpus[p]...)...)
		}
	}
}

// ringMeta describes a ring measurement for the chart from its id alone (the competitors' ids
// follow the same scheme): "ring-rt/<mechanism>/<size>/<placement>" is a round trip,
// "ring-tput/<mechanism>/<size>/<placement>" a throughput; anything else is neither.
func ringMeta(id string) (rt, tput *rtMeta) {
	f := strings.Split(id, "/")
	if len(f) != 4 || (f[0] != "ring-rt" && f[0] != "ring-tput") || !slices.Contains(placements, f[3]) {
		return nil, nil
	}
	size, err := strconv.Atoi(f[2])
	if err != nil || size <= 0 {
		return nil, nil
	}
	m := &rtMeta{Mechanism: f[1], Size: size, Placement: f[3]}
	if f[0] == "ring-rt" {
		return m, nil
	}
	return nil, m
}
