package tests

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/mmipc/mmipc/mmipc"
	"github.com/mmipc/mmipc/tests/hmsg"
)

// TestHardeningCrash kills writers with SIGKILL at random moments, hundreds of times, and checks
// that nothing a dead process leaves behind can hurt the survivors (issue 7):
//
//   - the test process (pure Go) makes a ring, a lock region whose lock guards a two-field invariant
//     (a0 == a1, broken between two stores with a pause in between) and a region it only keeps, and
//     stays attached to all three;
//   - each iteration starts a writer (C and Go in turn, every tenth one Python; the peers are
//     tests/c/crash_writer.c, tests/crashwriter, tests/python_crash_writer.py, whose loop is
//     specified in tests/crashwriter/main.go): it opens the ring and the lock region, creates
//     "scratch-<i>", then loops taking the lock and sending checksummed numbered messages through
//     reserve/commit with a pause before the commit. Once it is ready and its first message
//     arrived (the ring works after the previous kill), it is killed after a random 0-30 ms. Two
//     iterations in twenty kill a writer during its start-up instead, while it creates a 32 MiB
//     scratch region, so that some die inside the creation protocol;
//   - a receiver in this process (Ring.Recv) verifies every delivered message: length, checksum,
//     payload, and each writer's numbers 0, 1, 2, ... with no gap: a torn message fails the test;
//   - after each kill: the lock's owner word names the dead writer exactly when it held the lock,
//     and then (and only then) the next acquire (within 2 s) reports EOWNERDEAD; the invariant is
//     whole unless the writer died holding the lock, and is repaired. Every eighth kill holding the
//     lock leaves the repair to the next writer, which must report it. A writer killed between
//     reserve and commit delivered nothing of that message;
//   - garbage collection, through C (mmipc_gc, tests/c/hardening_gc.c) a quarter of the way,
//     Python (mmipc.gc) half way, Go (Dir.Collect) three quarters of the way, and the mmipc
//     command (mmipc stat, mmipc gc --dry-run, mmipc gc) at the end, removes exactly the dead writers' scratch regions and leftover creation temp
//     files: not the ring, the lock region or the kept region (this process is attached), nor
//     "helper-held" and "scratch-0" (a live helper process holds them).
//
// MMIPC_CRASH_RUNS sets the number of iterations (200), MMIPC_CRASH_SEED the seed of the kill
// delays (else the time; it is logged).
func TestHardeningCrash(t *testing.T) {
	runs := hardeningEnvInt(t, "MMIPC_CRASH_RUNS", 200)
	if runs < 4 {
		t.Fatalf("MMIPC_CRASH_RUNS=%d: at least 4 are needed (one gc in each quarter)", runs)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MMIPC_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MMIPC_CRASH_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (MMIPC_CRASH_SEED=%d repeats the kill delays), %d runs", seed, seed, runs)
	rng := rand.New(rand.NewPCG(seed, 0x6d6d697063))
	writers := crashWriters(t)
	gcBin := compileC(t, "tests/c/hardening_gc.c")
	begin := time.Now()

	c := newCrashFixture(t)
	go c.receive()
	defer c.stopReceiver()

	var (
		st           = crashStats{byLang: map[string]int{}}
		helper       *helperProc
		readySince   []int // writers that created their scratch region since the last gc
		pendingFixed bool  // the last writer died holding the lock; the next one must repair it
		setup        = map[string]time.Duration{"C": 30 * time.Millisecond, "Go": 30 * time.Millisecond}
	)
	for i := 0; i < runs; i++ {
		lang := "C"
		if i%2 == 1 {
			lang = "Go"
		}
		if i%10 == 5 {
			lang = "Python"
		}
		early := crashEarly(i)
		scratchSize := 4096
		if early {
			scratchSize = 32 << 20 // a creation long enough to be hit
		}
		st.byLang[lang]++
		w := c.start(t, writers[lang], lang, i, scratchSize)

		var delay time.Duration
		if early {
			// Anywhere from the exec to about when such a writer was ready last time.
			delay = time.Duration(rng.Int64N(int64(setup[lang]) + 1))
			st.early++
		} else {
			took := c.awaitReady(t, w, i)
			if lang != "Python" {
				setup[lang] = took
			}
			readySince = append(readySince, i)
			c.awaitFirstMessage(t, w, i)
			if pendingFixed {
				st.writerRepairs++
				if got := atomic.LoadUint32(c.u32(crashOffRepairs)); got != uint32(st.writerRepairs) {
					t.Fatalf("run %d (%s): repairs word %d, want %d: the writer did not report repairing the lock its dead predecessor held", i, lang, got, st.writerRepairs)
				}
				pendingFixed = false
			}
			delay = time.Duration(rng.Int64N(int64(30*time.Millisecond) + 1))
		}
		time.Sleep(delay)
		w.kill(t)
		st.kills++

		c.drain(t)
		c.checkMessages(t, seed)
		pendingFixed = c.afterKill(t, w, i, early, i+1 < runs && !crashEarly(i+1), &st)

		switch i {
		case 0:
			// The live helper: holds its own region and the first dead writer's scratch region.
			helper = startHelper(t, c.dir, writers["Go"][0])
		case runs / 4:
			c.collect(t, "C", gcBin, readySince, &st)
			readySince = nil
		case runs / 2:
			c.collect(t, "Python", "", readySince, &st)
			readySince = nil
		case 3 * runs / 4:
			c.collect(t, "Go", "", readySince, &st)
			readySince = nil
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	if pendingFixed {
		t.Fatal("the last writer left the lock to be repaired") // never chosen: see afterKill
	}
	c.collect(t, "command", mmipcCommand(t), readySince, &st)
	helper.stop(t)
	c.stopReceiver()
	c.finalChecks(t, runs)
	c.checkMessages(t, seed)

	c.mu.Lock()
	verified, torn := c.verified, len(c.bad)
	c.mu.Unlock()
	t.Logf("crash totals in %v: %d kills (C %d, Go %d, Python %d; %d during start-up), %d while holding the lock "+
		"(%d with the invariant broken; %d repaired by the next writer), %d between reserve and commit (%d just after "+
		"the commit), %d messages verified, %d torn, %d regions and temp files collected (%d temp files; per gc: %s), "+
		"slowest takeover %v",
		time.Since(begin).Round(time.Millisecond), st.kills, st.byLang["C"], st.byLang["Go"], st.byLang["Python"], st.early,
		st.holding, st.broken, st.writerRepairs, st.midReserve, st.afterCommit, verified, torn, st.collected, st.tempFiles,
		strings.Join(st.gcRounds, ", "), st.slowestTakeover)
	if st.holding == 0 || st.midReserve == 0 {
		t.Errorf("no kill landed while a writer held the lock (%d) or between reserve and commit (%d): the test did not test", st.holding, st.midReserve)
	}
}

// The names and the lock region's layout (tests/crashwriter/main.go).
const (
	crashRing    = "crash-ring"
	crashLock    = "crash-lock"
	crashKeep    = "crash-keep"
	crashHelper  = "helper-held"
	crashHeldOld = "scratch-0"

	crashOffA0      = 64
	crashOffA1      = 72
	crashOffPhase   = 80
	crashOffReady   = 84
	crashOffRepairs = 88
	crashOffResvSeq = 96

	crashRingCapacity = 16 << 10 // small: records wrap and pad often
)

type crashStats struct {
	kills, early, holding, broken, writerRepairs int
	midReserve, afterCommit                      int
	collected, tempFiles                         int
	slowestTakeover                              time.Duration
	byLang                                       map[string]int
	gcRounds                                     []string
}

// crashEarly: writer i is killed while it starts (a C or a Go one), not once it runs its loop.
func crashEarly(i int) bool { return i%20 == 4 || i%20 == 13 }

func (st *crashStats) gc(how string, removed, temps int) {
	st.collected += removed
	st.tempFiles += temps
	st.gcRounds = append(st.gcRounds, fmt.Sprintf("%s %d", how, removed))
}

func hardeningEnvInt(t *testing.T, key string, def int) int {
	t.Helper()
	s := os.Getenv(key)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		t.Fatalf("%s=%q: want a positive number", key, s)
	}
	return v
}

func crashWriters(t *testing.T) map[string][]string {
	return peerSet(t, "tests/c/crash_writer.c", "crashwriter", "python_crash_writer.py")
}

// startHardening starts argv with env added, in its own process group, killed (the group) after
// limit, with a stdin pipe if asked; it is always reaped by the end of the test.
func startHardening(t *testing.T, label string, limit time.Duration, env []string, stdin bool, argv ...string) (*pairProc, io.WriteCloser) {
	t.Helper()
	p := launch(t, launchSpec{label: label, argv: argv, env: env, timeout: limit, stdin: stdin})
	return p, p.stdin
}

// crashFixture is the test process's side: the regions it stays attached to and the receiver.
type crashFixture struct {
	dir  string
	d    mmipc.Dir
	ring *mmipc.Ring
	lr   *mmipc.Region
	lb   []byte
	lock *mmipc.Lock

	stop     chan struct{}
	stopped  chan struct{}
	stopOnce sync.Once
	drainReq chan chan struct{}

	mu       sync.Mutex
	counts   map[uint32]int // messages received per writer
	verified int
	bad      []string // every message that failed verification, or broke a writer's order
}

func newCrashFixture(t *testing.T) *crashFixture {
	dir := regionDir(t)
	d := mmipc.Dir(dir)
	q, err := d.CreateRing(crashRing, crashRingCapacity, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	lr, err := d.Create(crashLock, 4096, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lr.Close() })
	keep, err := d.Create(crashKeep, 4096, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keep.Close() })
	lock, err := mmipc.LockAt(lr.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return &crashFixture{dir: dir, d: d, ring: q, lr: lr, lb: lr.Bytes(), lock: lock,
		stop: make(chan struct{}), stopped: make(chan struct{}), drainReq: make(chan chan struct{}),
		counts: map[uint32]int{}}
}

func (c *crashFixture) u64(off int) *uint64 { return (*uint64)(unsafe.Pointer(&c.lb[off])) }
func (c *crashFixture) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&c.lb[off])) }

