package tests

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/mmipc/mmipc/mmipc"
)

// The cross-language tests of the sync layer (docs/PROTOCOL.md "The sync layer"): real separate
// processes in C (tests/c/syncpeer.c), Go (tests/syncpeer, built with CGO_ENABLED=0) and Python
// (tests/python_syncpeer.py) contend on one mmipc_lock, take it over from a holder of another
// language killed with SIGKILL (also from an unreaped zombie child), and wake each other through
// wait/notify. The three peers share one command line and layout, written at the top of
// tests/syncpeer/main.go. The ring's language matrix is tests/ring_examples_test.go.

var syncLangs = []string{"C", "Go", "Python"}

const (
	syncTimeout    = 60 * time.Second // per process; a hang is a failure
	syncRegionName = "sync-cross"
	syncHalfDone   = 1000000 // the counter value hold leaves (see the peers' layout)

	// Offsets of the shared layout (tests/syncpeer/main.go).
	syncOffSleepers = 12 // the lock's sleepers word
	syncOffState    = 16 // the lock's state word
	syncOffCounter  = 64
	syncOffDirty    = 72
	syncOffRepairs  = 76
	syncOffReady    = 80
	syncOffArrived  = 84
	syncOffWord     = 128
)

// syncPeers: the peers of the sync tests in each language.
func syncPeers(t *testing.T) map[string][]string {
	return peerSet(t, "tests/c/syncpeer.c", "syncpeer", "python_syncpeer.py")
}

// syncRegion creates the shared region in a fresh MMIPC_DIR and returns the directory and the
// region's bytes, through which the test checks what the peers left.
func syncRegion(t *testing.T) (string, []byte) {
	t.Helper()
	dir := regionDir(t)
	r, err := mmipc.Dir(dir).Create(syncRegionName, 4096, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return dir, r.Bytes()
}

func load32(b []byte, off int) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[off])))
}

func load64(b []byte, off int) uint64 {
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&b[off])))
}

// syncProc is a running peer and its process, for the kill.
type syncProc struct {
	*pairProc
}

// startSync starts the peer of lang with args (args[0] is the command) on the region in dir,
// bounded by syncTimeout (then its process group is killed); it is reaped by the end of the test.
func startSync(t *testing.T, dir, lang string, args ...string) *syncProc {
	t.Helper()
	return &syncProc{launch(t, launchSpec{label: lang + " " + strings.Join(args, " "), cmd: args[0],
		argv: append(append([]string{}, syncPeers(t)[lang]...), args...), dir: dir, env: peerEnv(dir),
		timeout: syncTimeout})}
}

// await waits until the peer printed s; it fails the test (with the output) otherwise.
func (p *syncProc) await(t *testing.T, s string) {
	t.Helper()
	if !p.waitFor(s, 20*time.Second) {
		t.Fatalf("%s never printed %q (exited: %v):\n%s", p.label, s, p.exited(), p.out.String())
	}
}

// field returns the value of key=value in the peer's last line ("" if absent).
func (p *syncProc) field(key string) string {
	for _, f := range strings.Fields(lastLine(p.out.String())) {
		if k, v, ok := strings.Cut(f, "="); ok && k == key {
			return v
		}
	}
	return ""
}

func (p *syncProc) intField(t *testing.T, key string) int {
	t.Helper()
	v, err := strconv.Atoi(p.field(key))
	if err != nil {
		t.Fatalf("%s: no integer %s= in %q", p.label, key, lastLine(p.out.String()))
	}
	return v
}

func (p *syncProc) msField(t *testing.T, key string) time.Duration {
	t.Helper()
	v, err := strconv.ParseFloat(p.field(key), 64)
	if err != nil {
		t.Fatalf("%s: no number %s= in %q", p.label, key, lastLine(p.out.String()))
	}
	return time.Duration(v * float64(time.Millisecond))
}

// finishSync waits for the peers and fails the test now if any did not succeed.
func finishSync(t *testing.T, procs ...*syncProc) {
	t.Helper()
	pp := make([]*pairProc, len(procs))
	for i, p := range procs {
		pp[i] = p.pairProc
	}
	if !finish(t, pp...) {
		t.FailNow()
	}
}

