// Command gopeer is the Go side of the benchmark's "Go peer" rows (bench/ENGINES.md): the
// responder of bench/c/pingpong.c and the consumer of bench/c/bandwidth.c, written as a Go user
// of the pure-Go package would write them. It builds with CGO_ENABLED=0.
//
//	gopeer respond --mech mmipc-spin --name NAME --size BYTES --count TOTAL [--spin-ns D | --spin N] [--corrupt-at K]
//	gopeer consume --name NAME --size BYTES --count TOTAL [--spin-ns D | --spin N]
//	gopeer ring-respond|ring-send|ring-recv ...   (the message ring: ring.go)
//
// Both open the named region NAME in $MMIPC_DIR (default /dev/shm) that the C initiator created,
// and follow its layout and data pattern exactly (bench/c/bench.h, pingpong.c, bandwidth.c):
//
//   - respond: u32 ping_seq at 0, u32 pong_seq at 64, ping payload at 128, pong payload at
//     128 + round_up(BYTES, 64). For round i = 1..TOTAL: wait for ping_seq == i, copy the ping
//     out, copy the pong in, store pong_seq = i, then verify the ping copy.
//   - consume: u32 seq at 0, u32 ack at 64, data at 4096. For transfer i: wait for seq == i,
//     verify every word of the data in place, store ack = i (0xFFFFFFFF and exit 1 on a mismatch).
//
// The pattern of round i: the native-endian u64 word k is base + k, base = (i+1) *
// 0x9E3779B97F4A7C15 ^ salt (mod 2^64); a tail shorter than a word holds the first bytes of the
// next word.
//
// The wait is the C engines' loop: spin, then yield the CPU between checks with sched_yield, so
// that on a shared core the peer gets to run. The C spin is 100 checks with a pause instruction
// each; Go has no pause outside assembly, and 100 bare checks would last ~20 times shorter, so the
// C initiator measures its spin phase and passes it as --spin-ns: the Go peer then spins (bare
// checks, reading the clock every 16th) for that long before yielding. Without --spin-ns it makes
// --spin bare checks (default 100). The words are accessed with
// sync/atomic through *uint32 into the page-aligned region (atomic.StoreUint32 is an XCHG on
// amd64, where C's release store is a plain MOV).
//
// Exit status: 0 on success, 1 on a failure (wrong data, no progress for 20 s), 2 on a bad
// command line.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mmipc/mmipc/mmipc"
)

const (
	timeout  = 20 * time.Second
	seqErr   = 0xFFFFFFFF
	golden   = 0x9E3779B97F4A7C15
	saltPing = 0x50494e4700000000
	saltPong = 0x504f4e4700000000
	saltBulk = 0x42554c4b00000000
	dataOff  = 4096 // bandwidth: data offset
)

// moreCommands are the commands defined in other files (ring.go): name -> run(arguments).
var moreCommands = map[string]func(args []string){}

var (
	spinLimit  = 100
	spinWindow time.Duration // > 0: spin this long instead of spinLimit checks
	progress   atomic.Uint64
)

func main() {
	if len(os.Args) < 2 {
		usage("missing command (respond or consume)")
	}
	cmd := os.Args[1]
	if run, ok := moreCommands[cmd]; ok {
		run(os.Args[2:])
		return
	}
	fs := flag.NewFlagSet("gopeer "+cmd, flag.ContinueOnError)
	mech := fs.String("mech", "mmipc-spin", "respond: the mechanism (only mmipc-spin)")
	name := fs.String("name", "", "region name")
	size := fs.Int("size", 0, "payload bytes")
	count := fs.Uint("count", 0, "rounds or transfers")
	spin := fs.Int("spin", spinLimit, "checks before yielding")
	spinNs := fs.Int64("spin-ns", 0, "spin this many ns before yielding (overrides --spin)")
	corruptAt := fs.Uint("corrupt-at", 0, "respond: corrupt the pong of this round (a self-test)")
	if err := fs.Parse(os.Args[2:]); err != nil {
		usage(err.Error())
	}
	if *name == "" || *size <= 0 || *count == 0 || *count >= seqErr || *spin < 0 || *spinNs < 0 || fs.NArg() > 0 {
		usage("--name, --size > 0 and --count > 0 are required")
	}
	spinLimit, spinWindow = *spin, time.Duration(*spinNs)
	go watchdog()
	switch cmd {
	case "respond":
		if *mech != "mmipc-spin" {
			usage("respond supports --mech mmipc-spin only")
		}
		respond(*name, *size, uint32(*count), uint32(*corruptAt))
	case "consume":
		consume(*name, *size, uint32(*count))
	default:
		usage("unknown command " + cmd)
	}
}

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "gopeer: usage: gopeer respond|consume --name NAME --size BYTES --count TOTAL: %s\n", msg)
	os.Exit(2)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gopeer %s: FAIL: %s\n", os.Args[1], fmt.Sprintf(format, args...))
	os.Exit(1)
}

// watchdog bounds every wait: no progress for `timeout` (the initiator is stuck or gone) is a
// failure. The initiator's death also kills us at once (it set PR_SET_PDEATHSIG before exec).
func watchdog() {
	last, idle := progress.Load(), time.Duration(0)
	for {
		time.Sleep(time.Second)
		if now := progress.Load(); now != last {
			last, idle = now, 0
			continue
		}
		if idle += time.Second; idle >= timeout {
			fail("no progress for %v: the initiator is stuck or gone", timeout)
		}
	}
}

