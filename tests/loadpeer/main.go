// Command loadpeer is the Go peer of the load test (tests/hardening_load_test.go);
// tests/c/load_peer.c and tests/python_load_peer.py are its C and Python twins, with the same
// command line, behaviour and output. It is pure Go and must build with CGO_ENABLED=0.
//
//	loadpeer send RING SECONDS MINLEN MAXLEN SEED ID
//	loadpeer recv RING SECONDS MINLEN MAXLEN SEED NSENDERS
//
// Both open the ring RING, which the test made. Messages are in the tests/hmsg format.
//
// send: for SECONDS, sends messages 0, 1, 2, ... of sender ID as fast as the ring takes them, each
// of a length drawn from [MINLEN, MAXLEN] (MINLEN >= 24) by splitmix64 seeded with SEED: r = next();
// len = MINLEN + r % (MAXLEN-MINLEN+1); bit 32 of r set: the message is written in place
// (reserve, fill, commit), else built in a buffer and sent. Every call waits at most 1 s (a
// timeout is retried while time is left; a message that did not go is not counted). Then it sends
// the end marker (flags END, seq = the number of messages sent; retried for up to 15 s) and prints
// "ok send ring=RING id=ID sent=N bytes=B" (B: the bytes of those N messages).
//
// recv: takes messages (1 s per call; Recv, or Peek and Release for every other message) until it
// has the end markers of NSENDERS different senders, then checks that nothing follows them. Each
// message must verify (hmsg: length, checksum, payload), be at most MAXLEN bytes (an end marker
// aside), and carry the next number of its sender: no loss, no repeat, no reordering; an end
// marker's seq must equal the number of messages received from its sender. Prints, per sender in
// the order first seen, "from id=ID count=N last=SEQ" (SEQ -1 when none), then
// "ok recv ring=RING total=N". It gives up after SECONDS + 12 s.
//
// Any failure prints "FAIL send|recv: ..." and exits 1.
package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/mmipc/mmipc/mmipc"
	"github.com/mmipc/mmipc/tests/hmsg"
)

const (
	callLimit = time.Second
	endLimit  = 15 * time.Second
	recvGrace = 12 * time.Second
)

var command string

func fail(format string, args ...any) {
	fmt.Printf("FAIL %s: %s\n", command, fmt.Sprintf(format, args...))
	os.Exit(1)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: loadpeer send|recv RING SECONDS MINLEN MAXLEN SEED ID|NSENDERS (see tests/loadpeer/main.go)")
	os.Exit(2)
}

func number(s string) uint64 {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bad number %q\n", s)
		os.Exit(2)
	}
	return v
}

// splitmix64 is the length generator every language's sender uses.
type splitmix64 uint64

func (x *splitmix64) next() uint64 {
	*x += 0x9E3779B97F4A7C15
	z := uint64(*x)
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return z ^ z>>31
}

func main() {
	if len(os.Args) != 8 {
		usage()
	}
	command = os.Args[1]
	ring, seconds := os.Args[2], number(os.Args[3])
	minLen, maxLen, seed, last := int(number(os.Args[4])), int(number(os.Args[5])), number(os.Args[6]), number(os.Args[7])
	if minLen < hmsg.HeaderLen || maxLen < minLen || maxLen > hmsg.MaxLen {
		fmt.Fprintf(os.Stderr, "bad length range %d..%d\n", minLen, maxLen)
		os.Exit(2)
	}
	q, err := mmipc.OpenRing(ring)
	if err != nil {
		fail("%v", err)
	}
	defer q.Close()
	if maxLen > q.MaxMessage() {
		fail("MAXLEN %d: the ring carries at most %d", maxLen, q.MaxMessage())
	}
	duration := time.Duration(seconds) * time.Second
	switch command {
	case "send":
		send(q, duration, minLen, maxLen, splitmix64(seed), uint32(last))
	case "recv":
		recv(q, duration, maxLen, int(last))
	default:
		usage()
	}
}

func timedOut(err error) bool {
	return errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, syscall.EAGAIN)
}

