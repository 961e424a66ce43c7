package mmipc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ringFixture is a ring in a fresh directory; its first handle is closed with the test, and open
// attaches more handles to it.
type ringFixture struct {
	t    *testing.T
	dir  Dir
	name string
	q    *Ring
}

func newRingFixture(t *testing.T, capacity int) *ringFixture {
	t.Helper()
	d := testDir(t)
	q, err := d.CreateRing("ring", capacity, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return &ringFixture{t: t, dir: d, name: "ring", q: q}
}

func (f *ringFixture) open() *Ring {
	f.t.Helper()
	q, err := f.dir.OpenRing(f.name)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { q.Close() })
	return q
}

func (f *ringFixture) path() string { return f.dir.path(f.name) }

// positions reads tail and head.
func positions(q *Ring) (tail, head uint64) {
	return atomic.LoadUint64(q.tail), atomic.LoadUint64(q.head)
}

// sideWords reads a side's words.
func sideWords(s *side) (owner uint64, handle, inOp, revoke uint32) {
	return atomic.LoadUint64(s.owner), atomic.LoadUint32(s.ownerHandle), atomic.LoadUint32(s.inOp), atomic.LoadUint32(s.revoke)
}

func wantRingErr(t *testing.T, err error, op string, q *Ring, errno syscall.Errno) {
	t.Helper()
	wantErr(t, err, op, q.Name(), errno)
}

// pattern fills a message of n bytes that names its sequence number.
func pattern(seq, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seq*131 + i*7 + 1)
	}
	return b
}

func mustSend(t *testing.T, q *Ring, msg []byte) {
	t.Helper()
	if err := q.Send(msg, time.Second); err != nil {
		t.Fatalf("Send(%d bytes): %v", len(msg), err)
	}
}

func mustRecv(t *testing.T, q *Ring, want []byte) {
	t.Helper()
	buf := make([]byte, q.MaxMessage()+8)
	n, err := q.Recv(buf, time.Second)
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	if !bytes.Equal(buf[:n], want) {
		t.Fatalf("Recv: %d bytes %.20q..., want %d bytes %.20q...", n, buf[:n], len(want), want)
	}
}

