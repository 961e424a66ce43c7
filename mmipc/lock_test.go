package mmipc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// lockWords reads a lock's fields straight from its bytes.
func lockWords(l *Lock) (owner uint64, wakeSeq, sleepers, state uint32) {
	return atomic.LoadUint64(l.owner), atomic.LoadUint32(l.wakeSeq), atomic.LoadUint32(l.sleepers), atomic.LoadUint32(l.state)
}

func mustLock(t *testing.T, b []byte) *Lock {
	t.Helper()
	l, err := LockAt(b)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func wantLockErr(t *testing.T, err error, op string, errno syscall.Errno) {
	t.Helper()
	wantErr(t, err, op, "", errno)
}

func TestLockAt(t *testing.T) {
	b := anonBytes(t, 4096)
	for _, off := range []int{0, 64, 4096 - 64} {
		l, err := LockAt(b[off:])
		if err != nil {
			t.Fatalf("LockAt(b[%d:]): %v", off, err)
		}
		if len(l.mem) != LockSize || &l.mem[0] != &b[off] {
			t.Fatalf("LockAt(b[%d:]) does not cover b[%d:%d]", off, off, off+64)
		}
	}
	for _, c := range []struct {
		what string
		b    []byte
	}{
		{"nil", nil},
		{"63 bytes", b[:63]},
		{"the last 63 bytes", b[4096-63:]},
		{"offset 8", b[8:]},
		{"offset 32", b[32:]},
		{"offset 1", b[1:]},
	} {
		l, err := LockAt(c.b)
		wantLockErr(t, err, "lock_at", syscall.EINVAL)
		if l != nil {
			t.Fatalf("LockAt(%s) returned a lock with its error", c.what)
		}
	}
}

// TestLockErrnos walks every outcome of the lock's calls, with the words it leaves behind.
func TestLockErrnos(t *testing.T) {
	b := anonBytes(t, 4096)
	l := mustLock(t, b[128:])
	self := selfIdentity()
	if err := l.Acquire(-2); err == nil {
		t.Fatal("Acquire(-2) succeeded")
	} else {
		wantLockErr(t, err, "lock_acquire", syscall.EINVAL)
	}
	// A free (all-zero) lock: release and consistent are EPERM.
	wantLockErr(t, l.Release(), "lock_release", syscall.EPERM)
	wantLockErr(t, l.Consistent(), "lock_consistent", syscall.EPERM)

	if err := l.Acquire(TryOnce); err != nil {
		t.Fatalf("Acquire(TryOnce) of a free lock: %v", err)
	}
	if o, _, _, st := lockWords(l); o != self || st != 0 {
		t.Fatalf("held: owner %#x state %d; want %#x, 0", o, st, self)
	}
	// Held by this (live) process: not recursive.
	wantLockErr(t, l.Acquire(TryOnce), "lock_acquire", syscall.EAGAIN)
	start := time.Now()
	wantLockErr(t, l.Acquire(30*time.Millisecond), "lock_acquire", syscall.ETIMEDOUT)
	if el := time.Since(start); el < 30*time.Millisecond || el > 5*time.Second {
		t.Fatalf("Acquire(30ms) gave up after %v", el)
	}
	if _, _, sl, _ := lockWords(l); sl != 0 {
		t.Fatalf("sleepers %d after a timed-out acquire", sl)
	}
	// Held, but not taken over: Consistent is EINVAL.
	wantLockErr(t, l.Consistent(), "lock_consistent", syscall.EINVAL)
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if o, _, _, st := lockWords(l); o != 0 || st != 0 {
		t.Fatalf("released: owner %#x state %d", o, st)
	}
	wantLockErr(t, l.Release(), "lock_release", syscall.EPERM)

	// Held by another live process (pid 1 with its true start time, when /proc tells it): Release
	// and Consistent are EPERM, Acquire waits.
	if st, _, ok := procStat(1); ok {
		other := makeIdentity(1, st)
		atomic.StoreUint64(l.owner, other)
		wantLockErr(t, l.Release(), "lock_release", syscall.EPERM)
		wantLockErr(t, l.Consistent(), "lock_consistent", syscall.EPERM)
		wantLockErr(t, l.Acquire(TryOnce), "lock_acquire", syscall.EAGAIN)
		wantLockErr(t, l.Acquire(5*time.Millisecond), "lock_acquire", syscall.ETIMEDOUT)
		if o, _, _, _ := lockWords(l); o != other {
			t.Fatalf("the live holder was replaced by %#x", o)
		}
		l.Init()
	}

	// Unknown state bits: EPROTO, and the lock is not taken.
	for _, st := range []uint32{4, 1 << 31, 5} {
		l.Init()
		atomic.StoreUint32(l.state, st)
		wantLockErr(t, l.Acquire(TryOnce), "lock_acquire", syscall.EPROTO)
		wantLockErr(t, l.Acquire(time.Second), "lock_acquire", syscall.EPROTO)
		if o, _, _, _ := lockWords(l); o != 0 {
			t.Fatalf("state %#x: taken by %#x despite EPROTO", st, o)
		}
	}

	// Init resets everything, garbage included.
	for i := range l.mem {
		l.mem[i] = 0xEE
	}
	if err := l.Init(); err != nil {
		t.Fatal(err)
	}
	if !isZero(b[128:192]) {
		t.Fatalf("Init left % x", b[128:192])
	}
	if !isZero(b[:128]) || !isZero(b[192:]) {
		t.Fatal("Init wrote outside the lock's 64 bytes")
	}
}

// TestLockDeadOwner: a holder that is dead (here a fake identity: this process's pid with another
// start time, as a recycled pid looks) is taken over with EOWNERDEAD; Consistent repairs the lock,
// a Release without it makes it not recoverable until Init.
func TestLockDeadOwner(t *testing.T) {
	l := mustLock(t, anonBytes(t, 64))
	self := selfIdentity()
	dead := makeIdentity(int(uint32(self)), uint32(self>>32)+1)

	for _, timeout := range []time.Duration{TryOnce, 5 * time.Second, Forever} {
		l.Init()
		atomic.StoreUint64(l.owner, dead)
		start := time.Now()
		var err error
		noBlock(t, "Acquire of a lock with a dead holder", func() { err = l.Acquire(timeout) })
		wantLockErr(t, err, "lock_acquire", syscall.EOWNERDEAD)
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("timeout %v: the dead holder was noticed after %v", timeout, el)
		}
		if o, _, _, st := lockWords(l); o != self || st != lockInconsistent {
			t.Fatalf("timeout %v: taken over: owner %#x state %d; want %#x, 1", timeout, o, st, self)
		}
		if err := l.Consistent(); err != nil {
			t.Fatal(err)
		}
		if _, _, _, st := lockWords(l); st != 0 {
			t.Fatalf("state %d after Consistent", st)
		}
		wantLockErr(t, l.Consistent(), "lock_consistent", syscall.EINVAL)
		if err := l.Release(); err != nil {
			t.Fatal(err)
		}
		if err := l.Acquire(TryOnce); err != nil {
			t.Fatalf("after the repair: %v", err)
		}
		l.Release()
	}

	// The taker died before repairing: the next acquire of the (free) lock is EOWNERDEAD too.
	l.Init()
	atomic.StoreUint32(l.state, lockInconsistent)
	wantLockErr(t, l.Acquire(TryOnce), "lock_acquire", syscall.EOWNERDEAD)
	l.Release() // without Consistent: not recoverable
	if o, _, _, st := lockWords(l); o != 0 || st != lockInconsistent|lockNotRecoverable {
		t.Fatalf("released without repair: owner %#x state %d; want 0, 3", o, st)
	}
	wantLockErr(t, l.Acquire(TryOnce), "lock_acquire", syscall.ENOTRECOVERABLE)
	wantLockErr(t, l.Acquire(time.Second), "lock_acquire", syscall.ENOTRECOVERABLE)
	noBlock(t, "Acquire(Forever) of a lock not recoverable", func() {
		wantLockErr(t, l.Acquire(Forever), "lock_acquire", syscall.ENOTRECOVERABLE)
	})
	if err := l.Init(); err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(TryOnce); err != nil {
		t.Fatalf("after Init: %v", err)
	}
	l.Release()

	// Two goroutines race to take over one dead holder: exactly one wins (EOWNERDEAD), the other
	// gets the lock after the winner's release (nil).
	for range 20 {
		l.Init()
		atomic.StoreUint64(l.owner, dead)
		errs := make(chan error, 2)
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			spawn(t, func() {
				defer wg.Done()
				err := l.Acquire(5 * time.Second)
				if errors.Is(err, syscall.EOWNERDEAD) {
					l.Consistent()
				}
				errs <- err
				l.Release()
			})
		}
		wg.Wait() // both released before the next round re-initialises the lock
		close(errs)
		var tookOver, clean int
		for err := range errs {
			switch {
			case err == nil:
				clean++
			case errors.Is(err, syscall.EOWNERDEAD):
				tookOver++
			default:
				t.Fatalf("racing takers: %v", err)
			}
		}
		if tookOver != 1 || clean != 1 {
			t.Fatalf("racing takers: %d EOWNERDEAD and %d clean acquires; want 1 and 1", tookOver, clean)
		}
	}
}

