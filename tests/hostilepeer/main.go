// Command hostilepeer is the Go side of the hardening tests (tests/hardening_scribble_test.go,
// tests/hardening_attack_test.go). tests/c/hostile_peer.c and tests/python_hostile_peer.py are the
// C and Python sides of the commands they share (hostile, expect, gc), with the same command line
// and output. It is pure Go and must build with CGO_ENABLED=0.
//
// Every command prints "ok COMMAND ..." as its last line on success, or "FAIL COMMAND: why" and
// exits 1. Names are region names in $MMIPC_DIR. Every wait is bounded.
//
//	hostile PLAIN SIZE RING BACK SECS LANG
//	    The peer of the scribble test. Setup: open the plain region PLAIN (it must have SIZE bytes)
//	    and the ring RING; print "ready"; wait (30 s at most) for the line "start" on stdin.
//	    Hostile phase, for SECS seconds, while the test scribbles over PLAIN's header and RING's
//	    header, control words and records, again and again:
//	      - open PLAIN by name: success (then its size must be SIZE: a header that lies about the
//	        size must have been refused) or EPROTO; anything else is a failure;
//	      - send a message of a random length (0 to the largest) with a random timeout (0, 1 ms or
//	        3 ms), and receive into a buffer of the largest message's size, likewise: success,
//	        EAGAIN, ETIMEDOUT or EPROTO, the errnos mmipc.h documents for a damaged ring (a damaged
//	        side lock is EPROTO too: EOWNERDEAD and ENOTRECOVERABLE never reach the caller);
//	        a received length must fit the buffer;
//	      - one time in 16, a reserve then commit of a random length, and a peek then release,
//	        with the same outcomes (a peeked message must not be longer than the largest).
//	    Then print "hostile open_ok=A open_eproto=B ring_ok=C ring_eproto=D ring_again=E" and
//	    wait (60 s at most) for the line "go" on stdin: by then the test has stopped scribbling,
//	    restored PLAIN's header and filled its data with the pattern byte(i*7+3), re-created RING
//	    (same name, a new file) and created the ring BACK holding 100 messages "back I" (I = 0..99).
//	    Work phase, which must all succeed: open PLAIN (size SIZE, the whole pattern), open RING and
//	    send it 100 messages "LANG I" (5 s timeout each), open BACK and receive its 100 messages in
//	    order (5 s each). Prints "ok hostile" and the counts again, then "sent=100 received=100".
//	expect OP NAME ERRNO [OP NAME ERRNO]...
//	    OP is open, open_ro, ring_open, create (4096 bytes, mode 0600), unlink or stat; ERRNO is 0
//	    (success: an opened or created handle is closed again at once) or an errno name (ENOENT,
//	    EEXIST, ELOOP, EPROTO, EACCES, EINVAL, EPERM, EBUSY). The outcome of each call, in order,
//	    must be exactly that. Prints "expect OP NAME ERRNO" for each (for a successful stat,
//	    " size=N attached=0|1 uid=U" follows), then "ok expect N" (N calls).
//	gc
//	    collects the directory (mmipc GC); prints "ok gc removed=N".
//	hold NAME SIZE MODE   (Go only)
//	    creates the region NAME (SIZE bytes, octal MODE), writes "held by PID" at data offset 0,
//	    prints "holding", then for each line on stdin (60 s at most between lines): "read" prints
//	    "data64=TEXT", the NUL-terminated text at data offset 64 (at most 64 bytes); "close" (or end
//	    of input) closes the region, keeping its name, and prints "ok hold".
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/mmipc/mmipc/mmipc"
)

const (
	workMessages = 100
	workTimeout  = 5 * time.Second
	startWait    = 30 * time.Second
	goWait       = 60 * time.Second
)

var command string

func fail(format string, args ...any) {
	fmt.Printf("FAIL %s: %s\n", command, fmt.Sprintf(format, args...))
	os.Exit(1)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: hostilepeer COMMAND ARGS... (see the comment at the top of tests/hostilepeer/main.go)")
	os.Exit(2)
}

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// lines delivers stdin's lines; it is closed at end of input.
func lines() <-chan string {
	ch := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			ch <- sc.Text()
		}
		close(ch)
	}()
	return ch
}

