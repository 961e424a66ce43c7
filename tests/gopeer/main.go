// Command gopeer is the Go side of the cross-language process-pair tests (tests/pairs_test.go).
// tests/c/peer.c is the C side, with the same command line, so that either language can take
// either role. It is pure Go and must build with CGO_ENABLED=0.
//
// # Peer exchange protocol
//
// Both peers speak this protocol inside a region's usable bytes (the data start is page-aligned,
// so every word below is aligned). Integers are native-endian:
//
//	offset  size  field
//	     0     4  state    0 empty, 1 ping written, 2 pong written
//	     4     4  ack      watch: the watcher stores 1 once it saw the counter reach N
//	     8     4  len      payload length, always min(region size - 64, 65536)
//	    12     4  sum      FNV-1a 32 of the payload (offset basis 2166136261, prime 16777619)
//	    16     4  counter  fork-watch: the forked child stores 1, 2, ..., N
//	    64   len  payload
//
// The region must hold at least 65 bytes. The payload is deterministic, so that each side can
// regenerate the bytes the other wrote: x = seed * 2654435761 (mod 2^32); then for each byte
// i = 0, 1, ...: x ^= x << 13; x ^= x >> 17; x ^= x << 5 (xorshift32, 32-bit arithmetic) and
// byte i = x >> 24. The ping uses seed 1, the pong seed 2.
//
// A writer writes the payload, len and sum with plain stores and then publishes them with a
// release store of state (C: __atomic_store_n(..., __ATOMIC_RELEASE); Go: atomic.StoreUint32). A
// reader polls state with acquire loads, sleeping 100 µs between polls, and gives up after 10 s.
// Shared memory is hostile input: a reader loads len once and checks it against the region's size
// before using it, then compares the payload with the one it regenerates and sum with its
// checksum.
//
// churn and open-loop use a different filling, the pattern byte i = ((i*31 + 7) mod 256) | 1
// (never 0) over the whole region, so that an opener can tell a new region's zeros from the
// pattern and anything else.
//
// # Commands
//
// Every command prints "ok <command> ..." as its last line and exits 0 on success; on failure it
// prints "FAIL <command>: ..." with got/want and exits 1 (2 for a bad command line).
//
//	create NAME SIZE            create, write the ping, wait for the pong, verify it, unlink
//	open NAME [SIZE]            open read-write (retrying ENOENT until the deadline), wait for the
//	                            ping, verify it, write the pong
//	fill NAME SIZE              create, write the ping, print "ready", read stdin until EOF, check
//	                            that the ping is intact, unlink
//	read-only NAME [SIZE]       open read-only, wait for the ping, verify it, and check that a
//	                            write through the mapping faults
//	anon-parent SIZE CHILD ARGS...
//	                            make an anonymous region, write the ping, start CHILD ARGS with the
//	                            region's descriptor as fd 3, wait for the pong and verify it, wait
//	                            for the child (it must exit 0)
//	fd-child FD [SIZE]          attach the region behind descriptor FD, wait for the ping, verify
//	                            it, write the pong
//	write-file PATH SIZE        create (a path or a name), write the ping, sync, close; no unlink
//	read-file PATH [SIZE]       open, check that the ping is there, verify it, unlink
//	churn NAME SIZE SECONDS     create, fill with the pattern, close, unlink, in a loop
//	open-loop NAME SIZE SECONDS open (read-write and read-only in turn) in a loop: each open must be
//	                            ENOENT or a region of exactly SIZE bytes, each byte 0 or the
//	                            pattern's; prints "ok open-loop opened=N enoent=M"
//	expect-open-errno NAME ERRNO
//	                            open NAME; succeed only if it fails with ERRNO (a name such as
//	                            EPROTO); prints got, want and the library's message
//	watch NAME SIZE N           open NAME (retrying ENOENT), wait until counter reaches N (it must
//	                            only grow, up to N), verify the ping, store ack = 1
//	fork-watch NAME SIZE N      C only: create, write the ping, print "ready", fork a child that
//	                            counts 1..N in counter and waits for ack, wait for it, unlink
//
// SIZE arguments given to the opening commands are the size the region must have.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/mmipc/mmipc/mmipc"
)