func TestRingCreateOpen(t *testing.T) {
	d := testDir(t)
	for _, c := range []struct{ asked, capacity int }{{1, 1024}, {1024, 1024}, {1025, 2048}, {5000, 8192}} {
		name := "cap" + strconv.Itoa(c.asked)
		q, err := d.CreateRing(name, c.asked, 0)
		if err != nil {
			t.Fatal(err)
		}
		o, err := d.OpenRing(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []*Ring{q, o} {
			if r.Capacity() != c.capacity || r.MaxMessage() != c.capacity/2-8 || r.Name() != name || r.Region() == nil {
				t.Errorf("ring of %d: Capacity %d MaxMessage %d Name %q; want %d, %d, %q", c.asked, r.Capacity(), r.MaxMessage(), r.Name(), c.capacity, c.capacity/2-8, name)
			}
			if r.Region().Size() != RingControlSize+c.capacity {
				t.Errorf("region size %d", r.Region().Size())
			}
		}
		if q.handle == o.handle || q.handle == 0 || o.handle == 0 {
			t.Errorf("handle numbers %d and %d: want distinct and non-zero", q.handle, o.handle)
		}
		q.Close()
		o.Close()
	}
}

// TestRingLayoutGolden pins the bytes the ring writes, position by position, against
// docs/PROTOCOL.md ("Records"): headers, tags, padding at the buffer's end, and the control words.
func TestRingLayoutGolden(t *testing.T) {
	f := newRingFixture(t, 1024)
	q := f.q
	ne := binary.NativeEndian
	data := q.Region().Bytes()
	hdr := func(off int) (uint32, uint32) {
		return ne.Uint32(data[RingControlSize+off:]), ne.Uint32(data[RingControlSize+off+4:])
	}
	wantHdr := func(off int, length, kind uint32, pos uint64) {
		t.Helper()
		l, tag := hdr(off)
		if want := kind | uint32(pos>>3)<<8; l != length || tag != want {
			t.Fatalf("record header at buffer offset %d: len %d tag %#x; want %d, %#x", off, l, tag, length, want)
		}
	}
	wantPos := func(tail, head uint64) {
		t.Helper()
		if tl, hd := ne.Uint64(data[64:]), ne.Uint64(data[128:]); tl != tail || hd != head {
			t.Fatalf("tail %d head %d (bytes 64 and 128 of the data); want %d, %d", tl, hd, tail, head)
		}
	}
	mustSend(t, q, []byte("hello"))
	wantHdr(0, 5, recordMessage, 0)
	if string(data[RingControlSize+8:RingControlSize+13]) != "hello" {
		t.Fatalf("payload %q", data[RingControlSize+8:RingControlSize+13])
	}
	wantPos(16, 0)
	mustSend(t, q, nil)
	wantHdr(16, 0, recordMessage, 16)
	wantPos(24, 0)
	mustRecv(t, q, []byte("hello"))
	wantPos(24, 16)
	mustRecv(t, q, []byte{})
	wantPos(24, 24)

	for _, c := range []struct {
		n         int
		pos, tail uint64
	}{
		{488, 24, 520},    // 8 + 488
		{496, 520, 1024},  // ends exactly at the buffer's end: no padding
		{100, 1024, 1136}, // 8 + 104 at offset 0
		{504, 1136, 1648}, // the largest message
	} {
		msg := pattern(c.n, c.n)
		mustSend(t, q, msg)
		wantHdr(int(c.pos&1023), uint32(c.n), recordMessage, c.pos)
		wantPos(c.tail, c.pos)
		mustRecv(t, q, msg)
		wantPos(c.tail, c.tail)
	}
	// 400 bytes at offset 624 would cross the end: padding from 624 to the end, then the message
	// at position 2048 (offset 0).
	msg := pattern(400, 400)
	mustSend(t, q, msg)
	wantHdr(624, 1024-624-8, recordPadding, 1648)
	wantHdr(0, 400, recordMessage, 2048)
	wantPos(2048+408, 1648)
	mustRecv(t, q, msg)
	wantPos(2456, 2456)

	// The position bits are the low 24 bits of p/8.
	base := uint64(1)<<27 + 8 // p/8 = 2^24 + 1: the tag keeps 1
	ne.PutUint64(data[64:], base)
	ne.PutUint64(data[128:], base)
	q.send.cache, q.recv.cache = 0, 0
	mustSend(t, q, []byte("x"))
	wantHdr(int(base&1023), 1, recordMessage, base)
	if _, tag := hdr(int(base & 1023)); tag != 1|1<<8 {
		t.Fatalf("tag at position 2^27+8 is %#x, want 0x101", tag)
	}
	mustRecv(t, q, []byte("x"))

	// The control words: the first line and the sides.
	if string(data[:8]) != RingMagic || ne.Uint32(data[8:]) != 1 || ne.Uint32(data[12:]) != 512 || ne.Uint64(data[16:]) != 1024 {
		t.Fatalf("control line damaged: % x", data[:32])
	}
	if ne.Uint32(data[28:]) != crc32.ChecksumIEEE(data[:28]) {
		t.Fatal("ring_crc does not match")
	}
	self := selfIdentity()
	for _, s := range []struct {
		off  int
		what string
	}{{192, "send"}, {256, "receive"}} {
		owner, handle, inOp, revoke, cpu := ne.Uint64(data[s.off:]), ne.Uint32(data[s.off+8:]), ne.Uint32(data[s.off+12:]), ne.Uint32(data[s.off+16:]), ne.Uint32(data[s.off+20:])
		if owner != self || handle != q.handle || inOp != 0 || revoke != 0 || cpu != cpuUnknown {
			t.Fatalf("%s side: owner %#x handle %d in_op %d revoke %d cpu %#x; want %#x, %d, 0, 0, unknown", s.what, owner, handle, inOp, revoke, cpu, self, q.handle)
		}
	}
	if !isZero(data[24:28]) || !isZero(data[32:64]) || !isZero(data[76:128]) || !isZero(data[140:192]) || !isZero(data[320:512]) {
		t.Fatal("the ring wrote reserved bytes or the locks of unshared sides")
	}
	q.Close() // data is unmapped now: look through another handle
	o := f.open()
	od := o.Region().Bytes()
	if ne.Uint64(od[192:]) != 0 || ne.Uint64(od[256:]) != 0 {
		t.Fatalf("Close left the sides claimed: %#x, %#x", ne.Uint64(od[192:]), ne.Uint64(od[256:]))
	}
}

// TestRingAllSizes sends every size from 0 to the largest, several times round a small buffer, so
// that every offset meets every size: wrap-around and padding included.
func TestRingAllSizes(t *testing.T) {
	for _, capacity := range []int{1024, 4096} {
		f := newRingFixture(t, capacity)
		s, r := f.q, f.open()
		max := s.MaxMessage()
		buf := make([]byte, max)
		seq := 0
		for round := range 3 {
			for n := 0; n <= max; n++ {
				if round == 1 {
					n = max - n // descending this time
				}
				msg := pattern(seq, n)
				if err := s.Send(msg, TryOnce); err != nil {
					t.Fatalf("capacity %d: Send(%d) into an empty ring: %v", capacity, n, err)
				}
				var got []byte
				if seq%2 == 0 {
					k, err := r.Recv(buf, TryOnce)
					if err != nil {
						t.Fatalf("Recv: %v", err)
					}
					got = buf[:k]
				} else {
					p, err := r.Peek(TryOnce)
					if err != nil {
						t.Fatalf("Peek: %v", err)
					}
					got = bytes.Clone(p)
					if err := r.Release(); err != nil {
						t.Fatal(err)
					}
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("capacity %d size %d: received %d different bytes", capacity, n, len(got))
				}
				if tl, hd := positions(s); tl != hd || tl%8 != 0 {
					t.Fatalf("after a round trip: tail %d head %d", tl, hd)
				}
				if round == 1 {
					n = max - n
				}
				seq++
			}
		}
		tl, _ := positions(s)
		if tl < uint64(3*capacity) {
			t.Fatalf("the positions went %d bytes: not around the buffer", tl)
		}
	}
}

// modelRecord is what the model expects in the ring.
type modelRecord struct {
	msg  []byte
	size uint64 // bytes of buffer it took, padding before it included
}

// TestRingRandomized runs a long random mix of sends, reserves, receives and peeks with random
// sizes against a model that predicts every outcome (room or EAGAIN, the message, EMSGSIZE) and the
// positions, byte for byte.
func TestRingRandomized(t *testing.T) {
	const capacity = 2048
	f := newRingFixture(t, capacity)
	s, r := f.q, f.open()
	rng := rand.New(rand.NewPCG(1, 2))
	var queue []modelRecord
	var mt, mh uint64
	rbuf := make([]byte, s.MaxMessage())
	size := func() int {
		switch rng.IntN(4) {
		case 0:
			return rng.IntN(16)
		case 1:
			return s.MaxMessage() - rng.IntN(16)
		default:
			return rng.IntN(s.MaxMessage() + 1)
		}
	}
	ops := 200000
	if testing.Short() {
		ops = 20000
	}
	var sent, received, full, small int
	for i := range ops {
		switch rng.IntN(4) {
		case 0, 1: // send or reserve
			n := size()
			msg := pattern(i, n)
			reserve := rng.IntN(2) == 0
			asked := n // the room asked for: a reservation may ask more than it commits
			if reserve && rng.IntN(2) == 0 && n+16 <= s.MaxMessage() {
				asked = n + 16
			}
			rec := recordLen(uint64(asked))
			pad := uint64(0)
			if off := mt % capacity; off+rec > capacity {
				pad = capacity - off
			}
			fits := capacity-(mt-mh) >= pad+rec
			need := pad + recordLen(uint64(n))
			var err error
			if !reserve {
				err = s.Send(msg, TryOnce)
			} else {
				var b []byte
				if b, err = s.Reserve(asked, TryOnce); err == nil {
					if len(b) != asked || cap(b) != asked {
						t.Fatalf("Reserve(%d) gave len %d cap %d", asked, len(b), cap(b))
					}
					copy(b, msg)
					err = s.Commit(n)
				}
			}
			if fits != (err == nil) {
				t.Fatalf("op %d: send of %d bytes with tail %d head %d: %v; the model says fits=%v", i, n, mt, mh, err, fits)
			}
			if err != nil {
				if !errors.Is(err, syscall.EAGAIN) {
					t.Fatalf("op %d: %v", i, err)
				}
				full++
				continue
			}
			queue = append(queue, modelRecord{msg, need})
			mt += need
			sent++
		default: // receive or peek
			if len(queue) == 0 {
				_, err := r.Recv(rbuf, TryOnce)
				if !errors.Is(err, syscall.EAGAIN) {
					t.Fatalf("op %d: Recv of an empty ring: %v", i, err)
				}
				continue
			}
			want := queue[0]
			if rng.IntN(3) == 0 {
				p, err := r.Peek(TryOnce)
				if err != nil || !bytes.Equal(p, want.msg) {
					t.Fatalf("op %d: Peek: %d bytes, %v; want %d bytes", i, len(p), err, len(want.msg))
				}
				if err := r.Release(); err != nil {
					t.Fatal(err)
				}
			} else {
				capBuf := len(rbuf)
				if rng.IntN(4) == 0 {
					capBuf = rng.IntN(len(want.msg) + 1) // sometimes too small
				}
				n, err := r.Recv(rbuf[:capBuf], TryOnce)
				if capBuf < len(want.msg) {
					wantRingErr(t, err, "ring_recv", r, syscall.EMSGSIZE)
					small++
					continue // the message stays
				}
				if err != nil || !bytes.Equal(rbuf[:n], want.msg) {
					t.Fatalf("op %d: Recv: %d bytes, %v; want %d bytes", i, n, err, len(want.msg))
				}
			}
			queue = queue[1:]
			mh += want.size
			received++
		}
		if tl, hd := positions(s); tl != mt || hd != mh {
			t.Fatalf("op %d: tail %d head %d; the model says %d, %d", i, tl, hd, mt, mh)
		}
	}
	if sent < ops/4 || received < ops/4 || full == 0 || small == 0 {
		t.Fatalf("the run missed cases: %d sent, %d received, %d full, %d too small", sent, received, full, small)
	}
}

func TestRingMessageSize(t *testing.T) {
	f := newRingFixture(t, 1024)
	q := f.q
	max := q.MaxMessage()
	for _, n := range []int{max + 1, max + 8, 1024, 1 << 20} {
		wantRingErr(t, q.Send(make([]byte, n), Forever), "ring_send", q, syscall.EMSGSIZE)
		_, err := q.Reserve(n, Forever)
		wantRingErr(t, err, "ring_reserve", q, syscall.EMSGSIZE)
	}
	if tl, _ := positions(q); tl != 0 {
		t.Fatalf("a refused message moved the tail to %d", tl)
	}
	msg := pattern(1, max)
	mustSend(t, q, msg)
	// A buffer one byte short: EMSGSIZE, and the message stays.
	for _, short := range []int{max - 1, 0} {
		n, err := q.Recv(make([]byte, short), TryOnce)
		wantRingErr(t, err, "ring_recv", q, syscall.EMSGSIZE)
		if n != 0 {
			t.Fatalf("Recv returned %d with EMSGSIZE", n)
		}
	}
	p, err := q.Peek(TryOnce)
	if err != nil || len(p) != max {
		t.Fatalf("Peek after EMSGSIZE: %d bytes, %v", len(p), err)
	}
	q.Release()
	// An empty message fits an empty (even nil) buffer.
	mustSend(t, q, nil)
	if n, err := q.Recv(nil, TryOnce); n != 0 || err != nil {
		t.Fatalf("Recv(nil) of an empty message = %d, %v", n, err)
	}
	if _, err := q.Reserve(-1, TryOnce); err == nil {
		t.Fatal("Reserve(-1) succeeded")
	} else {
		wantRingErr(t, err, "ring_reserve", q, syscall.EINVAL)
	}
}

func TestRingTimeouts(t *testing.T) {
	f := newRingFixture(t, 1024)
	s, r := f.q, f.open()
	for _, bad := range []time.Duration{-2, -time.Hour} {
		wantRingErr(t, s.Send(nil, bad), "ring_send", s, syscall.EINVAL)
		_, err := r.Recv(nil, bad)
		wantRingErr(t, err, "ring_recv", r, syscall.EINVAL)
		_, err = r.Peek(bad)
		wantRingErr(t, err, "ring_peek", r, syscall.EINVAL)
		_, err = s.Reserve(1, bad)
		wantRingErr(t, err, "ring_reserve", s, syscall.EINVAL)
	}
	buf := make([]byte, 1024)
	_, err := r.Recv(buf, TryOnce)
	wantRingErr(t, err, "ring_recv", r, syscall.EAGAIN)
	_, err = r.Peek(TryOnce)
	wantRingErr(t, err, "ring_peek", r, syscall.EAGAIN)
	for i, d := range []time.Duration{time.Nanosecond, 30 * time.Millisecond} {
		start := time.Now()
		_, err = r.Recv(buf, d)
		wantRingErr(t, err, "ring_recv", r, syscall.ETIMEDOUT)
		if el := time.Since(start); el < d || el > d+2*time.Second {
			t.Fatalf("Recv(%v) gave up after %v", d, el)
		}
		// A wait that expired before it could sleep leaves no count; a sleeper that timed out stays
		// counted (it never counts itself out: the next publish takes the count).
		if n := atomic.LoadUint32(s.recvSleepers); n != uint32(i) {
			t.Fatalf("after Recv(%v) timed out: recv_sleepers %d, want %d", d, n, i)
		}
	}
	// Fill the ring: 64 records of 16 bytes.
	for i := range 64 {
		if err := s.Send([]byte("12345678"), TryOnce); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if n := atomic.LoadUint32(s.recvSleepers); n != 0 {
			t.Fatalf("after send %d: recv_sleepers %d; the first publish takes the count", i, n)
		}
	}
	wantRingErr(t, s.Send(nil, TryOnce), "ring_send", s, syscall.EAGAIN)
	_, err = s.Reserve(0, TryOnce)
	wantRingErr(t, err, "ring_reserve", s, syscall.EAGAIN)
	start := time.Now()
	wantRingErr(t, s.Send(nil, 30*time.Millisecond), "ring_send", s, syscall.ETIMEDOUT)
	if el := time.Since(start); el < 30*time.Millisecond || el > 2*time.Second {
		t.Fatalf("Send(30ms) gave up after %v", el)
	}
	if n := atomic.LoadUint32(s.sendSleepers); n != 1 {
		t.Fatalf("a sender that timed out on a full ring: send_sleepers %d, want 1 (it stays counted)", n)
	}
	// One record consumed makes room for one record of 16 bytes, not more; and it leaves the ring
	// more than half full, so it wakes nobody.
	mustRecv(t, r, []byte("12345678"))
	if n := atomic.LoadUint32(s.sendSleepers); n != 1 {
		t.Fatalf("a receive that leaves the ring more than half full: send_sleepers %d, want 1 (no wake-up)", n)
	}
	wantRingErr(t, s.Send(make([]byte, 9), TryOnce), "ring_send", s, syscall.EAGAIN)
	if err := s.Send(make([]byte, 8), TryOnce); err != nil {
		t.Fatal(err)
	}
}

// TestRingWakeUps: a receiver asleep on an empty ring and a sender asleep on a full one are woken
// by the peer's progress (the sender once the ring is half empty), promptly; each counts itself as a
// sleeper first.
func TestRingWakeUps(t *testing.T) {
	f := newRingFixture(t, 1024)
	s, r := f.q, f.open()
	got := make(chan error, 1)
	spawn(t, func() {
		buf := make([]byte, 16)
		n, err := r.Recv(buf, 20*time.Second)
		if err == nil && string(buf[:n]) != "wake" {
			err = fmt.Errorf("received %q", buf[:n])
		}
		got <- err
	})
	waitFor(t, "the receiver to sleep", func() bool { return atomic.LoadUint32(s.recvSleepers) == 1 })
	mustSend(t, s, []byte("wake"))
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the sleeping receiver was not woken")
	}
	// (That the waking send took the count is TestRingWakeOncePerSleep's business, with a sleeper
	// that cannot run meanwhile: this one may end a bounded sleep just then, and count in again.)

	for range 64 {
		mustSend(t, s, []byte("12345678"))
	}
	sent := make(chan error, 1)
	spawn(t, func() { sent <- s.Send([]byte("late"), 20*time.Second) })
	waitFor(t, "the sender to sleep", func() bool { return atomic.LoadUint32(s.sendSleepers) == 1 })
	for range 32 { // the 32nd leaves the ring half full, and wakes the sender
		mustRecv(t, r, []byte("12345678"))
	}
	select {
	case err := <-sent:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the sleeping sender was not woken")
	}
	// (Which receive took the count is TestRingSpaceHysteresis's business: here the sender may
	// have ended a bounded sleep during the burst of receives.)
	for range 32 {
		mustRecv(t, r, []byte("12345678"))
	}
	mustRecv(t, r, []byte("late"))
}

