// Command crashwriter is the Go writer of the crash test (tests/hardening_crash_test.go);
// tests/c/crash_writer.c and tests/python_crash_writer.py are its C and Python twins, with the same
// command line and behaviour. It is pure Go and must build with CGO_ENABLED=0.
//
//	crashwriter write RING LOCKREGION ID SCRATCHSIZE
//	crashwriter hold NAME...          (Go only)
//
// write: opens the ring RING and the region LOCKREGION (both made by the test), creates its own
// region "scratch-ID" of SCRATCHSIZE bytes and leaves it (never closes or unlinks it: the test kills
// the writer and a later gc must collect it), stores ready = ID+1 and notifies the word, then loops
// until the test kills it with SIGKILL (still alive after 60 s: it exits 3):
//
//  1. acquire the lock (10 s). EOWNERDEAD: the previous holder died, maybe between the two stores
//     below: repair (a1 = a0), repairs += 1, consistent. A clean acquire must find a0 == a1.
//     phase = 1; a0 = a0+1; pause 200 µs; a1 = a0 (the invariant a0 == a1 is broken in between);
//     phase = 0; release.
//  2. three messages: reserve (10 s) a message of len = 24 + (seq*37 + ID*11) % 300 bytes
//     (tests/hmsg format, sender ID, seq counting from 0), resv_seq = seq, phase = 2, fill it,
//     pause 100 µs, commit, phase = 0. A kill between reserve and commit must deliver nothing.
//
// Any unexpected error prints "FAIL write: ..." and exits 1: the test sees a writer that exited on
// its own instead of being killed.
//
// hold: opens each NAME (creates it, 4096 bytes, when it does not exist), prints "holding", and
// keeps them attached until its stdin closes; prints "ok hold" and exits 0. The test's live helper:
// a gc must not collect what it holds.
//
// The lock region's layout (native-endian words at offsets of its data):
//
//	offset  size  field
//	     0    64  lock      an mmipc lock
//	    64     8  a0        the invariant's two fields: a0 == a1 whenever the lock is free
//	    72     8  a1
//	    80     4  phase     0 idle, 1 holding the lock, 2 a message reserved and not committed
//	    84     4  ready     ID+1 once the writer is set up (futex word: notified)
//	    88     4  repairs   EOWNERDEAD takeovers the writers repaired
//	    96     8  resv_seq  the seq of the last message reserved
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/mmipc/mmipc/mmipc"
	"github.com/mmipc/mmipc/tests/hmsg"
)

const (
	offA0      = 64
	offA1      = 72
	offPhase   = 80
	offReady   = 84
	offRepairs = 88
	offResvSeq = 96

	waitLimit = 10 * time.Second
	lifetime  = 60 * time.Second
)

func fail(format string, args ...any) {
	fmt.Printf("FAIL %s: %s\n", os.Args[1], fmt.Sprintf(format, args...))
	os.Exit(1)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: crashwriter write RING LOCKREGION ID SCRATCHSIZE | hold NAME... (see tests/crashwriter/main.go)")
	os.Exit(2)
}

func number(s string) int {
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		fmt.Fprintf(os.Stderr, "bad number %q\n", s)
		os.Exit(2)
	}
	return v
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "write":
		if len(os.Args) != 6 {
			usage()
		}
		write(os.Args[2], os.Args[3], uint32(number(os.Args[4])), number(os.Args[5]))
	case "hold":
		hold(os.Args[2:])
	default:
		usage()
	}
}

func hold(names []string) {
	for _, name := range names {
		r, err := mmipc.Open(name)
		if errors.Is(err, syscall.ENOENT) {
			r, err = mmipc.Create(name, 4096, 0o600)
		}
		if err != nil {
			fail("%v", err)
		}
		defer r.Close()
	}
	fmt.Println("holding")
	io.Copy(io.Discard, os.Stdin)
	fmt.Println("ok hold")
}

func write(ringName, lockName string, id uint32, scratchSize int) {
	time.AfterFunc(lifetime, func() {
		fmt.Println("FAIL write: never killed")
		os.Exit(3)
	})
	q, err := mmipc.OpenRing(ringName)
	if err != nil {
		fail("%v", err)
	}
	lr, err := mmipc.Open(lockName)
	if err != nil {
		fail("%v", err)
	}
	if _, err := mmipc.Create("scratch-"+strconv.Itoa(int(id)), scratchSize, 0o600); err != nil {
		fail("%v", err)
	}
	b := lr.Bytes()
	lock, err := mmipc.LockAt(b)
	if err != nil {
		fail("%v", err)
	}
	u64 := func(off int) *uint64 { return (*uint64)(unsafe.Pointer(&b[off])) }
	u32 := func(off int) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	a0, a1, phase, ready, repairs, resvSeq := u64(offA0), u64(offA1), u32(offPhase), u32(offReady), u32(offRepairs), u64(offResvSeq)

	atomic.StoreUint32(ready, id+1)
	mmipc.Notify(ready, 1<<30)

	for seq := uint64(0); ; {
		err := lock.Acquire(waitLimit)
		if errors.Is(err, syscall.EOWNERDEAD) {
			atomic.StoreUint64(a1, atomic.LoadUint64(a0))
			atomic.AddUint32(repairs, 1)
			err = lock.Consistent()
		} else if err == nil {
			if x, y := atomic.LoadUint64(a0), atomic.LoadUint64(a1); x != y {
				fail("a clean acquire found a0 %d != a1 %d", x, y)
			}
		}
		if err != nil {
			fail("%v", err)
		}
		atomic.StoreUint32(phase, 1)
		v := atomic.LoadUint64(a0) + 1
		atomic.StoreUint64(a0, v)
		time.Sleep(200 * time.Microsecond)
		atomic.StoreUint64(a1, v)
		atomic.StoreUint32(phase, 0)
		if err := lock.Release(); err != nil {
			fail("%v", err)
		}

		for k := 0; k < 3; k++ {
			n := hmsg.HeaderLen + int((seq*37+uint64(id)*11)%300)
			msg, err := q.Reserve(n, waitLimit)
			if err != nil {
				fail("%v", err)
			}
			atomic.StoreUint64(resvSeq, seq)
			atomic.StoreUint32(phase, 2)
			hmsg.Fill(msg, seq, id, 0)
			time.Sleep(100 * time.Microsecond)
			if err := q.Commit(n); err != nil {
				fail("%v", err)
			}
			atomic.StoreUint32(phase, 0)
			seq++
		}
	}
}
