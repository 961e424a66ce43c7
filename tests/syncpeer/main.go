// Command syncpeer is the Go side of the cross-language tests of the sync layer
// (tests/sync_cross_test.go). tests/c/syncpeer.c and tests/python_syncpeer.py are the C and Python
// sides, with the same command line and output, so that the test matrix can put any language in
// any role. It is pure Go and must build with CGO_ENABLED=0.
//
// # Shared layout
//
// The test creates a named region of 4096 bytes; every peer opens it by name (MMIPC_DIR). Words
// are native-endian at these offsets of the region's data (page-aligned, so every word is aligned):
//
//	offset  size  field
//	     0    64  lock     one mmipc_lock (all zeros: unlocked)
//	    64     8  counter  u64, changed only under the lock with a plain load and a separate plain
//	                       store (a non-atomic read-modify-write: a broken lock loses updates)
//	    72     4  dirty    1 while the data is "half-done": set by hold, cleared by the repair
//	    76     4  repairs  how many repairs were made (changed under the lock)
//	    80     4  ready    hold stores 1 once it holds the lock and the data is half-done, then
//	                       notifies the word (mmipc_notify, all waiters)
//	    84     4  arrived  count's start barrier: incremented under the lock by each count peer
//	   128     4  word     the wait/notify word
//	   132     4  armed    wait stores 1 just before it starts waiting on word
//
// Python has no atomics: it reads and writes these words with struct, which on the supported
// (x86-64, arm64) hosts are single aligned loads and stores; every word a Python peer writes has one
// writer at a time (the lock holder, or the only notifier), and the system calls around the writes
// order them.
//
// # Commands
//
// Each prints "ok COMMAND ..." as its last line on success, "FAIL COMMAND: why" and exits 1 on
// failure. Every wait is bounded (20 s unless said otherwise).
//
//	count NAME MS NPEERS      take the lock, arrived += 1, release; wait until arrived reaches NPEERS;
//	                          then for MS milliseconds (the same span for every peer, so that they
//	                          overlap whatever their speed), again and again: acquire (must return
//	                          0), v = counter, re-read counter a few times (it must still be v: else
//	                          "overlap"), counter = v + 1, release. Each acquire is first tried once:
//	                          BUSY counts the EAGAINs (another peer held the lock), then it waits.
//	                          Prints "ok count n=N overlaps=0 busy=BUSY", N its increments.
//	hold NAME                 acquire (must return 0), counter = 1000000, dirty = 1 (the half-done
//	                          state), ready = 1, notify ready, print "holding pid=PID", then sleep:
//	                          the test kills it with SIGKILL; still alive after 60 s is a failure.
//	survive NAME ROUNDS MODE  MODE probe: wait until ready is 1, check that a try-once acquire fails
//	                          with EAGAIN and a 30 ms one with ETIMEDOUT (the live holder, from
//	                          another language, is seen alive), print "waiting", then acquire.
//	                          MODE noprobe: acquire at once. Then ROUNDS acquire/release cycles
//	                          (20 s each). Only the first acquire may return EOWNERDEAD; it must
//	                          then see dirty = 1 and counter = 1000000, and repairs: counter = 0,
//	                          dirty = 0, repairs += 1, consistent. An acquire returning 0 must see
//	                          dirty = 0. Each cycle then does counter += 1 as count does.
//	                          Prints "ok survive ownerdead=K rounds=ROUNDS" (K: EOWNERDEADs seen).
//	zombie NAME ROUNDS MODE   the holder is this process's child: C and Python fork it, Go starts
//	                          its own executable with "hold NAME" and does not Wait for it. Prints
//	                          "child pid=PID", waits until ready is 1; MODE waiting: try-once
//	                          acquire must be EAGAIN, print "waiting", acquire; MODE after: wait
//	                          until /proc/PID/stat says Z (the test has killed the child, nobody
//	                          reaped it), print "zombie", acquire. The acquire must return
//	                          EOWNERDEAD while the child is still an unreaped zombie (checked after
//	                          it); repair as survive, then ROUNDS-1 more cycles that must return 0;
//	                          then reap the child, which must have died of SIGKILL.
//	                          Prints "ok zombie ownerdead=1 rounds=ROUNDS".
//	wait NAME TIMEOUT_MS      v = word; armed = 1; wait on word with v until word != v (a wait may
//	                          return early: wait again for the rest of TIMEOUT_MS); ETIMEDOUT is a
//	                          failure. Prints "ok wait elapsed_ms=E calls=C", E measured from before
//	                          armed was stored to the wake-up.
//	notify NAME DELAY_MS      wait until armed is 1, sleep DELAY_MS (so that the waiter sleeps in
//	                          the kernel), word += 1, notify word (all). Prints "ok notify woken=N".
//	wait-timeouts NAME TIMEOUT_MS
//	                          with nobody notifying: a wait with timeout 0 must fail with EAGAIN,
//	                          then a wait with TIMEOUT_MS must fail with ETIMEDOUT (early returns:
//	                          wait again for the rest). Prints "ok wait-timeouts eagain_ms=E1
//	                          etimedout_ms=E2", E2 measured from the first call to the ETIMEDOUT.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/mmipc/mmipc/mmipc"
)