// receive drains the ring until stopped, verifying every message; a drain request is answered
// once the ring was found empty after it was made.
func (c *crashFixture) receive() {
	defer close(c.stopped)
	buf := make([]byte, c.ring.MaxMessage())
	var waiting []chan struct{}
	for {
		select {
		case <-c.stop:
			return
		case req := <-c.drainReq:
			waiting = append(waiting, req)
		default:
		}
		n, err := c.ring.Recv(buf, 5*time.Millisecond)
		if errors.Is(err, syscall.ETIMEDOUT) {
			for _, req := range waiting {
				close(req)
			}
			waiting = nil
			continue
		}
		c.mu.Lock()
		if err != nil {
			c.bad = append(c.bad, "Recv: "+err.Error())
			c.mu.Unlock()
			time.Sleep(10 * time.Millisecond) // reported by the test; do not spin on it
			continue
		}
		seq, sender, flags, verr := hmsg.Verify(buf[:n])
		switch {
		case verr != nil:
			c.bad = append(c.bad, verr.Error())
		case flags != 0:
			c.bad = append(c.bad, fmt.Sprintf("seq %d from %d: flags %#x (writers send no end marker)", seq, sender, flags))
		case seq != uint64(c.counts[sender]):
			c.bad = append(c.bad, fmt.Sprintf("writer %d: seq %d after %d messages (lost, repeated or reordered)", sender, seq, c.counts[sender]))
		default:
			c.counts[sender]++
			c.verified++
		}
		c.mu.Unlock()
	}
}

