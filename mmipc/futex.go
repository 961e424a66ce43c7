package mmipc

import (
	"math"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Timeouts of the sync layer (Wait, Lock.Acquire and the Ring calls), as docs/PROTOCOL.md ("The
// sync layer") gives them in every language: Forever waits as long as it takes, TryOnce fails at
// once with EAGAIN when nothing is ready, and a positive duration fails with ETIMEDOUT when it
// expires. Any other negative duration is EINVAL.
const (
	Forever time.Duration = -1
	TryOnce time.Duration = 0
)

// The futex operations of linux/futex.h, without FUTEX_PRIVATE_FLAG: the sync layer's words live
// in memory that other processes map, often at other addresses, and only a shared futex is keyed
// on the page itself.
const (
	futexWaitOp = 0 // FUTEX_WAIT
	futexWakeOp = 1 // FUTEX_WAKE
)

// futexWait sleeps while *addr == val, at most d (d < 0: no bound). It returns 0 when woken,
// EAGAIN when *addr differed, ETIMEDOUT or EINTR.
func futexWait(addr *uint32, val uint32, d time.Duration) syscall.Errno {
	var ts *unix.Timespec
	if d >= 0 {
		t := unix.NsecToTimespec(int64(d))
		ts = &t
	}
	_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWaitOp, uintptr(val),
		uintptr(unsafe.Pointer(ts)), 0, 0)
	return e
}

// futexWake wakes up to n sleepers on addr and returns how many it woke.
func futexWake(addr *uint32, n int) (int, syscall.Errno) {
	r, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWakeOp, uintptr(n), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

// badTimeout is the EINVAL of every sync call (op, on the named object) given a negative timeout
// other than Forever, or nil for a meaningful one.
func badTimeout(op, name string, timeout time.Duration) error {
	if timeout >= Forever {
		return nil
	}
	return &Error{Op: op, Name: name, Errno: syscall.EINVAL, Detail: "timeout " + timeout.String() + " (use Forever, TryOnce or a positive duration)"}
}

// deadline tracks a timeout on the monotonic clock. The clock is read only when a call actually has
// to wait (never on a fast path).
type deadline struct {
	timeout time.Duration
	end     time.Time // set on the first remaining call for a positive timeout (zero until then)
}

// remaining is the time left: < 0 means no bound (Forever), 0 means expired (or try-once).
func (d *deadline) remaining() time.Duration {
	switch {
	case d.timeout < 0:
		return -1
	case d.timeout == 0:
		return 0
	}
	if d.end.IsZero() {
		d.startAt(time.Now())
		return d.timeout
	}
	r := time.Until(d.end)
	if r < 0 {
		r = 0
	}
	return r
}

// startAt starts a positive timeout's clock at now, unless it runs already: for a caller that
// reads the clock anyway.
func (d *deadline) startAt(now time.Time) {
	if d.timeout > 0 && d.end.IsZero() {
		d.end = now.Add(d.timeout)
	}
}

// expired reports whether the caller must give up now, and with which errno: EAGAIN for a try-once
// call, ETIMEDOUT for an expired timeout.
func (d *deadline) expired() (syscall.Errno, bool) {
	if d.timeout == 0 {
		return syscall.EAGAIN, true
	}
	if d.timeout > 0 && d.remaining() == 0 {
		return syscall.ETIMEDOUT, true
	}
	return 0, false
}

// bounded is the remaining time capped at limit (a sleep bound); limit < 0 means no cap.
func (d *deadline) bounded(limit time.Duration) time.Duration {
	r := d.remaining()
	if limit >= 0 && (r < 0 || r > limit) {
		return limit
	}
	return r
}

// wordOK reports whether word can be handed to the kernel: not nil and 4-aligned.
func wordOK(word *uint32) bool { return word != nil && uintptr(unsafe.Pointer(word))%4 == 0 }

// Word returns a pointer to the 32-bit word at byte offset off of b (usually a region's Bytes), for
// Wait, Notify and sync/atomic. The word must lie inside b and be 4-aligned in memory (a region's
// data is page-aligned, so any offset that is a multiple of 4 is); otherwise the error is EINVAL.
// The pointer aliases b: it is valid as long as b is (for a region, until Close).
func Word(b []byte, off int) (*uint32, error) {
	if off < 0 || off > len(b)-4 {
		return nil, &Error{Op: "word", Errno: syscall.EINVAL, Detail: "offset " + strconv.Itoa(off) + " does not leave 4 bytes in " + strconv.Itoa(len(b))}
	}
	p := (*uint32)(unsafe.Pointer(&b[off]))
	if !wordOK(p) {
		return nil, &Error{Op: "word", Errno: syscall.EINVAL, Detail: "offset " + strconv.Itoa(off) + " is not 4-aligned in memory"}
	}
	return p, nil
}

// Wait sleeps while *word == expected: a shared futex wait, so the notifier may be another process
// that maps the same memory at another address. It returns nil when woken by Notify, at once when
// *word already differs, or spuriously (callers re-check their condition and wait again). The
// errors, as *Error unwrapping to a syscall.Errno: ETIMEDOUT (timeout expired), EAGAIN (TryOnce and
// *word == expected), EINVAL (nil or misaligned word, timeout below Forever).
//
// The pattern: the writer changes the word (atomic.StoreUint32 or atomic.AddUint32), then calls
// Notify; the waiter loads the word, checks its condition, and waits with the value it loaded, so a
// change in between is never missed.
//
// Unlike mmipc_wait in C, Wait never reports EINTR: the Go runtime's own signals interrupt system
// calls, so an interrupted sleep returns nil like any spurious wake-up.
//
// A goroutine sleeping in Wait holds an operating-system thread for the duration (the Go runtime
// starts another one for the other goroutines).
func Wait(word *uint32, expected uint32, timeout time.Duration) error {
	if !wordOK(word) {
		return &Error{Op: "wait", Errno: syscall.EINVAL, Detail: "nil or misaligned word"}
	}
	if err := badTimeout("wait", "", timeout); err != nil {
		return err
	}
	if timeout == 0 {
		if atomic.LoadUint32(word) == expected {
			return &Error{Op: "wait", Errno: syscall.EAGAIN}
		}
		return nil
	}
	switch e := futexWait(word, expected, timeout); e {
	case 0, syscall.EAGAIN, syscall.EINTR:
		return nil
	default:
		return &Error{Op: "wait", Errno: e}
	}
}

// Notify wakes up to count (at least 1) goroutines, threads or processes sleeping in Wait (or
// mmipc_wait) on word, and returns how many it woke (0 when nobody slept). A count above
// math.MaxInt32 wakes all. The error is EINVAL for a nil or misaligned word or a count below 1.
func Notify(word *uint32, count int) (int, error) {
	if !wordOK(word) {
		return 0, &Error{Op: "notify", Errno: syscall.EINVAL, Detail: "nil or misaligned word"}
	}
	if count < 1 {
		return 0, &Error{Op: "notify", Errno: syscall.EINVAL, Detail: "count " + strconv.Itoa(count) + " (want 1 or more)"}
	}
	n, e := futexWake(word, min(count, math.MaxInt32))
	if e != 0 {
		return 0, &Error{Op: "notify", Errno: e}
	}
	return n, nil
}