const (
	offLock    = 0
	offCounter = 64
	offDirty   = 72
	offRepairs = 76
	offReady   = 80
	offArrived = 84
	offWord    = 128
	offArmed   = 132

	halfDone   = 1000000
	rereads    = 16
	waitLimit  = 20 * time.Second
	holdLimit  = 60 * time.Second
	probeShort = 30 * time.Millisecond
)

var command string

func fail(format string, args ...any) {
	fmt.Printf("FAIL %s: %s\n", command, fmt.Sprintf(format, args...))
	os.Exit(1)
}

func ok(format string, args ...any) {
	fmt.Printf("ok %s%s\n", command, fmt.Sprintf(format, args...))
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: syncpeer COMMAND ARGS... (see the comment at the top of tests/syncpeer/main.go)")
	os.Exit(2)
}

// peer is an opened region with its words.
type peer struct {
	r       *mmipc.Region
	lock    *mmipc.Lock
	counter *uint64

	dirty, repairs, ready, arrived, word, armed *uint32
}

func open(name string) *peer {
	r, err := mmipc.Open(name)
	if err != nil {
		fail("open %q: %v", name, err)
	}
	b := r.Bytes()
	if len(b) < 4096 {
		fail("region %q has %d bytes, want 4096", name, len(b))
	}
	l, err := mmipc.LockAt(b[offLock:])
	if err != nil {
		fail("LockAt: %v", err)
	}
	w := func(off int) *uint32 {
		p, err := mmipc.Word(b, off)
		if err != nil {
			fail("Word(%d): %v", off, err)
		}
		return p
	}
	return &peer{r: r, lock: l, counter: (*uint64)(unsafe.Pointer(&b[offCounter])),
		dirty: w(offDirty), repairs: w(offRepairs), ready: w(offReady), arrived: w(offArrived),
		word: w(offWord), armed: w(offArmed)}
}

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// acquire takes the lock with timeout and returns 0 or the errno; EOWNERDEAD (the lock held) is
// returned for the caller to handle, everything else but want is a failure.
func (p *peer) acquire(timeout time.Duration, what string) syscall.Errno {
	err := p.lock.Acquire(timeout)
	if err == nil {
		return 0
	}
	e := errnoOf(err)
	if e == 0 {
		fail("%s: acquire: %v (no errno)", what, err)
	}
	return e
}

func (p *peer) release(what string) {
	if err := p.lock.Release(); err != nil {
		fail("%s: release: %v", what, err)
	}
}

// increment is the guarded non-atomic read-modify-write of counter; it returns whether the counter
// changed under the lock. Each access is an atomic load or store so that the compiler keeps every
// re-read, but the load and the store are separate: two holders at once lose an update.
func (p *peer) increment() (overlap bool) {
	v := atomic.LoadUint64(p.counter)
	for range rereads {
		if atomic.LoadUint64(p.counter) != v {
			overlap = true
		}
	}
	atomic.StoreUint64(p.counter, v+1)
	return overlap
}

// waitReady waits until ready is 1, sleeping on it (hold notifies it).
func (p *peer) waitReady() {
	deadline := time.Now().Add(waitLimit)
	for {
		v := atomic.LoadUint32(p.ready)
		if v == 1 {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			fail("ready is still %d after %v", v, waitLimit)
		}
		if err := mmipc.Wait(p.ready, v, left); err != nil && errnoOf(err) != syscall.ETIMEDOUT {
			fail("wait for ready: %v", err)
		}
	}
}

// repair undoes the half-done state after an EOWNERDEAD and marks the lock consistent.
func (p *peer) repair(what string) {
	if d, c := atomic.LoadUint32(p.dirty), atomic.LoadUint64(p.counter); d != 1 || c != halfDone {
		fail("%s: EOWNERDEAD but dirty = %d, counter = %d; want the holder's half-done 1, %d", what, d, c, halfDone)
	}
	atomic.StoreUint64(p.counter, 0)
	atomic.StoreUint32(p.dirty, 0)
	atomic.StoreUint32(p.repairs, atomic.LoadUint32(p.repairs)+1)
	if err := p.lock.Consistent(); err != nil {
		fail("%s: consistent: %v", what, err)
	}
}

