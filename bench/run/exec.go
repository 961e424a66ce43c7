package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// result is one RESULT line of an engine: the statistics of one run of one measurement.
type result struct {
	ID        string  `json:"id"`
	Group     string  `json:"group"`
	Mechanism string  `json:"mechanism"`
	Param     string  `json:"param"`
	Placement string  `json:"placement"`
	Unit      string  `json:"unit"`
	N         int64   `json:"n"`
	P50       float64 `json:"p50"`
	P99       float64 `json:"p99"`
	Mean      float64 `json:"mean"`
	Min       float64 `json:"min"`
	Max       float64 `json:"max"`
	Bytes     int64   `json:"bytes"`
	// Set by the driver: which run of the measurement this is (0-based) and the job that made it.
	Run int    `json:"run"`
	Job string `json:"job"`
}

const resultPrefix = "RESULT "

// parseResult decodes the JSON after "RESULT " and rejects what could not be a measurement: a
// missing id or unit, or statistics that are not finite and positive (min may be 0 for a
// clock that did not tick, the rest not).
func parseResult(line string) (result, error) {
	var r result
	dec := json.NewDecoder(strings.NewReader(strings.TrimPrefix(line, resultPrefix)))
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("bad RESULT line %q: %v", line, err)
	}
	switch {
	case r.ID == "":
		return r, fmt.Errorf("RESULT line without an id: %q", line)
	case r.Unit != "ns" && r.Unit != "KiB":
		return r, fmt.Errorf("RESULT %s: unit %q is neither ns nor KiB", r.ID, r.Unit)
	case r.N <= 0:
		return r, fmt.Errorf("RESULT %s: n = %d samples", r.ID, r.N)
	case r.Bytes < 0:
		return r, fmt.Errorf("RESULT %s: bytes = %d", r.ID, r.Bytes)
	}
	for _, v := range []struct {
		name string
		v    float64
		zero bool
	}{{"p50", r.P50, false}, {"p99", r.P99, false}, {"mean", r.Mean, false}, {"min", r.Min, true}, {"max", r.Max, false}} {
		if math.IsNaN(v.v) || math.IsInf(v.v, 0) || v.v < 0 || (v.v == 0 && !v.zero) {
			return r, fmt.Errorf("RESULT %s: %s = %v is not a positive number", r.ID, v.name, v.v)
		}
	}
	return r, nil
}

// job is one configuration: an engine command line, run as procs separate processes, each
// reporting every id `runs` times.
type job struct {
	name    string
	argv    []string // argv[0] is a path or a program on PATH
	env     []string
	ids     []string // the measurement ids it must report
	runs    int      // RESULT lines expected for each id from each process
	procs   int      // separate processes to run (0 means 1), their results pooled
	timeout time.Duration
	// For round trips, what the driver asked for: the plot reads these rather than parse ids.
	rt *rtMeta
}

type rtMeta struct {
	Mechanism string `json:"mechanism"` // mmipc-spin, raw-spin, ..., mmipc-spin-gopeer
	Size      int    `json:"size"`      // payload bytes each way
	Placement string `json:"placement"` // unpinned, 2cores, 1core
}

// finishJob checks that a job's processes reported what they should and numbers the runs of
// each id in the order they were printed.
func finishJob(j job, rs []result) error {
	seen := map[string]int{}
	for i := range rs {
		rs[i].Run = seen[rs[i].ID]
		seen[rs[i].ID]++
	}
	return checkCoverage(j, rs)
}

// runProcess runs one engine process with a deadline. The engine gets its own process group, so
// that on a timeout (or ^C) its forked responders die with it instead of spinning on a core
// forever. It returns the RESULT lines, every other line of output, and why it failed.
func runProcess(ctx context.Context, j job, verbose io.Writer) ([]result, string, error) {
	ctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, j.argv[0], j.argv[1:]...)
	// Pdeathsig: if the driver is killed outright, its engine dies too (the engines' own
	// responders already die with their initiator).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A grandchild that escaped the group could hold the pipes open: stop waiting for them then.
	cmd.WaitDelay = 3 * time.Second
	cmd.Env = append(os.Environ(), j.env...)
	var stdout, stderr lockedBuffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	// Even on success, kill whatever the engine left behind in its group (a responder that
	// outlived its initiator would skew every later measurement).
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		reapOrphans()
	}
	var results []result
	var logb strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(stdout.Bytes()))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var perr error
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, resultPrefix) {
			logb.WriteString(line + "\n")
			continue
		}
		r, e := parseResult(line)
		if e != nil {
			perr = errors.Join(perr, e)
			continue
		}
		r.Job = j.name
		results = append(results, r)
	}
	if stderr.Len() > 0 {
		logb.WriteString(stderr.String())
	}
	log := logb.String()
	if verbose != nil && log != "" {
		fmt.Fprintf(verbose, "  | %s\n", strings.ReplaceAll(strings.TrimRight(log, "\n"), "\n", "\n  | "))
	}
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return results, log, fmt.Errorf("timed out after %v (process group killed)", j.timeout)
	case ctx.Err() != nil:
		return results, log, fmt.Errorf("interrupted")
	case err != nil:
		return results, log, fmt.Errorf("%v", err)
	}
	return results, log, perr
}

// checkCoverage checks that the job reported exactly the ids it was meant to, each `runs` times:
// a silently missing measurement would otherwise leave a hole in the table.
func checkCoverage(j job, rs []result) error {
	count := map[string]int{}
	for _, r := range rs {
		count[r.ID]++
	}
	var errs []string
	want := j.runs * max(1, j.procs)
	for _, id := range j.ids {
		if count[id] != want {
			errs = append(errs, fmt.Sprintf("%s: %d RESULT lines, want %d", id, count[id], want))
		}
		delete(count, id)
	}
	for id := range count {
		errs = append(errs, fmt.Sprintf("unexpected id %q (expected one of %s)", id, strings.Join(j.ids, ", ")))
	}
	if errs != nil {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// lockedBuffer is a bytes.Buffer safe for os/exec's copying goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Bytes()
}

func (l *lockedBuffer) String() string { return string(l.Bytes()) }

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

// lastLines returns the last n lines of s, for a failure message that fits on a screen.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// becomeSubreaper makes the driver the parent of the engines' orphans (a responder whose
// initiator was killed), so that reapOrphans can collect them: the container's init may not.
func becomeSubreaper() {
	const prSetChildSubreaper = 36
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
}

// reapOrphans waits for the orphans of a finished job, which have just been sent SIGKILL. It runs
// between jobs, when the driver has no other child that os/exec could be waiting for.
func reapOrphans() {
	deadline := time.Now().Add(2 * time.Second)
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		switch {
		case err == syscall.EINTR || pid > 0:
			continue
		case err != nil: // ECHILD: none left
			return
		case time.Now().After(deadline):
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