// TestRingClaimForgetsCPU: a Go handle that claims a side sets its cpu word to unknown: Go does
// not know its CPU, and the CPU of the side's previous owner (a C process, say) would make a C peer
// yield to it instead of spinning.
func TestRingClaimForgetsCPU(t *testing.T) {
	f := newRingFixture(t, 1024)
	s, r := f.q, f.open()
	atomic.StoreUint32(s.send.cpu, 3)
	atomic.StoreUint32(s.recv.cpu, 5)
	mustSend(t, s, []byte("x"))
	mustRecv(t, r, []byte("x"))
	if c, d := atomic.LoadUint32(s.send.cpu), atomic.LoadUint32(s.recv.cpu); c != cpuUnknown || d != cpuUnknown {
		t.Fatalf("cpu words after Go claimed both sides: send %#x receive %#x, want %#x", c, d, cpuUnknown)
	}
}

// stopChild stops a child process (SIGSTOP) and waits until it is stopped.
func stopChild(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the child to stop", func() bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		i := bytes.LastIndexByte(b, ')')
		return err == nil && i > 0 && i+2 < len(b) && b[i+2] == 'T'
	})
}

// TestRingWakeOncePerSleep: a receiver asleep (a child process) is stopped, the way a peer on a
// shared CPU does not run while the publisher does. The first publish takes its count and wakes
// it; the next ones find 0 and make no system call, however many follow before it runs again.
func TestRingWakeOncePerSleep(t *testing.T) {
	if os.Getenv(syncHelperEnv) != "" {
		t.Skip("in the child")
	}
	const n = 50
	f := newRingFixture(t, 8192)
	s := f.q
	c := startSyncChild(t, "ring-recv-seq", f.path(), strconv.Itoa(n))
	waitFor(t, "the receiver to count itself in", func() bool { return atomic.LoadUint32(s.recvSleepers) >= 1 })
	time.Sleep(20 * time.Millisecond)
	stopChild(t, c.pid())
	for i := range n {
		mustSend(t, s, []byte("message "+strconv.Itoa(i)))
		if c := atomic.LoadUint32(s.recvSleepers); c != 0 {
			t.Fatalf("after publish %d: recv_sleepers %d; the first publish takes the count, the next find 0", i, c)
		}
	}
	if err := syscall.Kill(c.pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	c.passed(t, "the receiver, woken once")
}

// TestRingSpaceHysteresis: a sender waiting for space is woken only by a receive that leaves the
// ring at most half full, and still always: a sender of the largest message (a record of half the
// ring) whose record needs padding before the buffer's end may not fit at half full, and every
// later receive wakes it again until it fits (an empty ring fits any message). The sender is a
// child process, stopped around each receive, so that the count read right after a receive shows
// what the receive did: kept (no wake-up) or swapped to 0 (woken). Records of 64 bytes in 1 KiB,
// head and tail starting at 0 (no padding), 576 (seven futile wake-ups) and 936.
func TestRingSpaceHysteresis(t *testing.T) {
	if os.Getenv(syncHelperEnv) != "" {
		t.Skip("in the child")
	}
	for _, start := range []uint64{0, 576, 936} {
		t.Run(strconv.FormatUint(start, 10), func(t *testing.T) {
			f := newRingFixture(t, 1024)
			r := f.q
			for tl, _ := positions(r); tl < start; tl, _ = positions(r) {
				m := make([]byte, 8)
				if start-tl < 16 {
					m = nil
				}
				mustSend(t, r, m)
				mustRecv(t, r, m)
			}
			filled := 0
			for ; r.Send(pattern(filled, 56), TryOnce) == nil; filled++ {
			}
			c := startSyncChild(t, "ring-send-largest", f.path())
			futile, fitAt := 0, -1
			for i := 0; i < filled && fitAt < 0; i++ {
				waitFor(t, "the sender to count itself in", func() bool { return atomic.LoadUint32(r.sendSleepers) >= 1 })
				stopChild(t, c.pid())
				mustRecv(t, r, pattern(i, 56))
				tl, hd := positions(r)
				used, off := tl-hd, tl&1023
				pad := uint64(0)
				if off+512 > 1024 {
					pad = 1024 - off
				}
				fits := 1024-used >= pad+512
				n := atomic.LoadUint32(r.sendSleepers)
				if used > 512 && n == 0 {
					t.Fatalf("receive %d left %d bytes (more than half) and took the sender's count", i, used)
				}
				if used <= 512 && n != 0 {
					t.Fatalf("receive %d left %d bytes (at most half): send_sleepers %d, want 0 (woken)", i, used, n)
				}
				if used <= 512 && !fits {
					futile++
				}
				if fits {
					fitAt = i
				}
				if err := syscall.Kill(c.pid(), syscall.SIGCONT); err != nil {
					t.Fatal(err)
				}
			}
			c.passed(t, "the sender of the largest message")
			if fitAt < 0 || (start != 0 && futile == 0) {
				t.Fatalf("the message fit after receive %d, %d wake-ups before: the case was not exercised", fitAt, futile)
			}
			for i := fitAt + 1; i < filled; i++ {
				mustRecv(t, r, pattern(i, 56))
			}
			mustRecv(t, r, pattern(7777, r.MaxMessage()))
			t.Logf("fit after receive %d of %d; %d receives at or below half full woke the sender before", fitAt, filled, futile)
		})
	}
}

func TestRingReserveCommit(t *testing.T) {
	f := newRingFixture(t, 1024)
	s, other, r := f.q, f.open(), f.open()
	wantRingErr(t, s.Commit(0), "ring_commit", s, syscall.EINVAL)
	b, err := s.Reserve(100, TryOnce)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 100 || cap(b) != 100 {
		t.Fatalf("Reserve(100): len %d cap %d", len(b), cap(b))
	}
	copy(b, "zero-copy")
	wantRingErr(t, s.Send(nil, TryOnce), "ring_send", s, syscall.EBUSY)
	_, err = s.Reserve(1, TryOnce)
	wantRingErr(t, err, "ring_reserve", s, syscall.EBUSY)
	wantRingErr(t, s.Commit(101), "ring_commit", s, syscall.EINVAL)
	wantRingErr(t, s.Commit(-1), "ring_commit", s, syscall.EINVAL)
	// Nothing is visible before the commit.
	_, err = r.Recv(nil, TryOnce)
	wantRingErr(t, err, "ring_recv", r, syscall.EAGAIN)
	// The send side stays held: another sender cannot get in (it asks for the side, the owner is
	// inside its operation) until the commit.
	wantRingErr(t, other.Send([]byte("other"), TryOnce), "ring_send", other, syscall.EAGAIN)
	wantRingErr(t, other.Send([]byte("other"), 20*time.Millisecond), "ring_send", other, syscall.ETIMEDOUT)
	if owner, _, inOp, revoke := sideWords(&s.send); owner != selfIdentity() || inOp != 1 || revoke != 1 {
		t.Fatalf("send side during the reservation: owner %#x in_op %d revoke %d", owner, inOp, revoke)
	}
	if err := s.Commit(9); err != nil {
		t.Fatal(err)
	}
	wantRingErr(t, s.Commit(9), "ring_commit", s, syscall.EINVAL)
	// Now the other sender gets in, and the side is shared for good.
	mustSend(t, other, []byte("other"))
	if owner, _, _, _ := sideWords(&s.send); owner != sideShared {
		t.Fatalf("send side owner %#x after a second sender; want shared", owner)
	}
	// Zero-copy on a shared side, and an empty reservation.
	b, err = s.Reserve(0, TryOnce)
	if err != nil || len(b) != 0 {
		t.Fatalf("Reserve(0): %d bytes, %v", len(b), err)
	}
	if o, _, _, _ := lockWords(s.send.lock); o != selfIdentity() {
		t.Fatal("a reservation on a shared side does not hold the send lock")
	}
	if err := s.Commit(0); err != nil {
		t.Fatal(err)
	}
	if o, _, _, _ := lockWords(s.send.lock); o != 0 {
		t.Fatal("Commit kept the send lock")
	}
	mustRecv(t, r, []byte("zero-copy"))
	mustRecv(t, r, []byte("other"))
	mustRecv(t, r, []byte{})
}

func TestRingPeekRelease(t *testing.T) {
	f := newRingFixture(t, 1024)
	s, r, r2 := f.q, f.open(), f.open()
	wantRingErr(t, r.Release(), "ring_release", r, syscall.EINVAL)
	mustSend(t, s, []byte("one"))
	mustSend(t, s, []byte("two"))
	p, err := r.Peek(TryOnce)
	if err != nil || string(p) != "one" || cap(p) != 3 {
		t.Fatalf("Peek = %q (cap %d), %v", p, cap(p), err)
	}
	var p2 []byte
	noBlock(t, "Peek(Forever) with a peek pending", func() { p2, err = r.Peek(Forever) })
	if err != nil || &p2[0] != &p[0] || len(p2) != 3 {
		t.Fatalf("a second Peek = %q, %v; want the same bytes", p2, err)
	}
	// The slice aliases the ring.
	if &p[0] != &r.buf[recordHeaderLen] {
		t.Fatal("Peek's slice is not the ring's bytes")
	}
	_, err = r.Recv(make([]byte, 10), TryOnce)
	wantRingErr(t, err, "ring_recv", r, syscall.EBUSY)
	// Another receiver waits while the side is held.
	_, err = r2.Recv(make([]byte, 10), TryOnce)
	wantRingErr(t, err, "ring_recv", r2, syscall.EAGAIN)
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}
	wantRingErr(t, r.Release(), "ring_release", r, syscall.EINVAL)
	mustRecv(t, r2, []byte("two")) // the side is shared now
	if owner, _, _, _ := sideWords(&r.recv); owner != sideShared {
		t.Fatalf("receive side owner %#x after a second receiver", owner)
	}
	mustSend(t, s, []byte("three"))
	p, err = r.Peek(TryOnce)
	if err != nil || string(p) != "three" {
		t.Fatalf("Peek on a shared side = %q, %v", p, err)
	}
	_, err = r2.Recv(nil, TryOnce)
	wantRingErr(t, err, "ring_recv", r2, syscall.EAGAIN) // the lock is held across the peek
	r.Release()
	_, err = r.Peek(TryOnce)
	wantRingErr(t, err, "ring_peek", r, syscall.EAGAIN)
}