func send(q *mmipc.Ring, duration time.Duration, minLen, maxLen int, rng splitmix64, id uint32) {
	buf := make([]byte, maxLen)
	deadline := time.Now().Add(duration)
	var seq, bytes uint64
	for time.Now().Before(deadline) {
		r := rng.next()
		n := minLen + int(r%uint64(maxLen-minLen+1))
		for {
			var err error
			if r>>32&1 != 0 {
				var msg []byte
				if msg, err = q.Reserve(n, callLimit); err == nil {
					hmsg.Fill(msg, seq, id, 0)
					err = q.Commit(n)
				}
			} else {
				hmsg.Fill(buf[:n], seq, id, 0)
				err = q.Send(buf[:n], callLimit)
			}
			if err == nil {
				seq++
				bytes += uint64(n)
				break
			}
			if !timedOut(err) {
				fail("message %d: %v", seq, err)
			}
			if !time.Now().Before(deadline) {
				break // the ring stayed full to the end: this message is not sent
			}
		}
	}
	hmsg.Fill(buf[:hmsg.HeaderLen], seq, id, hmsg.FlagEnd)
	endBy := time.Now().Add(endLimit)
	for {
		err := q.Send(buf[:hmsg.HeaderLen], callLimit)
		if err == nil {
			break
		}
		if !timedOut(err) || time.Now().After(endBy) {
			fail("end marker: %v", err)
		}
	}
	fmt.Printf("ok send ring=%s id=%d sent=%d bytes=%d\n", q.Name(), id, seq, bytes)
}

type senderState struct {
	id    uint32
	count uint64
	ended bool
}

func recv(q *mmipc.Ring, duration time.Duration, maxLen, nsenders int) {
	giveUp := time.Now().Add(duration + recvGrace)
	buf := make([]byte, q.MaxMessage())
	var senders []*senderState
	ended := 0
	var total uint64
	for got := 0; ended < nsenders; {
		var msg []byte
		var err error
		peeked := got%2 == 1
		if peeked {
			msg, err = q.Peek(callLimit)
		} else {
			var n int
			if n, err = q.Recv(buf, callLimit); err == nil {
				msg = buf[:n]
			}
		}
		if err != nil {
			if !timedOut(err) {
				fail("%v", err)
			}
			if time.Now().After(giveUp) {
				fail("%d of %d senders ended after %v", ended, nsenders, duration+recvGrace)
			}
			continue
		}
		got++
		seq, id, flags, err := hmsg.Verify(msg)
		if err != nil {
			fail("%v", err)
		}
		var s *senderState
		for _, x := range senders {
			if x.id == id {
				s = x
			}
		}
		if s == nil {
			if len(senders) == nsenders {
				fail("a message from sender %d, after %d senders already", id, nsenders)
			}
			s = &senderState{id: id}
			senders = append(senders, s)
		}
		switch {
		case s.ended:
			fail("sender %d: seq %d after its end marker", id, seq)
		case flags == hmsg.FlagEnd && seq != s.count:
			fail("sender %d: end marker says %d sent, %d received", id, seq, s.count)
		case flags == hmsg.FlagEnd:
			s.ended = true
			ended++
		case seq != s.count:
			fail("sender %d: seq %d after %d messages (lost, repeated or reordered)", id, seq, s.count)
		case len(msg) > maxLen:
			fail("sender %d: seq %d has %d bytes, more than %d", id, seq, len(msg), maxLen)
		default:
			s.count++
			total++
		}
		if peeked {
			if err := q.Release(); err != nil {
				fail("%v", err)
			}
		}
	}
	if _, err := q.Recv(buf, mmipc.TryOnce); !errors.Is(err, syscall.EAGAIN) {
		fail("after every end marker the ring is not empty: %v", err)
	}
	for _, s := range senders {
		fmt.Printf("from id=%d count=%d last=%d\n", s.id, s.count, int64(s.count)-1)
	}
	fmt.Printf("ok recv ring=%s total=%d\n", q.Name(), total)
}