func (c *crashFixture) stopReceiver() {
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.stopped
}

// received is how many messages writer id delivered so far.
func (c *crashFixture) received(id int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[uint32(id)]
}

// checkMessages fails the test at once when a delivered message failed verification.
func (c *crashFixture) checkMessages(t *testing.T, seed uint64) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.bad) > 0 {
		t.Fatalf("%d delivered messages failed verification (torn, lost, repeated or reordered; seed %d):\n%s",
			len(c.bad), seed, strings.Join(c.bad[:min(len(c.bad), 20)], "\n"))
	}
}

// drain waits until the receiver found the ring empty after the kill: every message the dead
// writer committed has then been checked.
func (c *crashFixture) drain(t *testing.T) {
	t.Helper()
	req := make(chan struct{})
	select {
	case c.drainReq <- req:
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver does not answer")
	}
	select {
	case <-req:
	case <-time.After(10 * time.Second):
		t.Fatal("the ring was not found empty within 10 s of the kill")
	}
}

func (c *crashFixture) start(t *testing.T, argv []string, lang string, i, scratchSize int) *pairProc {
	t.Helper()
	args := append(append([]string{}, argv...), "write", crashRing, crashLock, strconv.Itoa(i), strconv.Itoa(scratchSize))
	p, _ := startHardening(t, fmt.Sprintf("%s writer %d", lang, i), time.Minute, peerEnv(c.dir), false, args...)
	return p
}