// waitSleepers waits until at least n processes sleep in the lock (its sleepers word), so that a
// kill lands while they wait in acquire, not before they got there.
func waitSleepers(t *testing.T, b []byte, n uint32) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for load32(b, syncOffSleepers) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the lock has %d sleepers after 20 s, want %d", load32(b, syncOffSleepers), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkLockFree: after every peer is done, the lock is free, consistent and nobody sleeps on it.
func checkLockFree(t *testing.T, b []byte) {
	t.Helper()
	if o, s, st := load64(b, 0), load32(b, syncOffSleepers), load32(b, syncOffState); o != 0 || s != 0 || st != 0 {
		t.Errorf("the lock after the run: owner %#x sleepers %d state %d, want all 0", o, s, st)
	}
}

// otherLang is a third language for a holder x and a survivor y: the one not in {x, y}, or the
// next one after x when they are the same.
func otherLang(x, y string) string {
	for i, l := range syncLangs {
		if x == y && l == x {
			return syncLangs[(i+1)%len(syncLangs)]
		}
		if x != y && l != x && l != y {
			return l
		}
	}
	panic("unreachable")
}

// TestSyncCrossLockCounter: peers of two languages (every pair), and of all three, increment a
// shared counter under one lock with a non-atomic read-modify-write, all for the same 300 ms after
// a start barrier, so that they really overlap (each counts how often it found the lock busy). A
// lock that lets two holders in loses updates (and a holder sees the counter move under it): the
// count must be exactly the sum of the increments the peers report.
func TestSyncCrossLockCounter(t *testing.T) {
	syncPeers(t)
	const span = 300 * time.Millisecond
	groups := [][]string{{"C", "Go"}, {"C", "Python"}, {"Go", "Python"}, {"C", "Go", "Python"}}
	for _, langs := range groups {
		t.Run(strings.Join(langs, "+"), func(t *testing.T) {
			dir, b := syncRegion(t)
			var procs []*syncProc
			for _, l := range langs {
				procs = append(procs, startSync(t, dir, l, "count", syncRegionName, fmt.Sprint(span.Milliseconds()), fmt.Sprint(len(langs))))
			}
			finishSync(t, procs...)
			total, busy := 0, 0
			for _, p := range procs {
				n, bz := p.intField(t, "n"), p.intField(t, "busy")
				if n == 0 {
					t.Errorf("%s made no increment in %v", p.label, span)
				}
				t.Logf("%s: %d increments, found the lock busy %d times", p.label, n, bz)
				total += n
				busy += bz
			}
			// Acquires must have found the lock held by another peer, or nothing overlapped.
			if busy < 10 {
				t.Errorf("the peers found the lock busy %d times in all: they hardly contended", busy)
			}
			if got, want := load64(b, syncOffCounter), uint64(total); got != want {
				t.Errorf("counter = %d, want %d (%d updates lost)", got, want, int64(want)-int64(got))
			}
			if got := load32(b, syncOffArrived); got != uint32(len(langs)) {
				t.Errorf("arrived = %d, want %d", got, len(langs))
			}
			checkLockFree(t, b)
		})
	}
}

const deathRounds = 200

// checkRepaired: after a takeover, one repair and then `cycles` clean increments.
func checkRepaired(t *testing.T, b []byte, cycles int) {
	t.Helper()
	if got := load32(b, syncOffRepairs); got != 1 {
		t.Errorf("repairs = %d, want exactly 1", got)
	}
	if got := load32(b, syncOffDirty); got != 0 {
		t.Errorf("dirty = %d after the repair, want 0", got)
	}
	if got := load64(b, syncOffCounter); got != uint64(cycles) {
		t.Errorf("counter = %d, want %d (reset by the repair, then one per cycle)", got, cycles)
	}
	checkLockFree(t, b)
}

// startHolder starts hold in lang and waits until it holds the lock with the data half-done.
func startHolder(t *testing.T, dir, lang string, b []byte) *syncProc {
	t.Helper()
	h := startSync(t, dir, lang, "hold", syncRegionName)
	h.await(t, fmt.Sprintf("holding pid=%d\n", h.pid))
	if load32(b, syncOffReady) != 1 || load32(b, syncOffDirty) != 1 || load64(b, syncOffCounter) != syncHalfDone {
		t.Fatalf("%s says it holds the lock, but ready/dirty/counter = %d/%d/%d", h.label,
			load32(b, syncOffReady), load32(b, syncOffDirty), load64(b, syncOffCounter))
	}
	checkOwner(t, b, h.pid)
	return h
}