func TestRingClose(t *testing.T) {
	f := newRingFixture(t, 1024)
	a := f.open()
	r := f.open()
	// A reservation abandoned by Close is never delivered; the side is free again.
	b, err := a.Reserve(64, TryOnce)
	if err != nil {
		t.Fatal(err)
	}
	copy(b, "abandoned")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if owner, _, inOp, _ := sideWords(&f.q.send); owner != 0 || inOp != 0 {
		t.Fatalf("after Close: send side owner %#x in_op %d; want unclaimed", owner, inOp)
	}
	_, err = r.Recv(nil, TryOnce)
	wantRingErr(t, err, "ring_recv", r, syscall.EAGAIN)
	mustSend(t, f.q, []byte("after"))
	if owner, handle, _, _ := sideWords(&f.q.send); owner != selfIdentity() || handle != f.q.handle {
		t.Fatalf("the next sender did not claim the freed side: owner %#x handle %d", owner, handle)
	}
	// A peek abandoned by Close leaves the message for the next receiver.
	p, err := r.Peek(TryOnce)
	if err != nil || string(p) != "after" {
		t.Fatalf("Peek = %q, %v", p, err)
	}
	r.Close()
	mustRecv(t, f.open(), []byte("after"))

	// Every call on a closed handle is EINVAL.
	wantRingErr(t, a.Send(nil, TryOnce), "ring_send", a, syscall.EINVAL)
	_, err = a.Recv(nil, TryOnce)
	wantRingErr(t, err, "ring_recv", a, syscall.EINVAL)
	_, err = a.Reserve(1, TryOnce)
	wantRingErr(t, err, "ring_reserve", a, syscall.EINVAL)
	wantRingErr(t, a.Commit(0), "ring_commit", a, syscall.EINVAL)
	_, err = a.Peek(TryOnce)
	wantRingErr(t, err, "ring_peek", a, syscall.EINVAL)
	wantRingErr(t, a.Release(), "ring_release", a, syscall.EINVAL)
}

// TestRingSides: claims, revocation and take-over of a dead owner's side, by the words.
func TestRingSides(t *testing.T) {
	f := newRingFixture(t, 1024)
	self := selfIdentity()
	a, b, r := f.q, f.open(), f.open()
	mustSend(t, a, []byte("a1"))
	if owner, handle, inOp, _ := sideWords(&a.send); owner != self || handle != a.handle || inOp != 0 {
		t.Fatalf("first sender: owner %#x handle %d in_op %d", owner, handle, inOp)
	}
	mustSend(t, b, []byte("b1")) // revokes a's exclusivity
	if owner, _, _, revoke := sideWords(&a.send); owner != sideShared || revoke != 1 {
		t.Fatalf("second sender: owner %#x revoke %d; want shared", owner, revoke)
	}
	mustSend(t, a, []byte("a2")) // a finds out, and goes shared too
	if a.send.mode != modeShared || b.send.mode != modeShared {
		t.Fatalf("modes %d and %d; want both shared", a.send.mode, b.send.mode)
	}
	for _, m := range []string{"a1", "b1", "a2"} {
		mustRecv(t, r, []byte(m))
	}
	if o, _, _, st := lockWords(a.send.lock); o != 0 || st != 0 {
		t.Fatalf("send lock after shared sends: owner %#x state %d", o, st)
	}

	// A receive side owned by a dead process (inside an operation when it died) is taken over.
	dead := makeIdentity(int(uint32(self)), uint32(self>>32)+1)
	atomic.StoreUint64(r.recv.owner, dead)
	atomic.StoreUint32(r.recv.inOp, 1)
	r2 := f.open()
	mustSend(t, a, []byte("to the new receiver"))
	mustRecv(t, r2, []byte("to the new receiver"))
	if owner, handle, inOp, _ := sideWords(&r2.recv); owner != self || handle != r2.handle || inOp != 0 {
		t.Fatalf("after taking over a dead owner's side: owner %#x handle %d in_op %d", owner, handle, inOp)
	}
	// r believed it owned the side: it finds out at its next operation and goes shared.
	mustSend(t, a, []byte("x"))
	mustRecv(t, r, []byte("x"))
	if owner, _, _, _ := sideWords(&r.recv); owner != sideShared {
		t.Fatalf("receive side owner %#x; want shared", owner)
	}

	// A shared side's lock left held by a dead process is taken over and repaired at once.
	atomic.StoreUint64(a.send.lock.owner, dead)
	mustSend(t, a, []byte("after a dead holder"))
	if o, _, _, st := lockWords(a.send.lock); o != 0 || st != 0 {
		t.Fatalf("send lock: owner %#x state %d; want free and consistent", o, st)
	}
	mustRecv(t, r, []byte("after a dead holder"))

	// A stale revoke flag on an unclaimed side: the claimer goes shared at its first operation.
	g := newRingFixture(t, 1024)
	atomic.StoreUint32(g.q.send.revoke, 1)
	mustSend(t, g.q, []byte("y"))
	if owner, _, _, _ := sideWords(&g.q.send); owner != sideShared {
		t.Fatalf("claim with revoke set: owner %#x; want shared", owner)
	}
	mustRecv(t, g.q, []byte("y"))
}

// ---- Concurrency ----