// awaitLine waits up to d for the line want on ch.
func awaitLine(ch <-chan string, want string, d time.Duration) {
	select {
	case l, ok := <-ch:
		if !ok || l != want {
			fail("stdin: got %q (open %v), want %q", l, ok, want)
		}
	case <-time.After(d):
		fail("no %q on stdin within %v", want, d)
	}
}

type counts struct{ openOK, openEPROTO, ringOK, ringEPROTO, ringAgain int }

func (c counts) String() string {
	return fmt.Sprintf("open_ok=%d open_eproto=%d ring_ok=%d ring_eproto=%d ring_again=%d",
		c.openOK, c.openEPROTO, c.ringOK, c.ringEPROTO, c.ringAgain)
}

// ring counts a ring call's outcome; anything but the documented ones is a failure.
func (c *counts) ring(what string, err error) {
	switch e := errnoOf(err); {
	case err == nil:
		c.ringOK++
	case e == syscall.EPROTO:
		c.ringEPROTO++
	case e == syscall.EAGAIN || e == syscall.ETIMEDOUT:
		c.ringAgain++
	default:
		fail("%s: %v (errno %d)", what, err, e)
	}
}

func hostile(plain string, size int, ringName, back string, secs int, lang string) {
	in := lines()
	p, err := mmipc.Open(plain)
	if err != nil || p.Size() != size {
		fail("open %q: %v (size %d, want %d)", plain, err, sizeOf(p), size)
	}
	p.Close()
	q, err := mmipc.OpenRing(ringName)
	if err != nil {
		fail("open_ring %q: %v", ringName, err)
	}
	fmt.Println("ready")
	awaitLine(in, "start", startWait)

	var c counts
	maxMsg := q.MaxMessage()
	msg := bytes.Repeat([]byte{0x5A}, maxMsg)
	buf := make([]byte, maxMsg)
	timeouts := []time.Duration{mmipc.TryOnce, time.Millisecond, 3 * time.Millisecond}
	for end := time.Now().Add(time.Duration(secs) * time.Second); time.Now().Before(end); {
		r, err := mmipc.Open(plain)
		switch {
		case err == nil:
			if r.Size() != size {
				fail("open %q succeeded with %d bytes, want %d: a lying header was accepted", plain, r.Size(), size)
			}
			r.Close()
			c.openOK++
		case errnoOf(err) == syscall.EPROTO:
			c.openEPROTO++
		default:
			fail("open %q: %v", plain, err)
		}
		c.ring("send", q.Send(msg[:rand.IntN(maxMsg+1)], timeouts[rand.IntN(3)]))
		n, err := q.Recv(buf, timeouts[rand.IntN(3)])
		if n < 0 || n > len(buf) {
			fail("recv returned %d bytes into %d", n, len(buf))
		}
		c.ring("recv", err)
		if rand.IntN(16) == 0 {
			b, err := q.Reserve(rand.IntN(maxMsg+1), time.Millisecond)
			c.ring("reserve", err)
			if err == nil {
				copy(b, msg)
				c.ring("commit", q.Commit(len(b)))
			}
			m, err := q.Peek(time.Millisecond)
			c.ring("peek", err)
			if err == nil {
				if len(m) > maxMsg {
					fail("peek returned %d bytes; the largest message is %d", len(m), maxMsg)
				}
				c.ring("release", q.Release())
			}
		}
	}
	q.Close()
	fmt.Printf("hostile %v\n", c)
	awaitLine(in, "go", goWait)

	p, err = mmipc.Open(plain)
	if err != nil || p.Size() != size {
		fail("work: open %q: %v (size %d, want %d)", plain, err, sizeOf(p), size)
	}
	for i, b := range p.Bytes() {
		if b != byte(i*7+3) {
			fail("work: %q byte %d is %#x, want %#x", plain, i, b, byte(i*7+3))
		}
	}
	p.Close()
	q, err = mmipc.OpenRing(ringName)
	if err != nil {
		fail("work: open_ring %q: %v", ringName, err)
	}
	for i := range workMessages {
		if err := q.Send(fmt.Appendf(nil, "%s %d", lang, i), workTimeout); err != nil {
			fail("work: send %d: %v", i, err)
		}
	}
	q.Close()
	bq, err := mmipc.OpenRing(back)
	if err != nil {
		fail("work: open_ring %q: %v", back, err)
	}
	for i := range workMessages {
		n, err := bq.Recv(buf, workTimeout)
		if err != nil || string(buf[:n]) != fmt.Sprintf("back %d", i) {
			fail("work: recv %d: %q, %v", i, buf[:max(n, 0)], err)
		}
	}
	bq.Close()
	fmt.Printf("ok hostile %v sent=%d received=%d\n", c, workMessages, workMessages)
}