// checkOwner: the lock's owner word is the identity of pid as PROTOCOL "Process identity" defines
// it, pid | (low 32 bits of /proc/PID/stat field 22) << 32, whichever language wrote it.
func checkOwner(t *testing.T, b []byte, pid int) {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields from 3 on follow the last ')' (the command name may hold anything).
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 20 {
		t.Fatalf("/proc/%d/stat: too few fields: %q", pid, stat)
	}
	start, err := strconv.ParseUint(f[19], 10, 64) // field 22
	if err != nil {
		t.Fatalf("/proc/%d/stat: starttime %q: %v", pid, f[19], err)
	}
	if got, want := load64(b, 0), uint64(pid)|(start&0xFFFFFFFF)<<32; got != want {
		t.Errorf("the lock's owner is %#x, want the holder's identity %#x (pid %d, start time %d)", got, want, pid, start)
	}
}

// TestSyncCrossOwnerDeath: for every (holder, survivor) pair of languages, the holder takes the
// lock, leaves the data half-done and is killed with SIGKILL; the survivor, either already asleep
// in acquire (after checking that the live holder of another language is seen alive: EAGAIN and
// ETIMEDOUT, no steal) or started after the death, gets EOWNERDEAD exactly once, finds the
// half-done state, repairs it and calls consistent; its further cycles and those of a fresh
// process of a third language then succeed with no EOWNERDEAD.
func TestSyncCrossOwnerDeath(t *testing.T) {
	syncPeers(t)
	for _, x := range syncLangs {
		for _, y := range syncLangs {
			for _, mode := range []string{"waiting", "after"} {
				t.Run(x+"-holds/"+y+"-survives/"+mode, func(t *testing.T) {
					dir, b := syncRegion(t)
					holder := startHolder(t, dir, x, b)
					var surv *syncProc
					if mode == "waiting" {
						surv = startSync(t, dir, y, "survive", syncRegionName, fmt.Sprint(deathRounds), "probe")
						surv.await(t, "waiting\n")
						waitSleepers(t, b, 1)
						holder.kill(t)
					} else {
						holder.kill(t)
						surv = startSync(t, dir, y, "survive", syncRegionName, fmt.Sprint(deathRounds), "noprobe")
					}
					checkTakeover(t, dir, b, surv, otherLang(x, y))
				})
			}
		}
	}
}

// TestSyncCrossOwnerDeathOneTaker: two survivors of the two other languages both sleep in acquire
// when the holder is killed: exactly one of them takes the lock over (EOWNERDEAD) and repairs, the
// other gets it afterwards, cleanly, with the repair done.
func TestSyncCrossOwnerDeathOneTaker(t *testing.T) {
	syncPeers(t)
	for i, x := range syncLangs {
		y, z := syncLangs[(i+1)%3], syncLangs[(i+2)%3]
		t.Run(x+"-holds/"+y+"+"+z+"-wait", func(t *testing.T) {
			dir, b := syncRegion(t)
			holder := startHolder(t, dir, x, b)
			var survs []*syncProc
			for _, l := range []string{y, z} {
				s := startSync(t, dir, l, "survive", syncRegionName, fmt.Sprint(deathRounds), "probe")
				s.await(t, "waiting\n")
				survs = append(survs, s)
			}
			waitSleepers(t, b, 2)
			holder.kill(t)
			finishSync(t, survs...)
			if k := survs[0].intField(t, "ownerdead") + survs[1].intField(t, "ownerdead"); k != 1 {
				t.Errorf("%d EOWNERDEADs between the two survivors, want exactly 1", k)
			}
			checkRepaired(t, b, 2*deathRounds)
		})
	}
}

// TestSyncCrossOwnerDeathZombie: the survivor is the holder's parent and has not reaped it, so the
// dead holder is still a zombie (/proc state Z) when the lock is taken over. C and Python fork the
// holder; Go starts its own executable and does not Wait for it until after the takeover. The
// test kills the child; the parent is either already asleep in acquire or starts acquiring once
// it sees the zombie. A fresh process of another language then finds the lock repaired.
func TestSyncCrossOwnerDeathZombie(t *testing.T) {
	syncPeers(t)
	for _, l := range syncLangs {
		for _, mode := range []string{"waiting", "after"} {
			t.Run(l+"-parent/"+mode, func(t *testing.T) {
				dir, b := syncRegion(t)
				parent := startSync(t, dir, l, "zombie", syncRegionName, fmt.Sprint(deathRounds), mode)
				parent.await(t, "child pid=")
				child := 0
				for deadline := time.Now().Add(20 * time.Second); child == 0; time.Sleep(time.Millisecond) {
					out := parent.out.String()
					if i := strings.Index(out, "child pid="); strings.Contains(out[i:], "\n") {
						if _, err := fmt.Sscanf(out[i:], "child pid=%d\n", &child); err != nil || child <= 0 {
							t.Fatalf("a bad \"child pid=\" line (%v):\n%s", err, out)
						}
					} else if time.Now().After(deadline) {
						t.Fatalf("the \"child pid=\" line is incomplete after 20 s:\n%s", out)
					}
				}
				// The child, not some other process, holds the lock.
				parent.await(t, fmt.Sprintf("holding pid=%d\n", child))
				checkOwner(t, b, child)
				if mode == "waiting" {
					parent.await(t, "waiting\n")
					waitSleepers(t, b, 1)
				}
				// The child is the parent's and unreaped until the parent is done: its pid
				// cannot be reused before this kill.
				if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				checkTakeover(t, dir, b, parent, otherLang(l, l))
			})
		}
	}
}