// TestLockNotRecoverableWakes: sleepers waiting while the holder releases without repair are
// all woken with ENOTRECOVERABLE, not left to their sleep bound.
func TestLockNotRecoverableWakes(t *testing.T) {
	l := mustLock(t, anonBytes(t, 64))
	self := selfIdentity()
	atomic.StoreUint64(l.owner, makeIdentity(int(uint32(self)), uint32(self>>32)+1))
	wantLockErr(t, l.Acquire(TryOnce), "lock_acquire", syscall.EOWNERDEAD)
	const n = 3
	errs := make(chan error, n)
	for range n {
		spawn(t, func() { errs <- l.Acquire(10 * time.Second) })
	}
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, _, sl, _ := lockWords(l); sl == n {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the acquirers did not all sleep")
		}
	}
	l.Release()
	for range n {
		select {
		case err := <-errs:
			wantLockErr(t, err, "lock_acquire", syscall.ENOTRECOVERABLE)
		case <-time.After(5 * time.Second):
			t.Fatal("a sleeper was not told the lock is not recoverable")
		}
	}
}

// TestLockWakesSleeper: a release that finds a sleeper bumps wake_seq and wakes it at once, not
// at the end of its sleep (by then up to 100 ms long).
func TestLockWakesSleeper(t *testing.T) {
	l := mustLock(t, anonBytes(t, 64))
	var slow int
	for trial := range 5 {
		if err := l.Acquire(5 * time.Second); err != nil { // the last trial's goroutine releases it
			t.Fatal(err)
		}
		got := make(chan time.Time, 1)
		spawn(t, func() {
			if err := l.Acquire(10 * time.Second); err != nil {
				t.Error(err)
			}
			got <- time.Now()
			l.Release()
		})
		waitFor(t, "the acquirer to sleep", func() bool { _, _, sl, _ := lockWords(l); return sl == 1 })
		time.Sleep(300 * time.Millisecond) // its sleeps are 100 ms long by now
		_, seq, _, _ := lockWords(l)
		released := time.Now()
		l.Release()
		if _, seq2, _, _ := lockWords(l); seq2 != seq+1 {
			t.Fatalf("trial %d: a release with a sleeper left wake_seq %d -> %d; want an increment", trial, seq, seq2)
		}
		select {
		case at := <-got:
			if at.Sub(released) > 40*time.Millisecond {
				slow++
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the sleeper never got the lock")
		}
	}
	if slow > 2 {
		t.Fatalf("%d of 5 sleepers took over 40 ms to notice the release: not woken", slow)
	}
}

// TestLockContention: goroutines with their own Lock handles on one lock exclude each other (the
// owner is the process, and the swap from 0 admits one at a time). The critical section checks that
// it is alone and does a non-atomic read-modify-write that would lose updates without the lock.
func TestLockContention(t *testing.T) {
	b := anonBytes(t, 4096)
	const workers, rounds = 4, 3000
	inside, _ := Word(b, 64)
	counter, _ := Word(b, 68)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		l := mustLock(t, b) // a handle per goroutine
		wg.Add(1)
		spawn(t, func() {
			defer wg.Done()
			for i := range rounds {
				if err := l.Acquire(10 * time.Second); err != nil {
					errs <- err
					return
				}
				if !atomic.CompareAndSwapUint32(inside, 0, 1) {
					errs <- errors.New("two holders at once")
					return
				}
				v := *counter
				if i%64 == 0 {
					time.Sleep(10 * time.Microsecond) // let the others pile up and sleep
				}
				*counter = v + 1
				atomic.StoreUint32(inside, 0)
				if err := l.Release(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := atomic.LoadUint32(counter); got != workers*rounds {
		t.Fatalf("counter %d, want %d: updates were lost", got, workers*rounds)
	}
	l := mustLock(t, b)
	if o, _, sl, st := lockWords(l); o != 0 || sl != 0 || st != 0 {
		t.Fatalf("after the run: owner %#x sleepers %d state %d", o, sl, st)
	}
}

// ---- Child processes: the test binary re-executed to run only TestSyncHelperChild ----

const (
	syncHelperEnv = "MMIPC_TEST_SYNC_HELPER" // the mode
	syncArgsEnv   = "MMIPC_TEST_SYNC_ARGS"   // its arguments, comma-separated
)

// TestSyncHelperChild is the child side of the lock and ring tests that need another process; run
// directly it skips.
func TestSyncHelperChild(t *testing.T) {
	mode := os.Getenv(syncHelperEnv)
	if mode == "" {
		t.Skip("a child of the lock and ring tests: runs only when re-executed by them")
	}
	args := strings.Split(os.Getenv(syncArgsEnv), ",")
	arg := func(i int) int {
		n, err := strconv.Atoi(args[i])
		if err != nil {
			t.Fatalf("argument %d: %v", i, err)
		}
		return n
	}
	// hold parks a child that the parent kills; it fails if the parent never does.
	hold := func() {
		time.Sleep(60 * time.Second)
		t.Fatal("not killed within 60 s")
	}
	switch mode {
	case "lock-hold": // path, offset: acquire and hold until killed
		r, err := Open(args[0])
		if err != nil {
			t.Fatal(err)
		}
		l := mustLock(t, r.Bytes()[arg(1):])
		if err := l.Acquire(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		hold()
	case "lock-count": // path, offset, rounds: increment the word after the lock under the lock
		r, err := Open(args[0])
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		off := arg(1)
		l := mustLock(t, r.Bytes()[off:])
		inside, _ := Word(r.Bytes(), off+64)
		counter, _ := Word(r.Bytes(), off+68)
		for i := range arg(2) {
			if err := l.Acquire(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			if !atomic.CompareAndSwapUint32(inside, 0, 1) {
				t.Fatal("two holders at once")
			}
			v := *counter
			if i%16 == 0 {
				time.Sleep(time.Microsecond)
			}
			*counter = v + 1
			atomic.StoreUint32(inside, 0)
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
		}
	case "region-hold": // path: attach, say so, and hold until killed
		if _, err := Open(args[0]); err != nil {
			t.Fatal(err)
		}
		fmt.Println("attached")
		hold()
	default:
		ringHelperChild(t, mode, args, arg, hold)
	}
}

// syncChild is a started child process.
type syncChild struct {
	cmd    *exec.Cmd
	out    *bytes.Buffer
	cancel context.CancelFunc
	waited bool
	err    error
}

// startSyncChild starts TestSyncHelperChild in mode; the child is killed and reaped when the test
// ends, whatever happens.
func startSyncChild(t *testing.T, mode string, args ...string) *syncChild {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSyncHelperChild$", "-test.count=1", "-test.v", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), syncHelperEnv+"="+mode, syncArgsEnv+"="+strings.Join(args, ","))
	if os.Getenv("GORACE") == "" {
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	c := &syncChild{cmd: cmd, out: new(bytes.Buffer), cancel: cancel}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !c.waited {
			cmd.Process.Kill()
			c.wait()
		}
		cancel()
	})
	return c
}

func (c *syncChild) pid() int { return c.cmd.Process.Pid }

func (c *syncChild) wait() error {
	if !c.waited {
		c.waited = true
		c.err = c.cmd.Wait()
	}
	return c.err
}

// kill sends SIGKILL; the child stays a zombie until wait.
func (c *syncChild) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// passed waits for the child and fails the test unless it ran TestSyncHelperChild to a pass.
func (c *syncChild) passed(t *testing.T, what string) {
	t.Helper()
	err := c.wait()
	if err != nil || !strings.Contains(c.out.String(), "--- PASS: TestSyncHelperChild") {
		t.Fatalf("%s: the child failed (%v):\n%s", what, err, c.out)
	}
}

// waitFor polls cond every millisecond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestLockOwnerDeath: a child process acquires the lock and is killed with SIGKILL. While it is a
// zombie (killed, not yet reaped by this test, its parent) and after it is reaped, the next acquire
// takes the lock over with EOWNERDEAD.
func TestLockOwnerDeath(t *testing.T) {
	if os.Getenv(syncHelperEnv) != "" {
		t.Skip("in the child")
	}
	for _, reap := range []bool{false, true} {
		name := map[bool]string{false: "zombie", true: "reaped"}[reap]
		t.Run(name, func(t *testing.T) {
			d := testDir(t)
			r := mustAttach(t, "Create", func() (*Region, error) { return d.Create("lock", 4096, 0) })
			l := mustLock(t, r.Bytes()[256:])
			c := startSyncChild(t, "lock-hold", d.path("lock"), "256")
			waitFor(t, "the child to acquire", func() bool { return uint32(atomic.LoadUint64(l.owner)) == uint32(c.pid()) })
			childID := atomic.LoadUint64(l.owner)
			if !identityAlive(childID) {
				t.Fatalf("the holding child %#x is not alive", childID)
			}
			// Held by a live process: waits.
			wantLockErr(t, l.Acquire(TryOnce), "lock_acquire", syscall.EAGAIN)
			wantLockErr(t, l.Acquire(20*time.Millisecond), "lock_acquire", syscall.ETIMEDOUT)

			// A sleeper waiting when the holder dies takes over within about 100 ms.
			got := make(chan error, 1)
			spawn(t, func() { got <- l.Acquire(20 * time.Second) })
			waitFor(t, "the acquirer to sleep", func() bool { _, _, sl, _ := lockWords(l); return sl == 1 })
			c.kill(t)
			if reap {
				c.wait()
			} else {
				waitZombie(t, c.pid())
			}
			start := time.Now()
			select {
			case err := <-got:
				wantLockErr(t, err, "lock_acquire", syscall.EOWNERDEAD)
			case <-time.After(10 * time.Second):
				t.Fatal("the sleeping acquirer did not take over from the dead holder")
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Fatalf("the dead holder was noticed after %v", el)
			}
			if o, _, _, st := lockWords(l); o != selfIdentity() || st != lockInconsistent {
				t.Fatalf("after the take-over: owner %#x state %d", o, st)
			}
			if !reap {
				_, state, _ := procStat(c.pid())
				if state != 'Z' {
					t.Fatalf("the child is in state %q, not a zombie: the zombie case was not tested", state)
				}
			}
			if err := l.Consistent(); err != nil {
				t.Fatal(err)
			}
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}

			// Try-once finds a dead holder at once.
			atomic.StoreUint64(l.owner, childID)
			wantLockErr(t, l.Acquire(TryOnce), "lock_acquire", syscall.EOWNERDEAD)
			l.Consistent()
			l.Release()
		})
	}
}

// TestLockAcrossProcesses: two child processes and goroutines of this one increment a counter
// under the lock; no update is lost.
func TestLockAcrossProcesses(t *testing.T) {
	if os.Getenv(syncHelperEnv) != "" {
		t.Skip("in the child")
	}
	d := testDir(t)
	r, err := d.Create("count", 4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const off, rounds = 512, 2000
	children := []*syncChild{
		startSyncChild(t, "lock-count", d.path("count"), strconv.Itoa(off), strconv.Itoa(rounds)),
		startSyncChild(t, "lock-count", d.path("count"), strconv.Itoa(off), strconv.Itoa(rounds)),
	}
	inside, _ := Word(r.Bytes(), off+64)
	counter, _ := Word(r.Bytes(), off+68)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		l := mustLock(t, r.Bytes()[off:])
		wg.Add(1)
		spawn(t, func() {
			defer wg.Done()
			for range rounds {
				if err := l.Acquire(10 * time.Second); err != nil {
					errs <- err
					return
				}
				if !atomic.CompareAndSwapUint32(inside, 0, 1) {
					errs <- errors.New("two holders at once")
					return
				}
				*counter++
				atomic.StoreUint32(inside, 0)
				l.Release()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, c := range children {
		c.passed(t, "lock-count")
	}
	if got := atomic.LoadUint32(counter); got != 4*rounds {
		t.Fatalf("counter %d, want %d: updates were lost", got, 4*rounds)
	}
}