// seqMessage writes a message carrying sender and seq, with a payload derived from them, into b
// (which must hold 8+255 bytes) and returns it.
func seqMessage(b []byte, sender, seq uint32) []byte {
	n := 8 + int(seq*7+sender*13)%256
	binary.NativeEndian.PutUint32(b, sender)
	binary.NativeEndian.PutUint32(b[4:], seq)
	for i := 8; i < n; i++ {
		b[i] = byte(sender*31 + seq + uint32(i))
	}
	return b[:n]
}

// checkSeqMessage validates a message from seqMessage and returns its sender and seq.
func checkSeqMessage(m []byte) (sender, seq uint32, err error) {
	if len(m) < 8 {
		return 0, 0, fmt.Errorf("a message of %d bytes", len(m))
	}
	sender, seq = binary.NativeEndian.Uint32(m), binary.NativeEndian.Uint32(m[4:])
	var want [8 + 256]byte
	if w := seqMessage(want[:], sender, seq); !bytes.Equal(w, m) {
		return 0, 0, fmt.Errorf("sender %d seq %d: %d bytes, want %d, or damaged", sender, seq, len(m), len(w))
	}
	return sender, seq, nil
}

// stopMessage tells a receiver of the MPMC tests to stop.
var stopMessage = []byte("stop")