const (
	offState   = 0
	offAck     = 4
	offLen     = 8
	offSum     = 12
	offCounter = 16
	offPayload = 64
	maxPayload = 65536

	statePing = 1
	statePong = 2
	seedPing  = 1
	seedPong  = 2

	pollEvery = 100 * time.Microsecond
	waitLimit = 10 * time.Second
)

var command string // for messages

func fail(format string, args ...any) {
	fmt.Printf("FAIL %s: %s\n", command, fmt.Sprintf(format, args...))
	os.Exit(1)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: gopeer COMMAND ARGS... (see the comment at the top of tests/gopeer/main.go)")
	os.Exit(2)
}

func ok(format string, args ...any) {
	fmt.Printf("ok %s%s\n", command, fmt.Sprintf(format, args...))
}

// word is the 32-bit word at off, for atomic access. Offsets are multiples of 4 and the data is
// page-aligned, so the word is aligned.
func word(b []byte, off int) *uint32 {
	_ = b[off+3]
	return (*uint32)(unsafe.Pointer(&b[off]))
}

func payloadLen(size int) int { return min(size-offPayload, maxPayload) }

func genPayload(p []byte, seed uint32) {
	x := seed * 2654435761
	for i := range p {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p[i] = byte(x >> 24)
	}
}

func fnv1a(p []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range p {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}

func pattern(i int) byte { return byte(i*31+7) | 1 }

// writeMsg writes a payload from seed and publishes it as state.
func writeMsg(b []byte, state, seed uint32) {
	n := payloadLen(len(b))
	p := b[offPayload : offPayload+n]
	genPayload(p, seed)
	*word(b, offLen) = uint32(n)
	*word(b, offSum) = fnv1a(p)
	atomic.StoreUint32(word(b, offState), state)
}

// waitWord polls the word at off until it holds want. abort, if not nil, is asked at each poll
// whether to give up early (a child that died).
func waitWord(b []byte, off int, want uint32, what string, abort func() error) {
	deadline := time.Now().Add(waitLimit)
	for {
		got := atomic.LoadUint32(word(b, off))
		if got == want {
			return
		}
		if abort != nil {
			if err := abort(); err != nil {
				fail("waiting for %s (word at %d = %d, want %d): %v", what, off, got, want, err)
			}
		}
		if time.Now().After(deadline) {
			fail("waiting for %s: the word at %d is %d after %v, want %d", what, off, got, waitLimit, want)
		}
		time.Sleep(pollEvery)
	}
}

// verifyMsg checks the payload published under seed, trusting nothing it reads.
func verifyMsg(b []byte, seed uint32, what string) {
	size := len(b)
	n := atomic.LoadUint32(word(b, offLen)) // loaded once: a peer may change it under us
	if int64(n) > int64(size-offPayload) {
		fail("%s: hostile len %d: the region (%d bytes) has room for %d payload bytes", what, n, size, size-offPayload)
	}
	if want := payloadLen(size); int(n) != want {
		fail("%s: len: got %d, want %d", what, n, want)
	}
	want := make([]byte, n)
	genPayload(want, seed)
	got := b[offPayload : offPayload+int(n)]
	for i := range want {
		if got[i] != want[i] {
			fail("%s: payload byte %d: got %#02x, want %#02x (seed %d)", what, i, got[i], want[i], seed)
		}
	}
	if sum, wantSum := atomic.LoadUint32(word(b, offSum)), fnv1a(want); sum != wantSum {
		fail("%s: sum: got %#08x, want %#08x", what, sum, wantSum)
	}
}

func checkSize(r *mmipc.Region, want int) []byte {
	b := r.Bytes()
	if want > 0 && len(b) != want {
		fail("region size: got %d, want %d", len(b), want)
	}
	if len(b) <= offPayload {
		fail("region size %d: the protocol needs more than %d bytes", len(b), offPayload)
	}
	return b
}

// openRetry opens name, retrying ENOENT until the deadline: the peer may not have created it yet.
func openRetry(name string, readOnly bool) *mmipc.Region {
	deadline := time.Now().Add(waitLimit)
	for {
		var r *mmipc.Region
		var err error
		if readOnly {
			r, err = mmipc.OpenReadOnly(name)
		} else {
			r, err = mmipc.Open(name)
		}
		if err == nil {
			return r
		}
		if !errors.Is(err, syscall.ENOENT) || time.Now().After(deadline) {
			fail("open %q (read-only %v): %v", name, readOnly, err)
		}
		time.Sleep(time.Millisecond)
	}
}

func create(name string, size int) *mmipc.Region {
	r, err := mmipc.Create(name, size, 0o600)
	if err != nil {
		fail("create %q size %d: %v", name, size, err)
	}
	return r
}

func closeRegion(r *mmipc.Region) {
	if err := r.Close(); err != nil {
		fail("close: %v", err)
	}
}

func unlink(name string) {
	if err := mmipc.Unlink(name); err != nil {
		fail("unlink %q: %v", name, err)
	}
}

var errnos = map[string]syscall.Errno{
	"ENOENT": syscall.ENOENT, "EPROTO": syscall.EPROTO, "EACCES": syscall.EACCES,
	"ELOOP": syscall.ELOOP, "EINVAL": syscall.EINVAL, "EEXIST": syscall.EEXIST,
	"EBADF": syscall.EBADF, "ENOTSUP": syscall.ENOTSUP,
}

func errnoName(e syscall.Errno) string {
	for name, v := range errnos {
		if v == e {
			return name
		}
	}
	return fmt.Sprintf("errno %d", int(e))
}

// tryWrite writes through b and reports whether the write faulted (debug.SetPanicOnFault must be
// on), and at which address.
func tryWrite(b []byte, off int) (faulted bool, addr uintptr, v any) {
	defer func() {
		if v = recover(); v != nil {
			faulted = true
			if a, ok := v.(interface{ Addr() uintptr }); ok {
				addr = a.Addr()
			}
		}
	}()
	b[off] ^= 0xff // a changed byte, so that a write that went through shows in the ping too
	return
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	command = os.Args[1]
	args := os.Args[2:]
	need := func(lo, hi int) {
		if len(args) < lo || (hi >= 0 && len(args) > hi) {
			usage()
		}
	}
	num := func(i int) int {
		if i >= len(args) {
			return 0 // optional and absent
		}
		n, err := strconv.Atoi(args[i])
		if err != nil || n < 0 {
			fmt.Fprintf(os.Stderr, "bad number %q\n", args[i])
			os.Exit(2)
		}
		return n
	}
	seconds := func(i int) time.Duration {
		f, err := strconv.ParseFloat(args[i], 64)
		if err != nil || f <= 0 {
			fmt.Fprintf(os.Stderr, "bad seconds %q\n", args[i])
			os.Exit(2)
		}
		return time.Duration(f * float64(time.Second))
	}

	switch command {
	case "create":
		need(2, 2)
		name, size := args[0], num(1)
		r := create(name, size)
		b := checkSize(r, size)
		writeMsg(b, statePing, seedPing)
		waitWord(b, offState, statePong, "the pong", nil)
		verifyMsg(b, seedPong, "pong")
		closeRegion(r)
		unlink(name)
		ok(" size=%d", size)

	case "open":
		need(1, 2)
		r := openRetry(args[0], false)
		respond(r, num(1))

	case "fill":
		need(2, 2)
		name, size := args[0], num(1)
		r := create(name, size)
		b := checkSize(r, size)
		writeMsg(b, statePing, seedPing)
		fmt.Println("ready")
		eof := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, os.Stdin)
			eof <- err
		}()
		select {
		case err := <-eof:
			if err != nil {
				fail("reading stdin: %v", err)
			}
		case <-time.After(30 * time.Second):
			fail("stdin still open after 30 s")
		}
		if st := atomic.LoadUint32(word(b, offState)); st != statePing {
			fail("state after the reader: got %d, want %d", st, statePing)
		}
		verifyMsg(b, seedPing, "ping after the read-only peer")
		closeRegion(r)
		unlink(name)
		ok(" size=%d", size)

	case "read-only":
		need(1, 2)
		r := openRetry(args[0], true)
		b := checkSize(r, num(1))
		waitWord(b, offState, statePing, "the ping", nil)
		verifyMsg(b, seedPing, "ping")
		debug.SetPanicOnFault(true)
		faulted, addr, v := tryWrite(b, offPayload)
		if !faulted {
			fail("a write through the read-only mapping did not fault")
		}
		if _, isRuntime := v.(runtime.Error); !isRuntime {
			fail("the faulting write panicked with %T %v, want a runtime.Error", v, v)
		}
		if want := uintptr(unsafe.Pointer(&b[offPayload])); addr != want {
			fail("the fault's address: got %#x, want %#x (%v)", addr, want, v)
		}
		verifyMsg(b, seedPing, "ping after the faulting write")
		closeRegion(r)
		ok(" size=%d fault=%q", len(b), fmt.Sprint(v))

	case "anon-parent":
		need(2, -1)
		size := num(0)
		r, err := mmipc.Anon(size)
		if err != nil {
			fail("anon %d: %v", size, err)
		}
		b := checkSize(r, size)
		writeMsg(b, statePing, seedPing)
		cmd := exec.Command(args[1], args[2:]...)
		cmd.ExtraFiles = []*os.File{r.File()} // fd 3 in the child
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			fail("starting %v: %v", args[1:], err)
		}
		exited := make(chan struct{})
		var waitErr error
		go func() {
			waitErr = cmd.Wait()
			close(exited)
		}()
		// A child that dies early fails the wait at once instead of after the deadline; if it
		// exited 0 having written the pong, state is already 2 and this is never asked.
		childGone := func() error {
			select {
			case <-exited:
				return fmt.Errorf("the child exited before the pong: %v", waitErr)
			default:
				return nil
			}
		}
		waitWord(b, offState, statePong, "the pong", childGone)
		verifyMsg(b, seedPong, "pong")
		select {
		case <-exited:
		case <-time.After(waitLimit):
			cmd.Process.Kill()
			<-exited
			fail("the child still runs %v after the pong (killed)", waitLimit)
		}
		if waitErr != nil {
			fail("the child: %v", waitErr)
		}
		closeRegion(r)
		ok(" size=%d", size)

	case "fd-child":
		need(1, 2)
		f := os.NewFile(uintptr(num(0)), "inherited region")
		if f == nil {
			fail("descriptor %s is not valid", args[0])
		}
		r, err := mmipc.FromFile(f)
		if err != nil {
			fail("FromFile(fd %s): %v", args[0], err)
		}
		f.Close() // the Region has its own duplicate
		respond(r, num(1))

	case "write-file":
		need(2, 2)
		path, size := args[0], num(1)
		r := create(path, size)
		b := checkSize(r, size)
		writeMsg(b, statePing, seedPing)
		if err := r.Sync(); err != nil {
			fail("sync: %v", err)
		}
		closeRegion(r)
		ok(" size=%d", size)

	case "read-file":
		need(1, 2)
		path := args[0]
		r, err := mmipc.Open(path)
		if err != nil {
			fail("open %q: %v", path, err)
		}
		b := checkSize(r, num(1))
		if st := atomic.LoadUint32(word(b, offState)); st != statePing {
			fail("state: got %d, want %d (the writer has exited: it must be there already)", st, statePing)
		}
		verifyMsg(b, seedPing, "ping")
		closeRegion(r)
		unlink(path)
		ok(" size=%d", len(b))

	case "churn":
		need(3, 3)
		name, size, d := args[0], num(1), seconds(2)
		cycles := 0
		for end := time.Now().Add(d); time.Now().Before(end); cycles++ {
			r := create(name, size)
			b := checkSize(r, size)
			for i := range b {
				b[i] = pattern(i)
			}
			closeRegion(r)
			unlink(name)
		}
		ok(" cycles=%d", cycles)

	case "open-loop":
		need(3, 3)
		name, size, d := args[0], num(1), seconds(2)
		opened, enoent, bad := 0, 0, 0
		for n, end := 0, time.Now().Add(d); time.Now().Before(end); n++ {
			var r *mmipc.Region
			var err error
			if n%2 == 0 {
				r, err = mmipc.Open(name)
			} else {
				r, err = mmipc.OpenReadOnly(name)
			}
			if err != nil {
				if errors.Is(err, syscall.ENOENT) {
					enoent++
				} else if bad++; bad <= 5 {
					fmt.Printf("open %q: %v; want success or ENOENT\n", name, err)
				}
				continue
			}
			b := r.Bytes()
			badAt := -1
			if len(b) == size {
				for i, c := range b {
					if c != 0 && c != pattern(i) {
						badAt = i
						break
					}
				}
			}
			if len(b) != size || badAt >= 0 {
				if bad++; bad <= 5 {
					fmt.Printf("opened a region of %d bytes (want %d), first wrong byte at %d\n", len(b), size, badAt)
				}
			} else {
				opened++
			}
			closeRegion(r)
		}
		if bad > 0 {
			fail("%d opens were neither ENOENT nor the whole region (%d opened, %d ENOENT)", bad, opened, enoent)
		}
		ok(" opened=%d enoent=%d", opened, enoent)

	case "expect-open-errno":
		need(2, 2)
		name, wantName := args[0], args[1]
		want, known := errnos[wantName]
		if !known {
			fmt.Fprintf(os.Stderr, "unknown errno name %q\n", wantName)
			os.Exit(2)
		}
		r, err := mmipc.Open(name)
		if err == nil {
			r.Close()
			fail("open %q: got success, want %s", name, wantName)
		}
		var got syscall.Errno
		if !errors.As(err, &got) {
			fail("open %q: got %v (%T) without an errno, want %s", name, err, err, wantName)
		}
		fmt.Printf("got %s want %s: %v\n", errnoName(got), wantName, err)
		if got != want {
			fail("open %q: got %s, want %s", name, errnoName(got), wantName)
		}
		ok(" %s", wantName)

	case "watch":
		need(3, 3)
		name, size, n := args[0], num(1), uint32(num(2))
		r := openRetry(name, false)
		b := checkSize(r, size)
		counter := word(b, offCounter)
		deadline := time.Now().Add(waitLimit)
		last := uint32(0)
		for last != n {
			c := atomic.LoadUint32(counter)
			if c < last || c > n {
				fail("counter went from %d to %d; it must only grow, up to %d", last, c, n)
			}
			last = c
			if time.Now().After(deadline) {
				fail("counter is %d after %v, want %d", c, waitLimit, n)
			}
			time.Sleep(pollEvery)
		}
		waitWord(b, offState, statePing, "the ping", nil)
		verifyMsg(b, seedPing, "ping")
		atomic.StoreUint32(word(b, offAck), 1)
		closeRegion(r)
		ok(" count=%d", n)

	case "fork-watch":
		fail("Go cannot fork: fork-watch is a C-only command")

	default:
		usage()
	}
}

// respond is the pong side of an exchange on an attached region of the expected size: wait for
// the ping, verify it, answer with the pong, detach.
func respond(r *mmipc.Region, wantSize int) {
	b := checkSize(r, wantSize)
	waitWord(b, offState, statePing, "the ping", nil)
	verifyMsg(b, seedPing, "ping")
	writeMsg(b, statePong, seedPong)
	closeRegion(r)
	ok(" size=%d", len(b))
}
