package main

// The message-ring peers of bench/c/ring.c (bench/ENGINES.md, "ring"), written as a Go user of
// package mmipc's Ring would write them (CGO_ENABLED=0, blocking calls with mmipc.Forever: the
// package's adaptive spin, then a futex sleep):
//
//	gopeer ring-respond --ping NAME --pong NAME --size BYTES --count TOTAL [--corrupt-at K]
//	gopeer ring-send --name NAME --size BYTES --count TOTAL [--corrupt-at K]
//	gopeer ring-recv --name NAME --size BYTES --count TOTAL --warmup W --batch B --report-fd FD
//
//   - ring-respond: round i = 1..TOTAL: receive the ping from ring NAME (--ping), send the pong
//     (prepared before) through --pong, then verify the ping.
//   - ring-send: send messages 1..TOTAL, message i holding pattern i (salt BULK).
//   - ring-recv: receive and verify messages 1..TOTAL; read the clock after message W and after
//     every B messages, and at the end write the batch times (u64 ns, native-endian) to the
//     descriptor FD (a pipe from the C sender, which prints the RESULT lines).
//
// Every message is checked whole: its length and its pattern; a message of another round is
// reported as lost, duplicated or reordered.

import (
	"encoding/binary"
	"flag"
	"os"
	"time"

	"github.com/mmipc/mmipc/mmipc"
)

func init() {
	moreCommands["ring-respond"] = ringRespond
	moreCommands["ring-send"] = ringSend
	moreCommands["ring-recv"] = ringRecv
}

// ringFlags parses the ring commands' flags; every command checks the ones it needs.
type ringFlags struct {
	name, ping, pong                        string
	size                                    int
	count, corruptAt, warmup, batch, report uint64
}

func parseRingFlags(cmd string, args []string) ringFlags {
	var f ringFlags
	fs := flag.NewFlagSet("gopeer "+cmd, flag.ContinueOnError)
	fs.StringVar(&f.name, "name", "", "ring name (send, recv)")
	fs.StringVar(&f.ping, "ping", "", "respond: the ring the pings arrive on")
	fs.StringVar(&f.pong, "pong", "", "respond: the ring the pongs leave on")
	fs.IntVar(&f.size, "size", 0, "payload bytes")
	fs.Uint64Var(&f.count, "count", 0, "messages (or rounds) in all")
	fs.Uint64Var(&f.corruptAt, "corrupt-at", 0, "corrupt this message (a self-test)")
	fs.Uint64Var(&f.warmup, "warmup", 0, "recv: messages before the first clock read")
	fs.Uint64Var(&f.batch, "batch", 0, "recv: messages per timed batch")
	fs.Uint64Var(&f.report, "report-fd", 0, "recv: the descriptor to write the batch times to")
	if err := fs.Parse(args); err != nil {
		usage(err.Error())
	}
	if f.size <= 0 || f.count == 0 || fs.NArg() > 0 {
		usage("--size > 0 and --count > 0 are required")
	}
	go watchdog()
	return f
}

func openRing(name string) *mmipc.Ring {
	if name == "" {
		usage("a ring name is required")
	}
	q, err := mmipc.OpenRing(name)
	if err != nil {
		fail("%v", err)
	}
	return q
}

func base64(i uint64, salt uint64) uint64 { return (i+1)*golden ^ salt }

// goldenInverse is the inverse of golden mod 2^64 (it is odd): it recovers a payload's round from
// its first word, to tell a lost or reordered message from garbage.
func goldenInverse() uint64 {
	x := uint64(golden)
	for range 6 {
		x *= 2 - golden*x
	}
	return x
}

// verifyMsg fails unless b is exactly size bytes of round want's pattern.
func verifyMsg(what string, want uint64, b []byte, size int, salt uint64) {
	if len(b) != size {
		fail("%s %d: %d bytes, want %d", what, want, len(b), size)
	}
	off := check(b, base64(want, salt))
	if off < 0 {
		return
	}
	if len(b) >= 8 {
		j := (binary.NativeEndian.Uint64(b)^salt)*goldenInverse() - 1
		if j != want && check(b, base64(j, salt)) < 0 {
			fail("%s %d: got message %d instead: a message was lost, duplicated or reordered", what, want, j)
		}
	}
	fail("%s", mismatch(what, uint32(want), b, base64(want, salt), off))
}

func ringRespond(args []string) {
	f := parseRingFlags("ring-respond", args)
	ping, pong := openRing(f.ping), openRing(f.pong)
	defer ping.Close()
	defer pong.Close()
	in, out := aligned(f.size+64), aligned(f.size) // room to see a message of the wrong length
	for round := uint64(1); round <= f.count; round++ {
		// The reply is ready before the ping arrives, as a server's would be.
		fill(out, base64(round, saltPong))
		if round == f.corruptAt {
			out[f.size/2] ^= 1
		}
		n, err := ping.Recv(in, mmipc.Forever)
		if err != nil {
			fail("recv ping %d: %v", round, err)
		}
		if err := pong.Send(out, mmipc.Forever); err != nil {
			fail("send pong %d: %v", round, err)
		}
		progress.Add(1)
		// After the reply, off the initiator's clock.
		verifyMsg("ping", round, in[:n], f.size, saltPing)
	}
}

func ringSend(args []string) {
	f := parseRingFlags("ring-send", args)
	q := openRing(f.name)
	defer q.Close()
	out := aligned(f.size)
	for i := uint64(1); i <= f.count; i++ {
		fill(out, base64(i, saltBulk))
		if i == f.corruptAt {
			out[f.size/2] ^= 1
		}
		if err := q.Send(out, mmipc.Forever); err != nil {
			fail("send %d: %v", i, err)
		}
		if i&1023 == 0 {
			progress.Add(1)
		}
	}
}

func ringRecv(args []string) {
	f := parseRingFlags("ring-recv", args)
	if f.batch == 0 || f.warmup == 0 || f.report == 0 || f.count < f.warmup || (f.count-f.warmup)%f.batch != 0 {
		usage("ring-recv needs --warmup >= 1, --batch >= 1, --report-fd, and count - warmup a multiple of batch")
	}
	report := os.NewFile(uintptr(f.report), "report")
	q := openRing(f.name)
	defer q.Close()
	in := aligned(f.size + 64)
	times := make([]uint64, 0, (f.count-f.warmup)/f.batch)
	var prev time.Time
	for i := uint64(1); i <= f.count; i++ {
		n, err := q.Recv(in, mmipc.Forever)
		if err != nil {
			fail("recv %d: %v", i, err)
		}
		if i >= f.warmup {
			if d := i - f.warmup; d == 0 || d%f.batch == 0 {
				t := time.Now()
				if d > 0 {
					times = append(times, uint64(t.Sub(prev)))
				}
				prev = t
			}
		}
		if i&1023 == 0 {
			progress.Add(1)
		}
		verifyMsg("message", i, in[:n], f.size, saltBulk)
	}
	b := make([]byte, 8*len(times))
	for k, t := range times {
		binary.NativeEndian.PutUint64(b[8*k:], t)
	}
	if _, err := report.Write(b); err != nil {
		fail("writing the report: %v", err)
	}
	report.Close()
}