// awaitReady waits until writer i stored ready = i+1, and returns how long it took from the exec.
func (c *crashFixture) awaitReady(t *testing.T, w *pairProc, i int) time.Duration {
	t.Helper()
	word := c.u32(crashOffReady)
	deadline := time.Now().Add(20 * time.Second)
	for {
		v := atomic.LoadUint32(word)
		if v == uint32(i+1) {
			return time.Since(w.start)
		}
		if w.exited() || time.Now().After(deadline) {
			t.Fatalf("%s never got ready (exited: %v, %v):\n%s", w.label, w.exited(), w.err, w.out.String())
		}
		mmipc.Wait(word, v, 10*time.Millisecond)
	}
}

// awaitFirstMessage waits until writer i's first message arrived: the ring works after the kills
// before.
func (c *crashFixture) awaitFirstMessage(t *testing.T, w *pairProc, i int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for c.received(i) == 0 {
		if w.exited() || time.Now().After(deadline) {
			t.Fatalf("%s: no message arrived (exited: %v, %v):\n%s", w.label, w.exited(), w.err, w.out.String())
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// afterKill checks the lock and the ring after writer i was killed and the ring drained, and
// repairs the invariant, unless it leaves that to the next writer (returned true; only when
// nextRepairs, the next writer being one that runs its loop).
func (c *crashFixture) afterKill(t *testing.T, w *pairProc, i int, early, nextRepairs bool, st *crashStats) bool {
	t.Helper()
	owner := atomic.LoadUint64(c.u64(0))
	held := owner != 0
	if held && int(uint32(owner)) != w.pid {
		t.Fatalf("%s (pid %d) killed: the lock's owner is %#x (pid %d), not the dead writer", w.label, w.pid, owner, uint32(owner))
	}
	phase := atomic.LoadUint32(c.u32(crashOffPhase))
	if phase == 1 && !held {
		t.Fatalf("%s killed inside its critical section (phase 1), yet the lock is free", w.label)
	}
	a0, a1 := atomic.LoadUint64(c.u64(crashOffA0)), atomic.LoadUint64(c.u64(crashOffA1))
	if !held && a0 != a1 {
		t.Fatalf("%s killed without holding the lock, yet a0 %d != a1 %d", w.label, a0, a1)
	}

	// A kill between reserve and commit: the reserved message must not have been delivered.
	if phase == 2 {
		resv, got := atomic.LoadUint64(c.u64(crashOffResvSeq)), uint64(c.received(i))
		switch got {
		case resv:
			st.midReserve++
		case resv + 1:
			st.afterCommit++ // killed after the commit, before it cleared the phase word
		default:
			t.Fatalf("%s killed with message %d reserved: %d of its messages were delivered", w.label, resv, got)
		}
	}
	// The next writer starts from a clean record (this process is the only one alive now).
	atomic.StoreUint32(c.u32(crashOffPhase), 0)
	atomic.StoreUint64(c.u64(crashOffResvSeq), 0)

	if held {
		st.holding++
		if a0 != a1 {
			st.broken++
		}
		if nextRepairs && st.holding%8 == 3 {
			return true
		}
	}
	begin := time.Now()
	err := c.lock.Acquire(2 * time.Second)
	took := time.Since(begin)
	switch {
	case held && errors.Is(err, syscall.EOWNERDEAD):
		st.slowestTakeover = max(st.slowestTakeover, took)
		atomic.StoreUint64(c.u64(crashOffA1), atomic.LoadUint64(c.u64(crashOffA0)))
		if err := c.lock.Consistent(); err != nil {
			t.Fatal(err)
		}
	case held:
		t.Fatalf("%s died holding the lock; Acquire returned %v after %v, want EOWNERDEAD", w.label, err, took)
	case err != nil:
		t.Fatalf("%s died without holding the lock; Acquire returned %v after %v, want success", w.label, err, took)
	}
	if x, y := atomic.LoadUint64(c.u64(crashOffA0)), atomic.LoadUint64(c.u64(crashOffA1)); x != y {
		t.Fatalf("after %s: a0 %d != a1 %d under the lock", w.label, x, y)
	}
	if err := c.lock.Release(); err != nil {
		t.Fatal(err)
	}
	if !early && c.received(i) == 0 {
		t.Fatalf("%s delivered no message", w.label)
	}
	return false
}

// helperProc is the live helper process: a gc must leave what it holds.
type helperProc struct {
	*pairProc
	stdin io.WriteCloser
}

func startHelper(t *testing.T, dir, goPeer string) *helperProc {
	t.Helper()
	p, w := startHardening(t, "helper", 10*time.Minute, peerEnv(dir), true, goPeer, "hold", crashHelper, crashHeldOld)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.out.String(), "holding\n") {
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("the helper did not start holding:\n%s", p.out.String())
		}
		time.Sleep(time.Millisecond)
	}
	return &helperProc{p, w}
}

func (h *helperProc) stop(t *testing.T) {
	t.Helper()
	h.stdin.Close()
	select {
	case <-h.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the helper did not exit after its stdin closed")
	}
	if h.err != nil || !strings.HasSuffix(h.out.String(), "ok hold\n") {
		t.Errorf("helper: %v\n%s", h.err, h.out.String())
	}
}

// collect runs one garbage collection (how: "C", "Python" or "Go") with no writer alive and checks
// it removed exactly the dead writers' scratch regions and temp files, adding them to st.
func (c *crashFixture) collect(t *testing.T, how, gcBin string, readySince []int, st *crashStats) {
	t.Helper()
	keep := []string{crashRing, crashLock, crashKeep, crashHelper, crashHeldOld}
	var want []string
	temps := 0
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case slices.Contains(keep, name):
		case strings.HasPrefix(name, "scratch-"):
			want = append(want, name)
		case strings.HasPrefix(name, ".mmipc-") && strings.HasSuffix(name, ".tmp"):
			// A dead writer's: the pid in its name. Should that pid belong to a new process
			// already (pid_max is 32768 here), the file is rightly kept.
			pid, _, _ := strings.Cut(strings.TrimPrefix(name, ".mmipc-"), "-")
			if _, err := os.Stat("/proc/" + pid); err == nil {
				t.Logf("%s: its pid is in use again: kept", name)
				keep = append(keep, name)
				continue
			}
			want = append(want, name)
			temps++
		default:
			t.Fatalf("unexpected file %q in the region directory", name)
		}
	}
	for _, i := range readySince {
		if name := "scratch-" + strconv.Itoa(i); name != crashHeldOld && !slices.Contains(want, name) {
			t.Fatalf("%s is missing before the gc: writer %d created it", name, i)
		}
	}
	slices.Sort(want)

	dry, err := c.d.Collect(true)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(dry)
	if !slices.Equal(dry, want) {
		t.Fatalf("Collect(true) would remove %q, want %q", dry, want)
	}

	statArgs := []string{crashRing, crashLock, crashKeep, crashHelper, crashHeldOld}
	removed := -1
	var out string
	switch how {
	case "C":
		r := runProgram(t, time.Minute, c.dir, peerEnv(c.dir), gcBin, statArgs...)
		if r.code != 0 {
			t.Fatalf("hardening_gc: exit %d\n%s", r.code, r.out)
		}
		out = r.out
	case "Python":
		script := "import sys, mmipc\n" +
			"for n in sys.argv[1:]:\n" +
			"    i = mmipc.stat(n)\n" +
			"    print(f'stat {n} attached={int(i.attached)} ring={int(i.ring)}')\n" +
			"print(f'ok gc removed={mmipc.gc()}')\n"
		r := runProgram(t, time.Minute, c.dir, peerEnv(c.dir), python3(t), append([]string{"-c", script}, statArgs...)...)
		if r.code != 0 {
			t.Fatalf("python mmipc.gc: exit %d\n%s", r.code, r.out)
		}
		out = r.out
	case "Go":
		for _, name := range statArgs {
			info, err := c.d.Stat(name)
			if err != nil {
				t.Fatal(err)
			}
			out += fmt.Sprintf("stat %s attached=%d ring=%d\n", name, crashBit(info.Attached), crashBit(info.Ring))
		}
		names, err := c.d.Collect(false)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(names)
		if !slices.Equal(names, want) {
			t.Fatalf("Collect(false) removed %q, want %q", names, want)
		}
		out += fmt.Sprintf("ok gc removed=%d\n", len(names))
	case "command":
		out = c.collectByCommand(t, gcBin, statArgs, want)
	}
	for _, name := range statArgs {
		line := fmt.Sprintf("stat %s attached=1 ring=%d\n", name, crashBit(name == crashRing))
		if !strings.Contains(out, line) {
			t.Errorf("%s gc: no line %q in\n%s", how, line, out)
		}
	}
	if _, err := fmt.Sscanf(lastLine(out), "ok gc removed=%d", &removed); err != nil || removed != len(want) {
		t.Fatalf("%s gc removed %d (%q), want %d: %q", how, removed, lastLine(out), len(want), want)
	}

	entries, err = os.ReadDir(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	slices.Sort(keep)
	if !slices.Equal(left, keep) {
		t.Fatalf("after the %s gc the directory holds %q, want %q", how, left, keep)
	}
	st.gc(how, removed, temps)
}