// TestRingSPSC: one sender and one receiver goroutine, each with its own handle, 1e6 messages in
// order, intact, through a small ring (so both sides wait often).
func TestRingSPSC(t *testing.T) {
	f := newRingFixture(t, 4096)
	s, r := f.q, f.open()
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	errc := make(chan error, 1)
	spawn(t, func() {
		var b [8 + 256]byte
		for i := range n {
			if err := s.Send(seqMessage(b[:], 1, uint32(i)), 30*time.Second); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	})
	buf := make([]byte, r.MaxMessage())
	for i := range n {
		k, err := r.Recv(buf, 30*time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		_, seq, err := checkSeqMessage(buf[:k])
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if seq != uint32(i) {
			t.Fatalf("message %d carries seq %d", i, seq)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	_, err := r.Recv(buf, TryOnce)
	wantRingErr(t, err, "ring_recv", r, syscall.EAGAIN)
	if s.send.mode != modeExclusive || r.recv.mode != modeExclusive {
		t.Fatal("one sender and one receiver did not stay lock-free")
	}
}

// mpmcReceive receives until a stop message, marking each (sender, seq) in seen and checking that
// each sender's messages come in order. It returns how many messages it took.
func mpmcReceive(q *Ring, seen []uint32, senders, count int) (got int, err error) {
	last := make([]int64, senders)
	for i := range last {
		last[i] = -1
	}
	buf := make([]byte, q.MaxMessage())
	for {
		n, err := q.Recv(buf, 60*time.Second)
		if err != nil {
			return got, err
		}
		if bytes.Equal(buf[:n], stopMessage) {
			return got, nil
		}
		sender, seq, err := checkSeqMessage(buf[:n])
		if err != nil {
			return got, err
		}
		if int(sender) >= senders || int(seq) >= count {
			return got, fmt.Errorf("sender %d seq %d out of range", sender, seq)
		}
		if int64(seq) <= last[sender] {
			return got, fmt.Errorf("sender %d: seq %d after %d", sender, seq, last[sender])
		}
		last[sender] = int64(seq)
		atomic.AddUint32(&seen[int(sender)*count+int(seq)], 1)
		got++
	}
}

func mpmcSend(q *Ring, sender uint32, count int) error {
	var b [8 + 256]byte
	for i := range count {
		if err := q.Send(seqMessage(b[:], sender, uint32(i)), 60*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// wantSeenOnce checks that every message was received exactly once.
func wantSeenOnce(t *testing.T, seen []uint32, count int) {
	t.Helper()
	for i := range seen {
		if v := atomic.LoadUint32(&seen[i]); v != 1 {
			t.Fatalf("sender %d seq %d received %d times", i/count, i%count, v)
		}
	}
}

// TestRingMPMC: 4 sender and 3 receiver goroutines, each with its own handle: both sides become
// shared; every message arrives exactly once, intact, and each sender's in order at each receiver.
func TestRingMPMC(t *testing.T) {
	f := newRingFixture(t, 4096)
	const senders, receivers = 4, 3
	count := 30000
	if testing.Short() {
		count = 3000
	}
	seen := make([]uint32, senders*count)
	errc := make(chan error, senders+receivers)
	var rwg, swg sync.WaitGroup
	for range receivers {
		q := f.open()
		rwg.Add(1)
		spawn(t, func() {
			defer rwg.Done()
			_, err := mpmcReceive(q, seen, senders, count)
			errc <- err
		})
	}
	for i := range senders {
		q := f.open()
		swg.Add(1)
		spawn(t, func() { defer swg.Done(); errc <- mpmcSend(q, uint32(i), count) })
	}
	swg.Wait()
	for range receivers {
		mustSend(t, f.q, stopMessage)
	}
	rwg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	wantSeenOnce(t, seen, count)
	if o, _, _, _ := sideWords(&f.q.send); o != sideShared {
		t.Fatalf("send side owner %#x after 4 senders", o)
	}
	if o, _, _, _ := sideWords(&f.q.recv); o != sideShared {
		t.Fatalf("receive side owner %#x after 3 receivers", o)
	}
}

// TestRingMPMCProcesses: senders in two child processes (two goroutines each), receivers in a child
// process and in this one; every message arrives exactly once.
func TestRingMPMCProcesses(t *testing.T) {
	if os.Getenv(syncHelperEnv) != "" {
		t.Skip("in the child")
	}
	f := newRingFixture(t, 4096)
	const senders = 4
	count := 20000
	if testing.Short() {
		count = 2000
	}
	seenRegion := mustAttach(t, "Create", func() (*Region, error) { return f.dir.Create("seen", senders*count*4, 0) })
	seen := words32(seenRegion.Bytes())
	cnt := strconv.Itoa(count)
	recvChild := startSyncChild(t, "ring-recv", f.path(), f.dir.path("seen"), strconv.Itoa(senders), cnt)
	var sendChildren []*syncChild
	for first := 0; first < senders; first += 2 {
		sendChildren = append(sendChildren, startSyncChild(t, "ring-send", f.path(), strconv.Itoa(first), "2", cnt))
	}
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	for range 2 {
		q := f.open()
		wg.Add(1)
		spawn(t, func() {
			defer wg.Done()
			_, err := mpmcReceive(q, seen, senders, count)
			errc <- err
		})
	}
	for _, c := range sendChildren {
		c.passed(t, "ring-send")
	}
	for range 3 {
		mustSend(t, f.q, stopMessage)
	}
	wg.Wait()
	recvChild.passed(t, "ring-recv")
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	wantSeenOnce(t, seen, count)
	// The child's share: it must have taken part (it started before the senders).
	var inChild int
	_, report, _ := strings.Cut(recvChild.out.String(), "received ")
	if _, err := fmt.Sscanf(report, "%d", &inChild); err != nil || inChild == 0 {
		t.Fatalf("the receiving child took %d messages (%v):\n%s", inChild, err, recvChild.out)
	}
	t.Logf("the receiving child took %d of %d messages", inChild, senders*count)
}

// words32 views a region's bytes as uint32 words (the region is page-aligned).
func words32(b []byte) []uint32 { return unsafe.Slice((*uint32)(unsafe.Pointer(&b[0])), len(b)/4) }

// at is the address of b[off], for atomics on a region's bytes.
func at(b []byte, off int) unsafe.Pointer { return unsafe.Pointer(&b[off]) }

// ringHelperChild runs the ring modes of TestSyncHelperChild.
func ringHelperChild(t *testing.T, mode string, args []string, arg func(int) int, hold func()) {
	q, err := OpenRing(args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	switch mode {
	case "ring-reserve-hold": // path: reserve and hold until killed
		b, err := q.Reserve(64, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		copy(b, "never delivered")
		hold()
	case "ring-peek-hold": // path: peek and hold until killed
		if _, err := q.Peek(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		hold()
	case "ring-send": // path, first sender, goroutines, count
		first, n, count := arg(1), arg(2), arg(3)
		errc := make(chan error, n)
		for i := range n {
			h, err := OpenRing(args[0])
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			go func() { errc <- mpmcSend(h, uint32(first+i), count) }()
		}
		for range n {
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		}
	case "ring-recv-seq": // path, n: receives "message 0" .. "message n-1"
		buf := make([]byte, 64)
		for i := range arg(1) {
			k, err := q.Recv(buf, 20*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if want := "message " + strconv.Itoa(i); string(buf[:k]) != want {
				t.Fatalf("received %q, want %q", buf[:k], want)
			}
		}
	case "ring-send-largest": // path: sends pattern(7777, largest)
		if err := q.Send(pattern(7777, q.MaxMessage()), 20*time.Second); err != nil {
			t.Fatal(err)
		}
	case "ring-recv": // path, seen path, senders, count
		r, err := Open(args[1])
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		senders, count := arg(2), arg(3)
		got, err := mpmcReceive(q, words32(r.Bytes()), senders, count)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("received %d\n", got)
	default:
		t.Fatalf("unknown mode %q", mode)
	}
}

// TestRingKilledSender: a sender killed between Reserve and Commit delivers nothing, and the next
// sender works, whether the side was exclusively the dead sender's or shared (its lock held).
func TestRingKilledSender(t *testing.T) {
	if os.Getenv(syncHelperEnv) != "" {
		t.Skip("in the child")
	}
	for _, shared := range []bool{false, true} {
		t.Run(map[bool]string{false: "exclusive", true: "shared"}[shared], func(t *testing.T) {
			f := newRingFixture(t, 1024)
			r := f.q // receives only
			if shared {
				a, b := f.open(), f.open()
				mustSend(t, a, []byte("a"))
				mustSend(t, b, []byte("b"))
				mustRecv(t, r, []byte("a"))
				mustRecv(t, r, []byte("b"))
			}
			tail0, _ := positions(r)
			c := startSyncChild(t, "ring-reserve-hold", f.path())
			pid := uint32(c.pid())
			if shared {
				waitFor(t, "the child to hold the send lock", func() bool { o, _, _, _ := lockWords(r.send.lock); return uint32(o) == pid })
			} else {
				waitFor(t, "the child to hold the send side", func() bool {
					o, _, inOp, _ := sideWords(&r.send)
					return uint32(o) == pid && inOp == 1
				})
			}
			c.kill(t)
			c.wait()
			_, err := r.Recv(nil, TryOnce)
			wantRingErr(t, err, "ring_recv", r, syscall.EAGAIN)
			if tl, _ := positions(r); tl != tail0 {
				t.Fatalf("the killed sender moved the tail from %d to %d", tail0, tl)
			}
			s := f.open()
			if err := s.Send([]byte("next sender"), 5*time.Second); err != nil {
				t.Fatal(err)
			}
			mustRecv(t, r, []byte("next sender"))
			if shared {
				if o, _, _, st := lockWords(r.send.lock); o != 0 || st != 0 {
					t.Fatalf("send lock: owner %#x state %d", o, st)
				}
			} else if o, h, _, _ := sideWords(&r.send); o != selfIdentity() || h != s.handle {
				t.Fatalf("the dead sender's side was not taken over: owner %#x handle %d", o, h)
			}
		})
	}
}

// TestRingKilledReceiver: a receiver killed between Peek and Release consumed nothing.
func TestRingKilledReceiver(t *testing.T) {
	if os.Getenv(syncHelperEnv) != "" {
		t.Skip("in the child")
	}
	f := newRingFixture(t, 1024)
	mustSend(t, f.q, []byte("keep me"))
	c := startSyncChild(t, "ring-peek-hold", f.path())
	pid := uint32(c.pid())
	waitFor(t, "the child to hold the receive side", func() bool {
		o, _, inOp, _ := sideWords(&f.q.recv)
		return uint32(o) == pid && inOp == 1
	})
	c.kill(t)
	c.wait()
	mustRecv(t, f.q, []byte("keep me"))
}

// ---- Hostile peers ----

// corruption is one damage to a ring holding one published 5-byte message at position 0.
type corruption struct {
	what  string
	apply func(data []byte)
}

// TestRingHostileCases: each damage to the control words or a record header is EPROTO for the
// receiver (or the sender), never a panic or a message from outside the published bytes.
func TestRingHostileCases(t *testing.T) {
	ne := binary.NativeEndian
	buf := func(d []byte) []byte { return d[RingControlSize:] }
	cases := []corruption{
		{"head not 8-aligned", func(d []byte) { ne.PutUint64(d[128:], 4) }},
		{"tail not 8-aligned", func(d []byte) { ne.PutUint64(d[64:], 17) }},
		{"tail behind head", func(d []byte) { ne.PutUint64(d[128:], 24) }},
		{"tail beyond head + capacity", func(d []byte) { ne.PutUint64(d[64:], 1024+8) }},
		{"head far beyond tail", func(d []byte) { ne.PutUint64(d[128:], 1<<63) }},
		{"unknown kind", func(d []byte) { ne.PutUint32(buf(d)[4:], 3) }},
		{"kind 0", func(d []byte) { ne.PutUint32(buf(d)[4:], 0) }},
		{"wrong position bits", func(d []byte) { ne.PutUint32(buf(d)[4:], 1|5<<8) }},
		{"length beyond the maximum", func(d []byte) { ne.PutUint32(buf(d), 505) }},
		{"length 0xFFFFFFFF", func(d []byte) { ne.PutUint32(buf(d), 0xFFFFFFFF) }},
		{"message past the tail", func(d []byte) { ne.PutUint32(buf(d), 9) }},
		{"padding not to the end", func(d []byte) { ne.PutUint32(buf(d)[4:], recordPadding); ne.PutUint32(buf(d), 8) }},
		{"padding to the end, past the tail", func(d []byte) { ne.PutUint32(buf(d)[4:], recordPadding); ne.PutUint32(buf(d), 1016) }},
		{"receive lock garbage (shared side)", func(d []byte) {
			ne.PutUint64(d[256:], sideShared)
			ne.PutUint32(d[384+16:], 0x80)
		}},
		{"receive lock not recoverable (shared side)", func(d []byte) {
			ne.PutUint64(d[256:], sideShared)
			ne.PutUint32(d[384+16:], lockNotRecoverable)
		}},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			f := newRingFixture(t, 1024)
			mustSend(t, f.q, []byte("hello"))
			r := f.open()
			c.apply(r.Region().Bytes())
			buf := make([]byte, 1024)
			noBlock(t, "Recv of a damaged ring", func() {
				_, err := r.Recv(buf, 10*time.Millisecond)
				wantRingErr(t, err, "ring_recv", r, syscall.EPROTO)
				_, err = r.Peek(TryOnce)
				wantRingErr(t, err, "ring_peek", r, syscall.EPROTO)
			})
		})
	}
	// A message crossing the buffer's end.
	f := newRingFixture(t, 1024)
	d := f.q.Region().Bytes()
	ne.PutUint64(d[64:], 1024+16)
	ne.PutUint64(d[128:], 1016)
	ne.PutUint32(buf(d)[1016:], 8)
	ne.PutUint32(buf(d)[1020:], recordMessage|uint32(1016>>3)<<8)
	_, err := f.q.Recv(make([]byte, 64), TryOnce)
	wantRingErr(t, err, "ring_recv", f.q, syscall.EPROTO)
	// A sender facing damaged positions.
	ne.PutUint64(d[64:], 3)
	wantRingErr(t, f.q.Send([]byte("x"), TryOnce), "ring_send", f.q, syscall.EPROTO)
	// The sender trusts its cached head while it shows room; a full-looking ring makes it read the
	// head, which is checked.
	ne.PutUint64(d[64:], 1024)
	ne.PutUint64(d[128:], 4096)
	wantRingErr(t, f.q.Send([]byte("x"), TryOnce), "ring_send", f.q, syscall.EPROTO)
}

// TestRingHostileRandom: a goroutine scribbles random values over the positions, the sleeper counts,
// the sides, the side locks and the record headers while a sender and a receiver keep going with
// short timeouts. Every call returns a listed outcome within its timeout (give or take scheduling);
// nothing panics or reads outside the ring.
func TestRingHostileRandom(t *testing.T) {
	f := newRingFixture(t, 1024)
	s, r := f.q, f.open()
	d := f.open().Region().Bytes()
	ne := binary.NativeEndian
	stop := make(chan struct{})
	var scribbler sync.WaitGroup
	scribbler.Add(1)
	spawn(t, func() {
		defer scribbler.Done()
		rng := rand.New(rand.NewPCG(3, 4))
		for {
			select {
			case <-stop:
				return
			default:
			}
			v := rng.Uint64()
			if rng.IntN(2) == 0 {
				v %= 4096 // plausible values too
			}
			switch rng.IntN(8) {
			case 0:
				atomic.StoreUint64((*uint64)(at(d, 64)), v)
			case 1:
				atomic.StoreUint64((*uint64)(at(d, 128)), v)
			case 2:
				atomic.StoreUint32((*uint32)(at(d, 72+64*rng.IntN(2))), uint32(v)%4)
			case 3: // a side or a side lock: mostly small values, sometimes "shared"
				w := uint64(rng.IntN(3))
				if rng.IntN(4) == 0 {
					w = v
				}
				if rng.IntN(8) == 0 {
					w = sideShared
				}
				atomic.StoreUint64((*uint64)(at(d, 192+8*rng.IntN(32))), w)
			default:
				off := RingControlSize + 8*rng.IntN(1024/8)
				atomic.StoreUint64((*uint64)(at(d, off)), v)
			}
			time.Sleep(time.Duration(rng.IntN(20)) * time.Microsecond)
		}
	})
	allowed := func(err error) bool {
		if err == nil {
			return true
		}
		var e *Error
		if !errors.As(err, &e) {
			return false
		}
		switch e.Errno {
		case syscall.EPROTO, syscall.EAGAIN, syscall.ETIMEDOUT, syscall.EMSGSIZE:
			return true
		}
		return false
	}
	counts := map[string]int{}
	buf := make([]byte, 300)
	end := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(end); i++ {
		var err error
		start := time.Now()
		switch i % 4 {
		case 0:
			err = s.Send(pattern(i, i%600), time.Millisecond)
		case 1:
			var k int
			k, err = r.Recv(buf, time.Millisecond)
			if k > len(buf) {
				t.Fatalf("Recv returned %d bytes into %d", k, len(buf))
			}
		case 2:
			var p []byte
			if p, err = r.Peek(TryOnce); err == nil {
				if len(p) > r.MaxMessage() {
					t.Fatalf("Peek returned %d bytes", len(p))
				}
				err = r.Release()
			}
		case 3:
			var b []byte
			if b, err = s.Reserve(i%300, TryOnce); err == nil {
				copy(b, "reserved")
				err = s.Commit(len(b))
				if err != nil && !errors.Is(err, syscall.EPROTO) {
					t.Fatalf("Commit: %v", err)
				}
			}
		}
		if !allowed(err) {
			t.Fatalf("call %d: %v", i, err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("call %d (kind %d) took %v with a 1 ms timeout: %v", i, i%4, el, err)
		}
		if err != nil {
			counts[err.(*Error).Errno.Error()]++
		} else {
			counts["ok"]++
		}
	}
	close(stop)
	scribbler.Wait()
	if counts[syscall.EPROTO.Error()] == 0 {
		t.Fatalf("no EPROTO in the run (%v): the damage went unnoticed", counts)
	}
	t.Logf("outcomes: %v", counts)
	// The handles are still usable once the ring is repaired by hand.
	if r.peeked {
		r.Release()
	}
	clear(d[64:512])
	ne.PutUint64(d[64:], 0)
	ne.PutUint64(d[128:], 0)
	s.send.cache, r.recv.cache = 0, 0
	mustSend(t, s, []byte("repaired"))
	mustRecv(t, r, []byte("repaired"))
}

// FuzzRingRecv builds a ring with fuzzer-chosen positions and buffer bytes and runs the receive (and
// send) paths over it: they must never panic, and must only return a message inside the buffer or
// one of the listed errors.
func FuzzRingRecv(f *testing.F) {
	const capacity = 1024
	region, err := Anon(RingControlSize + capacity)
	if err != nil {
		f.Fatal(err)
	}
	defer region.Close()
	data := region.Bytes()
	ne := binary.NativeEndian
	rec := func(b []byte, off int, length, kind uint32, p uint64) {
		ne.PutUint32(b[off:], length)
		ne.PutUint32(b[off+4:], kind|uint32(p>>3)<<8)
	}
	one := make([]byte, 32)
	rec(one, 0, 5, recordMessage, 0)
	copy(one[8:], "hello")
	f.Add(uint64(16), uint64(0), one, uint16(64))
	f.Add(uint64(16), uint64(0), one, uint16(2))
	f.Add(uint64(8), uint64(0), one, uint16(64))
	f.Add(uint64(0), uint64(16), one, uint16(64))
	wrap := make([]byte, capacity)
	rec(wrap, 1000, 16, recordPadding, 1000)
	rec(wrap, 0, 3, recordMessage, 1024)
	f.Add(uint64(1024+16), uint64(1000), wrap, uint16(64))
	f.Add(uint64(1024+8), uint64(1000), wrap, uint16(64))
	f.Fuzz(func(t *testing.T, tail, head uint64, buf []byte, recvCap uint16) {
		encodeRingControl(data, capacity)
		b := data[RingControlSize:]
		clear(b)
		for i := 0; len(buf) > 0 && i < capacity; i += len(buf) {
			copy(b[i:], buf)
		}
		ne.PutUint64(data[ringOffTail:], tail)
		ne.PutUint64(data[ringOffHead:], head)
		q := newRing(region, capacity)
		check := func(what string, err error) {
			if err == nil {
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%s: %T %v", what, err, err)
			}
			switch e.Errno {
			case syscall.EPROTO, syscall.EAGAIN, syscall.EMSGSIZE:
			default:
				t.Fatalf("%s: %v", what, err)
			}
		}
		p, err := q.Peek(TryOnce)
		check("Peek", err)
		if err == nil {
			// The message sits right after its header at the head, or at the buffer's start
			// when padding came first; consuming it moves the head forward, not past the tail.
			off := q.peekOff
			if len(p) > q.MaxMessage() || cap(p) != len(p) || (len(p) > 0 && &p[0] != &b[off]) ||
				(off != int(head&(capacity-1))+recordHeaderLen && off != recordHeaderLen) {
				t.Fatalf("Peek: %d bytes at buffer offset %d, head %d", len(p), off, head)
			}
			check("Release", q.Release())
			if h := atomic.LoadUint64(q.head); h <= head || h > tail || h-head > capacity {
				t.Fatalf("Release moved the head from %d to %d (tail %d)", head, h, tail)
			}
		}
		out := make([]byte, int(recvCap)%(capacity/2))
		n, err := q.Recv(out, TryOnce)
		check("Recv", err)
		if n > len(out) {
			t.Fatalf("Recv: %d bytes into %d", n, len(out))
		}
		check("Send", q.Send(buf[:min(len(buf), q.MaxMessage())], TryOnce))
		// Again after the send, with whatever this handle cached of the tail.
		n, err = q.Recv(out, TryOnce)
		check("Recv after Send", err)
		if n > len(out) {
			t.Fatalf("Recv: %d bytes into %d", n, len(out))
		}
		// The parser alone, at any positions.
		if rc := parseRecord(b, head, tail); rc.detail == "" && !rc.empty {
			if rc.off < 0 || rc.n < 0 || rc.off+rc.n > capacity || rc.n > q.MaxMessage() {
				t.Fatalf("parseRecord: payload [%d, +%d) outside the buffer", rc.off, rc.n)
			}
		}
	})
}

// ---- Benchmarks (go test -run '^$' -bench Ring ./mmipc/) ----

// BenchmarkRingSPSC: one-way throughput of 64-byte messages between two goroutines.
func BenchmarkRingSPSC(b *testing.B) {
	for _, size := range []int{8, 64, 1024} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			d := Dir(b.TempDir())
			if st, err := os.Stat(DefaultDir); err == nil && st.IsDir() {
				dir, err := os.MkdirTemp(DefaultDir, "mmipc-bench-")
				if err == nil {
					defer os.RemoveAll(dir)
					d = Dir(dir)
				}
			}
			s, err := d.CreateRing("bench", 1<<16, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			r, err := d.OpenRing("bench")
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			msg := make([]byte, size)
			done := make(chan error, 1)
			go func() {
				buf := make([]byte, size)
				for range b.N {
					if _, err := r.Recv(buf, 10*time.Second); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			b.SetBytes(int64(size))
			b.ResetTimer()
			for range b.N {
				if err := s.Send(msg, 10*time.Second); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkRingPingPong: a 64-byte round trip between two goroutines through two rings.
func BenchmarkRingPingPong(b *testing.B) {
	d := Dir(b.TempDir())
	ping, err := d.CreateRing("ping", 4096, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer ping.Close()
	pong, err := d.CreateRing("pong", 4096, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer pong.Close()
	pingR, _ := d.OpenRing("ping")
	defer pingR.Close()
	pongS, _ := d.OpenRing("pong")
	defer pongS.Close()
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for range b.N {
			n, err := pingR.Recv(buf, 10*time.Second)
			if err == nil {
				err = pongS.Send(buf[:n], 10*time.Second)
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	msg, buf := make([]byte, 64), make([]byte, 64)
	b.ResetTimer()
	for range b.N {
		if err := ping.Send(msg, 10*time.Second); err != nil {
			b.Fatal(err)
		}
		if _, err := pong.Recv(buf, 10*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// TestSpinBudget: the adaptive spin's bookkeeping. A wait that sleeps long halves the budget down to
// 0; at 0, one wait in 64 probes; a position that already moved costs nothing.
func TestSpinBudget(t *testing.T) {
	mem := anonBytes(t, 64)
	pos := (*uint64)(at(mem, 0))
	word := (*uint32)(at(mem, 0))
	sleepers := (*uint32)(at(mem, 8))
	sp := spinner{budget: spinStart}
	forever := deadline{timeout: Forever}
	if e := waitChange(pos, word, sleepers, 1, &sp, &forever, false); e != 0 || sp.budget != spinStart { // returns at once
		t.Fatalf("a position that already differs: %v, budget %v", e, sp.budget)
	}
	tryOnce := deadline{timeout: TryOnce}
	if e := waitChange(pos, word, sleepers, 0, &sp, &tryOnce, false); e != syscall.EAGAIN || sp.budget != spinStart {
		t.Fatalf("TryOnce: %v, budget %v", e, sp.budget)
	}
	// Each wait here times out after 2 ms, far beyond any spin: the budget halves, then drops to 0.
	want := spinStart
	for want > 0 {
		dl := deadline{timeout: 2 * time.Millisecond}
		if e := waitChange(pos, word, sleepers, 0, &sp, &dl, false); e != syscall.ETIMEDOUT {
			t.Fatalf("a wait on a still position: %v", e)
		}
		if want /= 2; want < spinFloor {
			want = 0
		}
		if sp.budget != want {
			t.Fatalf("budget %v after a long wait; want %v", sp.budget, want)
		}
	}
	if atomic.LoadUint32(sleepers) == 0 {
		t.Fatal("waits that slept and timed out left no count (a sleeper never counts itself out)")
	}
	w := sp.waits
	dl := deadline{timeout: time.Millisecond}
	waitChange(pos, word, sleepers, 0, &sp, &dl, false)
	if sp.waits != w+1 || sp.budget != 0 {
		t.Fatalf("a wait with budget 0: waits %d -> %d, budget %v", w, sp.waits, sp.budget)
	}
	// A wait that ends during its spin raises the budget to at least twice what it spun.
	sp = spinner{budget: spinMax}
	spawn(t, func() {
		time.Sleep(5 * time.Microsecond)
		atomic.StoreUint64(pos, 1)
	})
	start := time.Now()
	long := deadline{timeout: 10 * time.Second}
	if e := waitChange(pos, word, sleepers, 0, &sp, &long, false); e != 0 {
		t.Fatal(e)
	}
	if el := time.Since(start); el < spinMax/2 && sp.budget != spinMax {
		t.Fatalf("a wait that ended after %v during a spin of %v: budget %v", el, spinMax, sp.budget)
	}
}

// TestSpinWithOneProc: with GOMAXPROCS 1 (a Go process pinned to one CPU gets that) a wait still
// spins within its budget before it sleeps: the peer is another process, which may well run on
// another CPU. A wait on a still position with a budget of 2 ms (an exaggerated one, to stand out
// from what sleeping costs) burns about that much CPU before it sleeps out its 3 ms.
func TestSpinWithOneProc(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	threadCPU := func() time.Duration {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ts.Nano())
	}
	mem := anonBytes(t, 64)
	pos, word, sleepers := (*uint64)(at(mem, 0)), (*uint32)(at(mem, 0)), (*uint32)(at(mem, 8))
	const budget = 2 * time.Millisecond
	var most time.Duration
	for range 3 { // the most of three: a spin preempted by another process burns less
		sp := spinner{budget: budget}
		dl := deadline{timeout: 3 * time.Millisecond}
		c0 := threadCPU()
		if e := waitChange(pos, word, sleepers, 0, &sp, &dl, false); e != syscall.ETIMEDOUT {
			t.Fatalf("a wait on a still position: %v", e)
		}
		most = max(most, threadCPU()-c0)
	}
	if most < budget/2 {
		t.Fatalf("with GOMAXPROCS 1, waits with a budget of %v burned at most %v of CPU: they did not spin", budget, most)
	}
}

// TestRingRevokeWithoutMembarrier: a revoker that cannot issue a membarrier cannot trust what it
// reads of in_op, so it waits for the owner to give the side up: at the owner's next operation
// (it sees revoke and converts the side), at its Close, or at its death.
func TestRingRevokeWithoutMembarrier(t *testing.T) {
	saved := membarrierGlobal
	membarrierGlobal = func() bool { return false }
	defer func() { membarrierGlobal = saved }()

	f := newRingFixture(t, 1024)
	a, b, r := f.q, f.open(), f.open()
	mustSend(t, a, []byte("a1")) // a owns the send side, and is idle
	wantRingErr(t, b.Send([]byte("b1"), TryOnce), "ring_send", b, syscall.EAGAIN)
	wantRingErr(t, b.Send([]byte("b1"), 20*time.Millisecond), "ring_send", b, syscall.ETIMEDOUT)
	if owner, _, inOp, revoke := sideWords(&a.send); owner != selfIdentity() || inOp != 0 || revoke != 1 {
		t.Fatalf("send side: owner %#x in_op %d revoke %d; want a's, idle, asked to give up", owner, inOp, revoke)
	}
	// The owner's next operation converts the side; then b gets in.
	sent := make(chan error, 1)
	spawn(t, func() { sent <- b.Send([]byte("b1"), 10*time.Second) })
	time.Sleep(5 * time.Millisecond)
	mustSend(t, a, []byte("a2"))
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if owner, _, _, _ := sideWords(&a.send); owner != sideShared {
		t.Fatalf("send side owner %#x; want shared", owner)
	}
	mustRecv(t, r, []byte("a1"))
	buf := make([]byte, 8)
	var got []string
	for range 2 {
		n, err := r.Recv(buf, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(buf[:n]))
	}
	if !(got[0] == "a2" && got[1] == "b1") && !(got[0] == "b1" && got[1] == "a2") {
		t.Fatalf("received %q", got)
	}

	// The receive side: its owner (r) closes instead; the waiting revoker then claims it.
	r2 := f.open()
	mustSend(t, a, []byte("x"))
	wantRingErr(t, func() error { _, err := r2.Recv(buf, TryOnce); return err }(), "ring_recv", r2, syscall.EAGAIN)
	got2 := make(chan error, 1)
	spawn(t, func() {
		n, err := r2.Recv(buf, 10*time.Second)
		if err == nil && string(buf[:n]) != "x" {
			err = fmt.Errorf("received %q", buf[:n])
		}
		got2 <- err
	})
	time.Sleep(5 * time.Millisecond)
	r.Close()
	if err := <-got2; err != nil {
		t.Fatal(err)
	}
}

// TestRingLonePadding: published bytes that hold only a padding record (no sender writes that, but
// it is well-formed) read as an empty ring, and the message a sender then writes after it arrives.
func TestRingLonePadding(t *testing.T) {
	f := newRingFixture(t, 1024)
	d := f.q.Region().Bytes()
	ne := binary.NativeEndian
	putRecordHeader(d[RingControlSize:], 1000, 16, recordPadding, 1000)
	ne.PutUint64(d[64:], 1024)
	ne.PutUint64(d[128:], 1000)
	r := f.open()
	_, err := r.Recv(nil, TryOnce)
	wantRingErr(t, err, "ring_recv", r, syscall.EAGAIN)
	if tl, hd := positions(r); tl != 1024 || hd != 1000 {
		t.Fatalf("tail %d head %d after an empty receive; want 1024, 1000 (nothing consumed)", tl, hd)
	}
	mustSend(t, f.q, []byte("after the padding"))
	mustRecv(t, r, []byte("after the padding"))
	if tl, hd := positions(r); tl != hd || tl != 1024+recordLen(17) {
		t.Fatalf("tail %d head %d", tl, hd)
	}
}

// TestRingCreateOpenErrors: a capacity outside 1 B to 1 GiB is EINVAL, and a region that is not a
// ring, or whose control block does not validate, is EPROTO, each with the reason in Detail.
func TestRingCreateOpenErrors(t *testing.T) {
	d := testDir(t)
	for _, c := range []int{0, -1, MaxRingCapacity + 1} {
		q, err := d.CreateRing("bad", c, 0)
		if e := wantErr(t, err, "ring_create", "bad", syscall.EINVAL); e.Detail == "" || q != nil {
			t.Errorf("CreateRing(capacity %d): detail %q, ring %v", c, e.Detail, q)
		}
	}
	_, err := d.OpenRing("missing")
	wantErr(t, err, "ring_open", "missing", syscall.ENOENT)

	plain, err := d.Create("plain", RingControlSize+MinRingCapacity, 0)
	if err != nil {
		t.Fatal(err)
	}
	plain.Close()
	_, err = d.OpenRing("plain")
	if e := wantErr(t, err, "ring_open", "plain", syscall.EPROTO); e.Detail == "" {
		t.Error("OpenRing of a plain region: no detail")
	}

	q, err := d.CreateRing("damaged", 1024, 0)
	if err != nil {
		t.Fatal(err)
	}
	q.region.Bytes()[ringOffCapacity]++ // the checksum no longer matches
	q.Close()
	_, err = d.OpenRing("damaged")
	if e := wantErr(t, err, "ring_open", "damaged", syscall.EPROTO); e.Detail == "" {
		t.Error("OpenRing of a damaged ring: no detail")
	}
}

// TestRingCommitTailMoved: a tail that moved under a reservation (someone scribbled on it) makes
// Commit EPROTO, publishes nothing, and lets go of the send side.
func TestRingCommitTailMoved(t *testing.T) {
	f := newRingFixture(t, 1024)
	s, r := f.q, f.open()
	if _, err := s.Reserve(8, TryOnce); err != nil {
		t.Fatal(err)
	}
	atomic.StoreUint64(s.tail, 64)
	wantRingErr(t, s.Commit(8), "ring_commit", s, syscall.EPROTO)
	if tl, _ := positions(s); tl != 64 {
		t.Fatalf("Commit published over a moved tail: tail %d", tl)
	}
	if _, _, inOp, _ := sideWords(&s.send); inOp != 0 || s.send.held != holdNone || s.reserved {
		t.Fatalf("after the failed Commit: in_op %d, held %d, reserved %v", inOp, s.send.held, s.reserved)
	}
	wantRingErr(t, s.Commit(0), "ring_commit", s, syscall.EINVAL) // the reservation is gone
	_, err := r.Recv(nil, TryOnce)
	wantRingErr(t, err, "ring_recv", r, syscall.EPROTO) // the tail points at no record
}

// TestRingHotPathAllocs: an uncontended Send and Recv allocate nothing.
func TestRingHotPathAllocs(t *testing.T) {
	f := newRingFixture(t, 4096)
	s, r := f.q, f.open()
	msg, buf := make([]byte, 100), make([]byte, 100)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := s.Send(msg, Forever); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Recv(buf, TryOnce); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Send and Recv allocate %v times a message", allocs)
	}
}
