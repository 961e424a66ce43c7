package mmipc

import (
	"math"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// LockSize is the number of shared bytes a Lock occupies; they must start at a 64-aligned address.
const LockSize = 64

// The lock's layout (docs/PROTOCOL.md, "Lock").
const (
	lockOffOwner    = 0  // u64 identity of the holder, 0 when free
	lockOffWakeSeq  = 8  // u32 futex word
	lockOffSleepers = 12 // u32
	lockOffState    = 16 // u32

	lockInconsistent   = 1 // taken over from a dead owner, not yet repaired
	lockNotRecoverable = 2 // released without repair: unusable until Init
	lockStateBits      = lockInconsistent | lockNotRecoverable

	// A sleeper bounds each sleep, 1 ms at first and doubling to 100 ms, so that it notices a dead
	// owner (who will never wake it) within about 100 ms.
	lockSleepFirst = time.Millisecond
	lockSleepMax   = 100 * time.Millisecond
	// lockSpin is how many times a contended acquire re-reads the owner before it sleeps: about a
	// microsecond, long enough for a short critical section on another CPU to end.
	lockSpin = 256

	// errLockBusy is the internal "held by someone else" outcome of one attempt; no public call
	// returns it.
	errLockBusy = syscall.EBUSY
)

// Lock is a handle on a process-shared mutex that survives the death of its holder: 64 bytes of
// shared memory (LockSize) at a 64-aligned address, laid out as docs/PROTOCOL.md ("Lock")
// specifies, so Go, C (mmipc_lock) and Python processes contend on the same lock.
//
// All-zero bytes are an unlocked lock, so a lock in a fresh region needs no Init. Ownership
// belongs to a process, not to a goroutine or a Lock value: any goroutine of the holding process
// may Release, and a goroutine whose process already holds the lock waits like anyone else (the
// lock is not recursive). Goroutines of one process that contend through one Lock or several are
// mutually excluded as processes are. A Lock's methods are safe for concurrent use.
//
// When the holder dies, the next Acquire takes the lock over and reports EOWNERDEAD: the data the
// lock guards may be half-updated. Repair it, then call Consistent; a Release without that makes the
// lock not recoverable (ENOTRECOVERABLE for every later Acquire, until Init).
type Lock struct {
	mem      []byte // the 64 bytes, kept so that a heap-backed lock stays alive
	owner    *uint64
	wakeSeq  *uint32
	sleepers *uint32
	state    *uint32
}

// LockAt returns a handle on the lock in the first 64 bytes of b, typically
// LockAt(region.Bytes()[off:]) with off a multiple of 64. b must hold at least 64 bytes and start at
// a 64-aligned address (a region's data is page-aligned); otherwise the error is EINVAL. The Lock
// aliases b: use it only while b is mapped.
func LockAt(b []byte) (*Lock, error) {
	if len(b) < LockSize {
		return nil, &Error{Op: "lock_at", Errno: syscall.EINVAL, Detail: "a lock needs 64 bytes; got " + strconv.Itoa(len(b))}
	}
	if uintptr(unsafe.Pointer(&b[0]))%LockSize != 0 {
		return nil, &Error{Op: "lock_at", Errno: syscall.EINVAL, Detail: "a lock must be 64-aligned in memory"}
	}
	return lockAt(b), nil
}

// lockAt is LockAt for bytes known to be a 64-aligned lock.
func lockAt(b []byte) *Lock {
	b = b[:LockSize:LockSize]
	return &Lock{
		mem:      b,
		owner:    (*uint64)(unsafe.Pointer(&b[lockOffOwner])),
		wakeSeq:  (*uint32)(unsafe.Pointer(&b[lockOffWakeSeq])),
		sleepers: (*uint32)(unsafe.Pointer(&b[lockOffSleepers])),
		state:    (*uint32)(unsafe.Pointer(&b[lockOffState])),
	}
}

func lockError(op string, e syscall.Errno, detail string) error {
	if e == 0 {
		return nil
	}
	return &Error{Op: op, Errno: e, Detail: detail}
}

// Init resets the lock to unlocked and consistent (all zeros). Never call it while someone may hold
// or wait for the lock; it is also the only way to reuse a lock that became not recoverable.
func (l *Lock) Init() error {
	atomic.StoreUint32(l.state, 0)
	atomic.StoreUint32(l.sleepers, 0)
	atomic.StoreUint32(l.wakeSeq, 0)
	clear(l.mem[lockOffState+4:])
	atomic.StoreUint64(l.owner, 0)
	return nil
}

// Acquire takes the lock, waiting up to timeout (Forever, TryOnce or a positive duration). It
// returns nil with the lock held, or an *Error whose errno is:
//
//   - EOWNERDEAD: the lock IS held by the caller's process now, taken over from a process that died
//     holding it. Repair the data it guards, then call Consistent.
//   - ENOTRECOVERABLE: a previous taker released it without repairing; unusable until Init.
//   - ETIMEDOUT, or EAGAIN for TryOnce: held by a live process.
//   - EPROTO: the bytes are not a lock (unknown state bits).
//   - EINVAL: a timeout below Forever.
//
// A free lock costs one compare-and-swap and no system call. A dead holder is noticed from /proc
// within about 100 ms, at once for TryOnce.
func (l *Lock) Acquire(timeout time.Duration) error {
	if err := badTimeout("lock_acquire", "", timeout); err != nil {
		return err
	}
	dl := deadline{timeout: timeout}
	e := l.acquire(&dl)
	return lockError("lock_acquire", e, acquireDetail(e))
}

func acquireDetail(e syscall.Errno) string {
	switch e {
	case syscall.EOWNERDEAD:
		return "taken over from a dead holder: repair the data, then call Consistent"
	case syscall.ENOTRECOVERABLE:
		return "released without repair after a holder died: Init resets it"
	case syscall.EPROTO:
		return "unknown state bits: these bytes are not a lock"
	}
	return ""
}

// acquire is Acquire with the errno alone (0 on success), for the ring, which names its own errors.
func (l *Lock) acquire(dl *deadline) syscall.Errno {
	id := selfIdentity()
	if e := l.try(id); e != errLockBusy {
		return e
	}
	if dl.timeout == 0 {
		// A try-once acquire checks the holder at once: it will not get another chance.
		if o := atomic.LoadUint64(l.owner); o != 0 && o != id && !identityAlive(o) {
			if e, ok := l.takeOver(o, id); ok {
				return e
			}
		}
		if e := l.try(id); e != errLockBusy {
			return e
		}
		return syscall.EAGAIN
	}
	for range lockSpin {
		if atomic.LoadUint64(l.owner) == 0 {
			if e := l.try(id); e != errLockBusy {
				return e
			}
		}
	}
	// Registered once for the whole wait: a release that sees sleepers bumps wake_seq and wakes
	// one, and since the registration comes before the seq read and the retry below (all
	// sequentially consistent), a release in between changes wake_seq and the futex returns at once.
	atomic.AddUint32(l.sleepers, 1)
	defer atomic.AddUint32(l.sleepers, math.MaxUint32)
	sleep := lockSleepFirst
	for {
		seq := atomic.LoadUint32(l.wakeSeq)
		if e := l.try(id); e != errLockBusy {
			return e
		}
		if e, ok := dl.expired(); ok {
			return e
		}
		o := atomic.LoadUint64(l.owner)
		if o == 0 {
			continue // released since the attempt: try again
		}
		e := futexWait(l.wakeSeq, seq, dl.bounded(sleep))
		if e == syscall.ETIMEDOUT && o != id && atomic.LoadUint64(l.owner) == o && !identityAlive(o) {
			if e, ok := l.takeOver(o, id); ok {
				return e
			}
		}
		sleep = min(2*sleep, lockSleepMax)
	}
}

// try makes one attempt: 0 or EOWNERDEAD with the lock held, errLockBusy when someone holds it,
// ENOTRECOVERABLE or EPROTO when the lock is unusable.
func (l *Lock) try(id uint64) syscall.Errno {
	st := atomic.LoadUint32(l.state)
	if st&^lockStateBits != 0 {
		return syscall.EPROTO
	}
	if st&lockNotRecoverable != 0 {
		return syscall.ENOTRECOVERABLE
	}
	if !atomic.CompareAndSwapUint64(l.owner, 0, id) {
		return errLockBusy
	}
	return l.took(id)
}

// took checks the state once the caller holds the lock. A release without repair marks the lock
// not recoverable before it frees the owner, so a taker that read the state before that mark sees
// it now, and gives the lock back.
func (l *Lock) took(id uint64) syscall.Errno {
	st := atomic.LoadUint32(l.state)
	switch {
	case st&^lockStateBits != 0:
		l.unlock(id, false)
		return syscall.EPROTO
	case st&lockNotRecoverable != 0:
		l.unlock(id, true)
		return syscall.ENOTRECOVERABLE
	case st&lockInconsistent != 0:
		return syscall.EOWNERDEAD // the previous taker died before repairing
	}
	return 0
}

// takeOver swaps the dead holder's identity for the caller's. Only one taker wins; ok is false for
// the others.
func (l *Lock) takeOver(dead, id uint64) (syscall.Errno, bool) {
	if !atomic.CompareAndSwapUint64(l.owner, dead, id) {
		return 0, false
	}
	atomic.OrUint32(l.state, lockInconsistent)
	if e := l.took(id); e != syscall.EOWNERDEAD {
		return e, true // unusable (EPROTO, ENOTRECOVERABLE): took gave it back
	}
	return syscall.EOWNERDEAD, true
}

// unlock frees a lock the caller holds and wakes a sleeper (all of them when the lock became
// unusable, since none of them can have it).
func (l *Lock) unlock(id uint64, wakeAll bool) bool {
	if !atomic.CompareAndSwapUint64(l.owner, id, 0) {
		return false
	}
	if atomic.LoadUint32(l.sleepers) != 0 {
		atomic.AddUint32(l.wakeSeq, 1)
		n := 1
		if wakeAll {
			n = math.MaxInt32
		}
		futexWake(l.wakeSeq, n)
	}
	return true
}

// Consistent marks the data repaired after an Acquire that returned EOWNERDEAD. The error is EPERM
// when the caller's process does not hold the lock, EINVAL when the lock was not taken over from a
// dead holder.
func (l *Lock) Consistent() error {
	return lockError("lock_consistent", l.consistent(), "")
}

func (l *Lock) consistent() syscall.Errno {
	if atomic.LoadUint64(l.owner) != selfIdentity() {
		return syscall.EPERM
	}
	if atomic.LoadUint32(l.state)&lockInconsistent == 0 {
		return syscall.EINVAL
	}
	atomic.AndUint32(l.state, ^uint32(lockInconsistent))
	return 0
}

// Release frees the lock held by the caller's process and wakes one sleeper, with a system call
// only when someone sleeps. Releasing after EOWNERDEAD without Consistent makes the lock not
// recoverable. The error is EPERM when the caller's process does not hold the lock.
func (l *Lock) Release() error {
	return lockError("lock_release", l.release(), "")
}

func (l *Lock) release() syscall.Errno {
	id := selfIdentity()
	if atomic.LoadUint64(l.owner) != id {
		return syscall.EPERM
	}
	broken := false
	if atomic.LoadUint32(l.state)&lockInconsistent != 0 {
		atomic.OrUint32(l.state, lockNotRecoverable)
		broken = true
	}
	if !l.unlock(id, broken) {
		return syscall.EPERM
	}
	return 0
}