func sizeOf(r *mmipc.Region) int {
	if r == nil {
		return -1
	}
	return r.Size()
}

var errnos = map[string]syscall.Errno{
	"0": 0, "ENOENT": syscall.ENOENT, "EEXIST": syscall.EEXIST, "ELOOP": syscall.ELOOP,
	"EPROTO": syscall.EPROTO, "EACCES": syscall.EACCES, "EINVAL": syscall.EINVAL, "EPERM": syscall.EPERM,
	"EBUSY": syscall.EBUSY,
}

func expect(op, name, want string) {
	w, ok := errnos[want]
	if !ok {
		usage()
	}
	var err error
	extra := ""
	switch op {
	case "open", "open_ro":
		var r *mmipc.Region
		if op == "open" {
			r, err = mmipc.Open(name)
		} else {
			r, err = mmipc.OpenReadOnly(name)
		}
		if err == nil {
			r.Close()
		}
	case "ring_open":
		var q *mmipc.Ring
		if q, err = mmipc.OpenRing(name); err == nil {
			q.Close()
		}
	case "create":
		var r *mmipc.Region
		if r, err = mmipc.Create(name, 4096, 0o600); err == nil {
			r.Close()
		}
	case "unlink":
		err = mmipc.Unlink(name)
	case "stat":
		var info mmipc.Info
		if info, err = mmipc.Stat(name); err == nil {
			extra = fmt.Sprintf(" size=%d attached=%d uid=%d", info.Size, b2i(info.Attached), info.UID)
		}
	default:
		usage()
	}
	var e *mmipc.Error
	if err != nil && !errors.As(err, &e) {
		fail("%s %q: %T %v, want an *mmipc.Error", op, name, err, err)
	}
	if got := errnoOf(err); got != w {
		fail("%s %q: %v (errno %d), want %s", op, name, err, got, want)
	}
	fmt.Printf("expect %s %s %s%s\n", op, name, want, extra)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func hold(name string, size int, mode os.FileMode) {
	in := lines()
	r, err := mmipc.Create(name, size, mode)
	if err != nil {
		fail("create %q: %v", name, err)
	}
	copy(r.Bytes(), fmt.Sprintf("held by %d\x00", os.Getpid()))
	fmt.Println("holding")
	for {
		select {
		case l, ok := <-in:
			switch {
			case l == "read":
				b := r.Bytes()[64:min(128, r.Size())]
				if i := bytes.IndexByte(b, 0); i >= 0 {
					b = b[:i]
				}
				fmt.Printf("data64=%s\n", b)
				continue
			case !ok || l == "close":
				if err := r.Close(); err != nil {
					fail("close: %v", err)
				}
				fmt.Println("ok hold")
				return
			default:
				fail("stdin: unknown line %q", l)
			}
		case <-time.After(goWait):
			fail("no line on stdin for %v", goWait)
		}
	}
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	command = os.Args[1]
	args := os.Args[2:]
	num := func(i int, base int) int {
		if i >= len(args) {
			usage()
		}
		n, err := strconv.ParseInt(args[i], base, 64)
		if err != nil || n < 0 {
			fmt.Fprintf(os.Stderr, "bad number %q\n", args[i])
			os.Exit(2)
		}
		return int(n)
	}
	need := func(n int) {
		if len(args) != n {
			usage()
		}
	}
	switch command {
	case "hostile":
		need(6)
		hostile(args[0], num(1, 10), args[2], args[3], num(4, 10), args[5])
	case "expect":
		if len(args) == 0 || len(args)%3 != 0 {
			usage()
		}
		for i := 0; i < len(args); i += 3 {
			expect(args[i], args[i+1], args[i+2])
		}
		fmt.Printf("ok expect %d\n", len(args)/3)
	case "gc":
		need(0)
		n, err := mmipc.GC()
		if err != nil {
			fail("%v", err)
		}
		fmt.Printf("ok gc removed=%d\n", n)
	case "hold":
		need(3)
		hold(args[0], num(1, 10), os.FileMode(num(2, 8)))
	default:
		usage()
	}
}