// cycles runs rounds acquire/increment/release cycles; the first (if allowDead) may return
// EOWNERDEAD, which it repairs. It returns how many EOWNERDEADs it saw.
func (p *peer) cycles(rounds int, allowDead bool) int {
	dead := 0
	for i := range rounds {
		what := fmt.Sprintf("cycle %d", i+1)
		switch e := p.acquire(waitLimit, what); e {
		case 0:
			if d := atomic.LoadUint32(p.dirty); d != 0 {
				fail("%s: acquire returned 0 but dirty = %d: a half-done state nobody reported", what, d)
			}
		case syscall.EOWNERDEAD:
			if i > 0 || !allowDead {
				fail("%s: EOWNERDEAD, but nobody died since this process last held the lock", what)
			}
			dead++
			p.repair(what)
		default:
			fail("%s: acquire: %v", what, e)
		}
		if p.increment() {
			fail("%s: the counter changed while this process held the lock", what)
		}
		p.release(what)
	}
	return dead
}

func (p *peer) hold() {
	if e := p.acquire(waitLimit, "hold"); e != 0 {
		fail("acquire: %v, want success on a fresh lock", e)
	}
	atomic.StoreUint64(p.counter, halfDone)
	atomic.StoreUint32(p.dirty, 1)
	atomic.StoreUint32(p.ready, 1)
	if _, err := mmipc.Notify(p.ready, 1<<31-1); err != nil {
		fail("notify ready: %v", err)
	}
	fmt.Printf("holding pid=%d\n", os.Getpid())
	time.Sleep(holdLimit)
	fail("still alive %v after taking the lock: nobody killed it", holdLimit)
}