// wait returns once *w is want (or seqErr), as bench_spin_wait does in C.
func wait(w *uint32, want uint32) uint32 {
	var start time.Time
	yielding := false
	for spins := 0; ; spins++ {
		v := atomic.LoadUint32(w)
		if v == want || v == seqErr {
			return v
		}
		switch {
		case yielding:
			unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
		case spinWindow > 0:
			if spins == 0 {
				start = time.Now()
			} else if spins%16 == 0 && time.Since(start) >= spinWindow {
				yielding = true
			}
		case spins >= spinLimit:
			yielding = true
		}
	}
}

func base(i uint32, salt uint64) uint64 { return (uint64(i)+1)*golden ^ salt }

// fill writes the pattern of base into b.
func fill(b []byte, base uint64) {
	k := uint64(0)
	for ; len(b) >= 8; b = b[8:] {
		binary.NativeEndian.PutUint64(b, base+k)
		k++
	}
	if len(b) > 0 {
		var t [8]byte
		binary.NativeEndian.PutUint64(t[:], base+k)
		copy(b, t[:])
	}
}

// check returns the offset of the first byte of b that differs from the pattern, or -1. The
// fast pass ORs the differences of whole words, four at a time, with no branch per word.
func check(b []byte, base uint64) int {
	var diff uint64
	n := len(b) / 8
	if n > 0 && uintptr(unsafe.Pointer(&b[0]))%8 == 0 {
		w := unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), n)
		v := base
		var a0, a1, a2, a3 uint64
		for ; len(w) >= 4; w = w[4:] { // reslicing: no bounds check per word
			a0 |= w[0] ^ v
			a1 |= w[1] ^ (v + 1)
			a2 |= w[2] ^ (v + 2)
			a3 |= w[3] ^ (v + 3)
			v += 4
		}
		diff = a0 | a1 | a2 | a3
		for _, x := range w {
			diff |= x ^ v
			v++
		}
	} else {
		for k := 0; k < n; k++ {
			diff |= binary.NativeEndian.Uint64(b[8*k:]) ^ (base + uint64(k))
		}
	}
	if tail := b[8*n:]; len(tail) > 0 {
		var t [8]byte
		binary.NativeEndian.PutUint64(t[:], base+uint64(n))
		for i := range tail {
			diff |= uint64(tail[i] ^ t[i])
		}
	}
	if diff == 0 {
		return -1
	}
	var t [8]byte
	for i := range b {
		binary.NativeEndian.PutUint64(t[:], base+uint64(i/8))
		if b[i] != t[i%8] {
			return i
		}
	}
	return -1
}

func mismatch(what string, round uint32, b []byte, base uint64, off int) string {
	var t [8]byte
	binary.NativeEndian.PutUint64(t[:], base+uint64(off/8))
	return fmt.Sprintf("%s of round %d: wrong data at byte %d of %d: %#02x, want %#02x", what, round, off, len(b), b[off], t[off%8])
}

func verify(what string, round uint32, b []byte, base uint64) {
	if off := check(b, base); off >= 0 {
		fail("%s", mismatch(what, round, b, base, off))
	}
}

// open attaches the initiator's region and checks that it holds need bytes.
func open(name string, need int) (*mmipc.Region, []byte) {
	r, err := mmipc.Open(name)
	if err != nil {
		fail("%v", err)
	}
	b := r.Bytes()
	if len(b) < need {
		fail("region %s has %d bytes, want %d", name, len(b), need)
	}
	return r, b
}

// word is the u32 at b[off:], for sync/atomic (off is a multiple of 4 in a page-aligned region).
func word(b []byte, off int) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }

// aligned returns n bytes starting at an 8-byte boundary (a []uint64's backing array).
func aligned(n int) []byte {
	w := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), n)
}

func respond(name string, size int, count, corruptAt uint32) {
	r64 := (size + 63) &^ 63
	r, b := open(name, 128+2*r64)
	defer r.Close()
	pingSeq, pongSeq := word(b, 0), word(b, 64)
	ping, pong := b[128:128+size], b[128+r64:128+r64+size]
	in, out := aligned(size), aligned(size)
	for round := uint32(1); round <= count; round++ {
		// The reply is ready before the ping arrives, as a server's would be.
		fill(out, base(round, saltPong))
		if round == corruptAt {
			out[size/2] ^= 1
		}
		if v := wait(pingSeq, round); v != round {
			fail("ping sequence word is %#x, want %d", v, round)
		}
		copy(in, ping)
		copy(pong, out)
		atomic.StoreUint32(pongSeq, round)
		progress.Add(1)
		// After the reply, off the initiator's clock.
		verify("ping", round, in, base(round, saltPing))
	}
}

func consume(name string, size int, count uint32) {
	r, b := open(name, dataOff+size)
	defer r.Close()
	seq, ack := word(b, 0), word(b, 64)
	data := b[dataOff : dataOff+size]
	for round := uint32(1); round <= count; round++ {
		if v := wait(seq, round); v != round {
			fail("sequence word is %#x, want %d", v, round)
		}
		// Verify in place: the consumer reads the producer's bytes where they are.
		if off := check(data, base(round, saltBulk)); off >= 0 {
			// The message first: the producer kills us as soon as it sees the error.
			fmt.Fprintf(os.Stderr, "gopeer consume: FAIL: %s\n", mismatch("transfer", round, data, base(round, saltBulk), off))
			atomic.StoreUint32(ack, seqErr)
			os.Exit(1)
		}
		atomic.StoreUint32(ack, round)
		progress.Add(1)
	}
}