// TestSyncCrossWaitNotify: a waiter in X sleeps on a word with a 10 s timeout; a notifier in Y,
// 100 ms after the waiter armed, changes the word and notifies. The notify must wake a sleeper
// (woken = 1: the futex is shared across processes and languages) and the waiter must be up well
// before its timeout, and not before the change. If the waiter had not reached the kernel in those
// 100 ms (woken = 0 on a loaded machine), the cell proved nothing and is run again.
func TestSyncCrossWaitNotify(t *testing.T) {
	syncPeers(t)
	const delay, limit = 100 * time.Millisecond, 10 * time.Second
	for _, x := range syncLangs {
		for _, y := range syncLangs {
			t.Run(x+"-waits/"+y+"-notifies", func(t *testing.T) {
				for attempt := 1; ; attempt++ {
					dir, b := syncRegion(t)
					w := startSync(t, dir, x, "wait", syncRegionName, fmt.Sprint(limit.Milliseconds()))
					n := startSync(t, dir, y, "notify", syncRegionName, fmt.Sprint(delay.Milliseconds()))
					finishSync(t, w, n)
					elapsed, woken := w.msField(t, "elapsed_ms"), n.intField(t, "woken")
					if woken == 0 && attempt < 3 {
						t.Logf("attempt %d: the waiter was not asleep when notified; again", attempt)
						continue
					}
					if woken != 1 {
						t.Errorf("notify woke %d sleepers, want 1", woken)
					}
					if elapsed < delay || elapsed > limit/2 {
						t.Errorf("the waiter woke after %v, want between %v (the notifier's delay) and %v", elapsed, delay, limit/2)
					}
					if got := load32(b, syncOffWord); got != 1 {
						t.Errorf("word = %d, want 1", got)
					}
					return
				}
			})
		}
	}
}

// TestSyncCrossWaitTimeouts: in each language, with nobody notifying, a wait with timeout 0 is
// EAGAIN at once and one with 200 ms is ETIMEDOUT after no less than 200 ms (and not hugely more).
func TestSyncCrossWaitTimeouts(t *testing.T) {
	syncPeers(t)
	const limit = 200 * time.Millisecond
	for _, x := range syncLangs {
		t.Run(x, func(t *testing.T) {
			dir, _ := syncRegion(t)
			w := startSync(t, dir, x, "wait-timeouts", syncRegionName, fmt.Sprint(limit.Milliseconds()))
			finishSync(t, w)
			if e := w.msField(t, "eagain_ms"); e > time.Second {
				t.Errorf("timeout 0 took %v to say EAGAIN", e)
			}
			// The peers measure on CLOCK_MONOTONIC, as the timeout runs: an ETIMEDOUT sooner than
			// the limit is early.
			if e := w.msField(t, "etimedout_ms"); e < limit || e > limit+3*time.Second {
				t.Errorf("ETIMEDOUT after %v, want %v (at least, and within 3 s more)", e, limit)
			}
		})
	}
}

// checkTakeover finishes the survivor of a killed holder, which must have taken the lock over with
// EOWNERDEAD exactly once; then a fresh process in language third must find the lock repaired (no
// EOWNERDEAD), and the counts of both must add up.
func checkTakeover(t *testing.T, dir string, b []byte, surv *syncProc, third string) {
	t.Helper()
	finishSync(t, surv)
	if k := surv.intField(t, "ownerdead"); k != 1 {
		t.Fatalf("%s: %d EOWNERDEADs, want exactly 1", surv.label, k)
	}
	next := startSync(t, dir, third, "survive", syncRegionName, fmt.Sprint(deathRounds), "noprobe")
	finishSync(t, next)
	if k := next.intField(t, "ownerdead"); k != 0 {
		t.Errorf("%s (after the repair): %d EOWNERDEADs, want 0", next.label, k)
	}
	checkRepaired(t, b, 2*deathRounds)
}