// procState is the state letter of /proc/PID/stat (parsed after the last ')'), or 0 if unreadable.
func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	command = os.Args[1]
	args := os.Args[2:]
	num := func(i int) int {
		if i >= len(args) {
			usage()
		}
		n, err := strconv.Atoi(args[i])
		if err != nil || n < 0 {
			fmt.Fprintf(os.Stderr, "bad number %q\n", args[i])
			os.Exit(2)
		}
		return n
	}
	word := func(i int) string {
		if i >= len(args) {
			usage()
		}
		return args[i]
	}
	p := open(args[0])

	switch command {
	case "count":
		span, npeers := time.Duration(num(1))*time.Millisecond, uint32(num(2))
		if e := p.acquire(waitLimit, "barrier"); e != 0 {
			fail("barrier: acquire: %v", e)
		}
		atomic.StoreUint32(p.arrived, atomic.LoadUint32(p.arrived)+1)
		p.release("barrier")
		for deadline := time.Now().Add(waitLimit); atomic.LoadUint32(p.arrived) < npeers; {
			if time.Now().After(deadline) {
				fail("only %d of %d peers arrived in %v", atomic.LoadUint32(p.arrived), npeers, waitLimit)
			}
			time.Sleep(100 * time.Microsecond)
		}
		n, overlaps, busy := 0, 0, 0
		for end := time.Now().Add(span); time.Now().Before(end); n++ {
			// A try-once first, to count how often another peer held the lock: the proof that the
			// peers really contended.
			e := p.acquire(mmipc.TryOnce, "increment")
			if e == syscall.EAGAIN {
				busy++
				e = p.acquire(waitLimit, "increment")
			}
			if e != 0 {
				fail("increment %d: acquire: %v", n+1, e)
			}
			if p.increment() {
				overlaps++
			}
			p.release("increment")
		}
		if overlaps > 0 {
			fail("the counter changed under the lock in %d of %d increments", overlaps, n)
		}
		ok(" n=%d overlaps=0 busy=%d", n, busy)

	case "hold":
		p.hold()

	case "survive":
		rounds, mode := num(1), word(2)
		switch mode {
		case "probe":
			p.waitReady()
			if e := p.acquire(mmipc.TryOnce, "probe"); e != syscall.EAGAIN {
				fail("try-once acquire of a lock a live process holds: %v, want EAGAIN", e)
			}
			if e := p.acquire(probeShort, "probe"); e != syscall.ETIMEDOUT {
				fail("%v acquire of a lock a live process holds: %v, want ETIMEDOUT", probeShort, e)
			}
			fmt.Println("waiting")
		case "noprobe":
		default:
			usage()
		}
		dead := p.cycles(rounds, true)
		ok(" ownerdead=%d rounds=%d", dead, rounds)

	case "zombie":
		rounds, mode := num(1), word(2)
		if rounds < 1 || (mode != "waiting" && mode != "after") {
			usage()
		}
		self, err := os.Executable()
		if err != nil {
			fail("os.Executable: %v", err)
		}
		child := exec.Command(self, "hold", args[0])
		child.Stdout, child.Stderr = os.Stdout, os.Stderr
		if err := child.Start(); err != nil {
			fail("starting the holder: %v", err)
		}
		pid := child.Process.Pid
		fmt.Printf("child pid=%d\n", pid)
		p.waitReady()
		if mode == "waiting" {
			if e := p.acquire(mmipc.TryOnce, "probe"); e != syscall.EAGAIN {
				fail("try-once acquire of a lock the live child holds: %v, want EAGAIN", e)
			}
			fmt.Println("waiting")
		} else {
			for deadline := time.Now().Add(waitLimit); procState(pid) != 'Z'; {
				if time.Now().After(deadline) {
					fail("the child %d is not a zombie after %v (state %q)", pid, waitLimit, procState(pid))
				}
				time.Sleep(time.Millisecond)
			}
			fmt.Println("zombie")
		}
		if e := p.acquire(waitLimit, "takeover"); e != syscall.EOWNERDEAD {
			fail("acquire after the child died holding the lock: %v, want EOWNERDEAD", e)
		}
		// Not reaped yet, so the child was an unreaped zombie all along since it died.
		if st := procState(pid); st != 'Z' {
			fail("after the takeover the child's state is %q, want Z (unreaped)", st)
		}
		p.repair("takeover")
		if p.increment() {
			fail("takeover: the counter changed while this process held the lock")
		}
		p.release("takeover")
		p.cycles(rounds-1, false)
		err = child.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			fail("the child ended with %v, want killed by SIGKILL", err)
		}
		ok(" ownerdead=1 rounds=%d", rounds)

	case "wait":
		limit := time.Duration(num(1)) * time.Millisecond
		v := atomic.LoadUint32(p.word)
		start := time.Now()
		atomic.StoreUint32(p.armed, 1)
		calls := 0
		for atomic.LoadUint32(p.word) == v {
			left := limit - time.Since(start)
			if left <= 0 {
				fail("the word is still %d after %v: no wake-up", v, limit)
			}
			calls++
			if err := mmipc.Wait(p.word, v, left); err != nil {
				fail("wait (call %d, %v left): %v", calls, left, err)
			}
		}
		ok(" elapsed_ms=%.3f calls=%d", float64(time.Since(start))/1e6, calls)

	case "notify":
		delay := time.Duration(num(1)) * time.Millisecond
		for deadline := time.Now().Add(waitLimit); atomic.LoadUint32(p.armed) != 1; {
			if time.Now().After(deadline) {
				fail("the waiter did not arm in %v", waitLimit)
			}
			time.Sleep(100 * time.Microsecond)
		}
		time.Sleep(delay)
		atomic.AddUint32(p.word, 1)
		n, err := mmipc.Notify(p.word, 1<<31-1)
		if err != nil {
			fail("notify: %v", err)
		}
		ok(" woken=%d", n)

	case "wait-timeouts":
		limit := time.Duration(num(1)) * time.Millisecond
		v := atomic.LoadUint32(p.word)
		start := time.Now()
		if e := errnoOf(mmipc.Wait(p.word, v, mmipc.TryOnce)); e != syscall.EAGAIN {
			fail("wait with timeout 0 on an unchanged word: %v, want EAGAIN", e)
		}
		eagain := time.Since(start)
		start = time.Now()
		for {
			// An early return (allowed: spurious) waits again for the rest, at least 1 ns, which
			// still must end in ETIMEDOUT.
			left := max(limit-time.Since(start), 1)
			err := mmipc.Wait(p.word, v, left)
			if e := errnoOf(err); e == syscall.ETIMEDOUT {
				break
			} else if err != nil {
				fail("wait: %v, want ETIMEDOUT", err)
			}
			if w := atomic.LoadUint32(p.word); w != v {
				fail("the word changed to %d: somebody notified", w)
			}
		}
		ok(" eagain_ms=%.3f etimedout_ms=%.3f", float64(eagain)/1e6, float64(time.Since(start))/1e6)

	default:
		usage()
	}
	if err := p.r.Close(); err != nil {
		fail("close: %v", err)
	}
}