func crashBit(b bool) int {
	if b {
		return 1
	}
	return 0
}

// collectByCommand is collect's round through the mmipc command (gcBin): "mmipc stat" of each
// name, "mmipc gc --dry-run" and "mmipc gc", each checked against want; it returns the round's
// report in the form the other rounds print.
func (c *crashFixture) collectByCommand(t *testing.T, bin string, statArgs, want []string) string {
	t.Helper()
	run := func(args ...string) string {
		r := runProgram(t, time.Minute, c.dir, peerEnv(c.dir), bin, args...)
		if r.code != 0 {
			t.Fatalf("mmipc %s: exit %d\n%s", strings.Join(args, " "), r.code, r.out)
		}
		return r.out
	}
	var out string
	for _, name := range statArgs {
		fields := map[string]string{}
		for _, line := range strings.Split(run("stat", name), "\n") {
			if k, v, ok := strings.Cut(line, ": "); ok {
				fields[k] = v
			}
		}
		out += fmt.Sprintf("stat %s attached=%d ring=%d\n", name, crashBit(fields["attached"] == "yes"), crashBit(fields["kind"] == "ring"))
	}
	listed := func(text, prefix string) []string {
		var names []string
		for _, line := range strings.Split(text, "\n") {
			if name, ok := strings.CutPrefix(line, prefix); ok {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		return names
	}
	if dry := listed(run("gc", "--dry-run"), "would remove "); !slices.Equal(dry, want) {
		t.Fatalf("mmipc gc --dry-run lists %q, want %q", dry, want)
	}
	removed := listed(run("gc"), "removed ")
	if !slices.Equal(removed, want) {
		t.Fatalf("mmipc gc removed %q, want %q", removed, want)
	}
	return out + fmt.Sprintf("ok gc removed=%d\n", len(removed))
}

// finalChecks: after the last gc, the ring still carries a message to this process's receiver,
// the lock is free and consistent, and what was kept is there and attached.
func (c *crashFixture) finalChecks(t *testing.T, runs int) {
	t.Helper()
	q, err := c.d.OpenRing(crashRing)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	msg := make([]byte, 100)
	hmsg.Fill(msg, 0, uint32(runs), 0)
	if err := q.Send(msg, time.Second); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, c.ring.MaxMessage())
	n, err := c.ring.Recv(buf, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if seq, sender, _, err := hmsg.Verify(buf[:n]); err != nil || seq != 0 || sender != uint32(runs) {
		t.Fatalf("the last message: seq %d sender %d %v", seq, sender, err)
	}
	if err := c.lock.Acquire(mmipc.TryOnce); err != nil {
		t.Fatalf("the lock after the run: %v", err)
	}
	c.lock.Release()
}
