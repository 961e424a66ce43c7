package mmipc

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ring is one handle on a message ring: variable-length messages from any number of senders to
// any number of receivers, in order, through a byte buffer of fixed capacity in a named region, laid
// out as docs/PROTOCOL.md ("Ring") specifies, so Go, C (mmipc_ring) and Python peers share one ring.
//
// One sender and one receiver run lock-free: a send or receive costs about a cache-line transfer
// and no system call unless the peer sleeps. When a second handle sends (or receives), the side
// becomes shared for the ring's life and its handles take turns through a Lock that survives a dead
// holder. Blocking calls spin while that has paid off lately, then sleep on a futex.
//
// A Ring is not safe for concurrent use: open one handle per goroutine (several handles of one
// process on one ring are fine, they are separate senders or receivers). A process killed mid-send
// never delivers a torn message; a peer that scribbles over the ring makes calls fail with EPROTO,
// never read or write outside it.
//
// Timeouts are Forever, TryOnce (EAGAIN when nothing is ready) or a positive duration (ETIMEDOUT).
// Errors are *Error values naming the operation ("ring_send", "ring_recv", ...) and the ring, and
// unwrapping to a syscall.Errno.
type Ring struct {
	region   *Region
	name     string
	capacity uint64
	mask     uint64
	maxMsg   int
	buf      []byte // the buffer: capacity bytes after the control block

	tail, head                 *uint64
	tailWord, headWord         *uint32 // the low halves of tail and head: the futex words
	recvSleepers, sendSleepers *uint32

	id     uint64 // this process's identity
	handle uint32 // this handle's number in the process (a side's owner_handle)

	send, recv side

	// A pending reserve (send side held): the position, padding and length reserved.
	reserved         bool
	resvPos, resvPad uint64
	resvLen          int
	peeked           bool // a pending peek (receive side held)
	peekOff, peekLen int
	peekNext         uint64 // head after the peeked message
	closed           bool
	faulted          bool // an access faulted: the region's file was truncated (see Region.Guard)
}

// sideMode is what a handle knows of a side's ownership.
type sideMode uint8

const (
	modeUnknown   sideMode = iota // not claimed by this handle: read the owner word
	modeExclusive                 // this handle owns it: the lock-free fast path
	modeShared                    // shared (permanent): every operation takes the side's lock
)

// sideHold is how a handle holds a side during an operation.
type sideHold uint8

const (
	holdNone sideHold = iota
	holdFast          // in_op = 1 on an exclusively owned side
	holdLock          // the side's lock
)

// side is a handle's view of one side of the ring (send or receive).
type side struct {
	name        string // "send" or "receive", for messages
	owner       *uint64
	ownerHandle *uint32
	inOp        *uint32
	revoke      *uint32
	cpu         *uint32 // the side's cpu word: Go does not know its CPU, so it only ever says unknown
	lock        *Lock
	mode        sideMode
	held        sideHold
	spin        spinner
	// cache is the other side's position as last read: the sender's head, the receiver's tail. It
	// lags the real one (positions only grow), so it is trusted only when it shows room or data;
	// otherwise the shared word is read again.
	cache uint64
}

// ringHandles numbers ring handles within the process (owner_handle), starting at 1.
var ringHandles atomic.Uint32

func newRing(r *Region, capacity int) *Ring {
	data := r.Bytes()
	u64 := func(off int) *uint64 { return (*uint64)(unsafe.Pointer(&data[off])) }
	u32 := func(off int) *uint32 { return (*uint32)(unsafe.Pointer(&data[off])) }
	q := &Ring{
		region:       r,
		name:         r.Name(),
		capacity:     uint64(capacity),
		mask:         uint64(capacity) - 1,
		maxMsg:       ringMaxMessage(capacity),
		buf:          data[RingControlSize : RingControlSize+capacity : RingControlSize+capacity],
		tail:         u64(ringOffTail),
		head:         u64(ringOffHead),
		tailWord:     u32(ringOffTail),
		headWord:     u32(ringOffHead),
		recvSleepers: u32(ringOffRecvSleepers),
		sendSleepers: u32(ringOffSendSleepers),
		id:           selfIdentity(),
	}
	for q.handle == 0 {
		q.handle = ringHandles.Add(1) // 0 is skipped should the counter ever wrap
	}
	for _, s := range []struct {
		side       *side
		name       string
		off, lockO int
	}{{&q.send, "send", ringOffSendSide, ringOffSendLock}, {&q.recv, "receive", ringOffRecvSide, ringOffRecvLock}} {
		*s.side = side{
			name:        s.name,
			owner:       u64(s.off + sideOffOwner),
			ownerHandle: u32(s.off + sideOffOwnerHandle),
			inOp:        u32(s.off + sideOffInOp),
			revoke:      u32(s.off + sideOffRevoke),
			cpu:         u32(s.off + sideOffCPU),
			lock:        lockAt(data[s.lockO:]),
			spin:        spinner{budget: spinStart},
		}
	}
	return q
}

// Region returns the region that holds the ring. The Ring owns it: close the Ring, not the region.
func (q *Ring) Region() *Region { return q.region }

// Name returns the name or path the ring was created or opened with.
func (q *Ring) Name() string { return q.name }

// Capacity returns the buffer's size in bytes (a power of two).
func (q *Ring) Capacity() int { return int(q.capacity) }

// MaxMessage returns the largest message the ring carries: Capacity()/2 - 8 bytes.
func (q *Ring) MaxMessage() int { return q.maxMsg }

func (q *Ring) fail(op string, e syscall.Errno, detail string) error {
	return &Error{Op: op, Name: q.name, Errno: e, Detail: detail}
}

// checkOpen is the EINVAL of every call on a closed handle, or nil.
func (q *Ring) checkOpen(op string) error {
	if q.closed {
		return q.fail(op, syscall.EINVAL, "the ring handle is closed")
	}
	if q.faulted {
		return q.fail(op, syscall.EPROTO, "an earlier call faulted: the ring's file was truncated under its mapping; close the ring")
	}
	return nil
}

// endGuard is deferred by every call that touches the shared bytes, with the previous
// SetPanicOnFault setting: a memory fault (the ring's file truncated by some process) becomes
// EPROTO and leaves the handle faulted, instead of killing the process. See Region.Guard.
func (q *Ring) endGuard(op string, err *error, old bool) {
	debug.SetPanicOnFault(old)
	if p := recover(); p != nil {
		addr := faultAddr(p)
		q.faulted = true
		// The process lives on, so what it holds must not stay held: a side left in_op or locked
		// would stop every other sender or receiver (the truncation may have spared the control
		// block, or the file may be grown back). Best effort: the words may be gone too.
		q.giveBack(false)
		*err = q.region.faultError(op, byLibrary, addr)
	}
}

// giveBack releases what this handle holds in the shared words: a pending reservation or peek, a
// side held in an operation, and (closing) its exclusive claims. After a fault the words may be
// unmapped: a fault here ends the attempt, silently.
func (q *Ring) giveBack(claims bool) {
	defer func(old bool) {
		debug.SetPanicOnFault(old)
		if p := recover(); p != nil {
			faultAddr(p) // only a memory fault is expected here
		}
	}(debug.SetPanicOnFault(true))
	q.reserved, q.peeked = false, false
	for _, s := range []*side{&q.send, &q.recv} {
		q.exit(s) // a no-op unless the side is held
		if claims {
			if s.mode == modeExclusive && atomic.LoadUint32(s.ownerHandle) == q.handle {
				atomic.CompareAndSwapUint64(s.owner, q.id, 0)
			}
			s.mode = modeUnknown
		}
	}
}

// usable checks what every waiting call checks first: an open handle and a meaningful timeout.
func (q *Ring) usable(op string, timeout time.Duration) error {
	if err := q.checkOpen(op); err != nil {
		return err
	}
	return badTimeout(op, q.name, timeout)
}

// recordLen is the bytes a message of n bytes takes in the buffer: header and payload rounded up to
// 8.
func recordLen(n uint64) uint64 { return recordHeaderLen + (n+7)&^7 }

// Send copies msg (empty is allowed) into the ring as one message, waiting up to timeout for
// space. The errors: EMSGSIZE (longer than MaxMessage: it could never fit), EAGAIN or ETIMEDOUT
// (no space), EBUSY (a Reserve is pending on this handle), EPROTO (the ring's control words are
// damaged), EINVAL (closed handle, bad timeout).
func (q *Ring) Send(msg []byte, timeout time.Duration) (err error) {
	defer q.endGuard("ring_send", &err, debug.SetPanicOnFault(true))
	return q.sendCopy(msg, timeout)
}

// sendCopy is Send's body, apart from the guard so that the defer does not weigh on its code.
func (q *Ring) sendCopy(msg []byte, timeout time.Duration) error {
	t, pad, err := q.startSend("ring_send", len(msg), timeout)
	if err != nil {
		return err
	}
	copy(q.buf[(t+pad)&q.mask+recordHeaderLen:], msg)
	q.publish(t, pad, uint64(len(msg)))
	return nil
}

// Reserve is a zero-copy send, step 1: it returns n writable bytes inside the ring, waiting up to
// timeout for space. Write the message there, then Commit. The send side stays held until then
// (other senders wait), and the slice is valid until the Commit or Close. Errors as for Send, and
// EINVAL for a negative n.
func (q *Ring) Reserve(n int, timeout time.Duration) (_ []byte, err error) {
	defer q.endGuard("ring_reserve", &err, debug.SetPanicOnFault(true))
	t, pad, err := q.startSend("ring_reserve", n, timeout)
	if err != nil {
		return nil, err
	}
	q.reserved, q.resvPos, q.resvPad, q.resvLen = true, t, pad, n
	off := int((t+pad)&q.mask) + recordHeaderLen
	return q.buf[off : off+n : off+n], nil
}

// startSend is the part Send and Reserve share: it checks the call, then holds the send side with
// room for a message of n bytes, returning the tail and the padding before the message.
func (q *Ring) startSend(op string, n int, timeout time.Duration) (t, pad uint64, err error) {
	if err := q.usable(op, timeout); err != nil {
		return 0, 0, err
	}
	switch {
	case q.reserved:
		return 0, 0, q.fail(op, syscall.EBUSY, "a reservation is pending on this handle: Commit it first")
	case n < 0:
		return 0, 0, q.fail(op, syscall.EINVAL, fmt.Sprintf("negative length %d", n))
	case n > q.maxMsg:
		return 0, 0, q.fail(op, syscall.EMSGSIZE, fmt.Sprintf("message of %d bytes; this ring carries at most %d", n, q.maxMsg))
	}
	dl := deadline{timeout: timeout}
	t, pad, e, detail := q.space(uint64(n), &dl)
	if e != 0 {
		return 0, 0, q.fail(op, e, detail)
	}
	return t, pad, nil
}

// Commit is a zero-copy send, step 2: it publishes the reserved message with its final length n (at
// most the reserved length). The errors: EINVAL (no reservation pending, n out of range: the
// reservation stays), EPROTO (the ring's tail moved under the reservation: damaged; nothing is
// published).
func (q *Ring) Commit(n int) (err error) {
	const op = "ring_commit"
	defer q.endGuard(op, &err, debug.SetPanicOnFault(true))
	if err := q.checkOpen(op); err != nil {
		return err
	}
	if !q.reserved {
		return q.fail(op, syscall.EINVAL, "no reservation pending")
	}
	if n < 0 || n > q.resvLen {
		return q.fail(op, syscall.EINVAL, fmt.Sprintf("length %d; %d bytes were reserved", n, q.resvLen))
	}
	q.reserved = false
	if t := atomic.LoadUint64(q.tail); t != q.resvPos {
		q.exit(&q.send)
		return q.fail(op, syscall.EPROTO, fmt.Sprintf("the tail moved from %d to %d while the send side was held", q.resvPos, t))
	}
	q.publish(q.resvPos, q.resvPad, uint64(n))
	return nil
}

// space holds the send side and waits for room for a message of n bytes at the tail. It returns the
// tail and the padding needed before the message, with the side held; on an error the side is not
// held.
func (q *Ring) space(n uint64, dl *deadline) (t, pad uint64, e syscall.Errno, detail string) {
	s := &q.send
	rec := recordLen(n)
	for round := 0; ; round++ {
		if e, detail := q.enter(s, dl); e != 0 {
			return 0, 0, e, detail
		}
		t = atomic.LoadUint64(q.tail)
		off := t & q.mask
		pad = 0
		if off+rec > q.capacity {
			pad = q.capacity - off // the message never wraps: pad to the buffer's end
		}
		need := pad + rec
		h := s.cache
		if t-h > q.capacity || q.capacity-(t-h) < need {
			h = atomic.LoadUint64(q.head)
			s.cache = h
		}
		if t-h > q.capacity || (t|h)&7 != 0 {
			q.exit(s)
			return 0, 0, syscall.EPROTO, fmt.Sprintf("head %d and tail %d: not 8-aligned positions at most %d apart", h, t, q.capacity)
		}
		if q.capacity-(t-h) >= need {
			return t, pad, 0, ""
		}
		// Full: wait outside the operation, so that a revoker or another sender is not held up.
		q.exit(s)
		if e := waitChange(q.head, q.headWord, q.sendSleepers, h, &s.spin, dl, round > 0); e != 0 {
			return 0, 0, e, ""
		}
	}
}

// publish writes the record headers of a message of n bytes at t (after pad bytes of padding),
// publishes it by moving the tail, lets go of the send side and wakes sleeping receivers.
func (q *Ring) publish(t, pad, n uint64) {
	if pad > 0 {
		putRecordHeader(q.buf, t&q.mask, uint32(pad-recordHeaderLen), recordPadding, t)
	}
	p := t + pad
	putRecordHeader(q.buf, p&q.mask, uint32(n), recordMessage, p)
	atomic.StoreUint64(q.tail, p+recordLen(n))
	q.exit(&q.send)
	if atomic.LoadUint32(q.recvSleepers) != 0 {
		wakeSleepers(q.recvSleepers, q.tailWord)
	}
}

// wakeSleepers is the waker's half of docs/PROTOCOL.md "Sleeping and waking", after a publish that
// found sleepers counted: it swaps the count to 0 and wakes every sleeper on word only when the swap
// took a non-zero count, so the sleepers are woken once, however many publishes follow before they
// run again.
func wakeSleepers(sleepers, word *uint32) {
	if atomic.SwapUint32(sleepers, 0) != 0 {
		futexWake(word, math.MaxInt32)
	}
}

// putRecordHeader writes a record header at buffer offset off for a record at position p.
func putRecordHeader(buf []byte, off uint64, length, kind uint32, p uint64) {
	ne := binary.NativeEndian
	ne.PutUint32(buf[off:], length)
	ne.PutUint32(buf[off+4:], kind|uint32(p>>3)<<8)
}

// Recv takes the next message, copying it into buf, and returns its length (0 for an empty
// message), waiting up to timeout for one. The errors: EMSGSIZE (buf is shorter than the message,
// which stays in the ring; Peek tells its length), EAGAIN or ETIMEDOUT (no message), EBUSY (a Peek
// is pending on this handle), EPROTO (the ring is damaged), EINVAL (closed handle, bad timeout).
func (q *Ring) Recv(buf []byte, timeout time.Duration) (_ int, err error) {
	defer q.endGuard("ring_recv", &err, debug.SetPanicOnFault(true))
	return q.recvCopy(buf, timeout)
}

// recvCopy is Recv's body, apart from the guard.
func (q *Ring) recvCopy(buf []byte, timeout time.Duration) (int, error) {
	const op = "ring_recv"
	if err := q.usable(op, timeout); err != nil {
		return 0, err
	}
	if q.peeked {
		return 0, q.fail(op, syscall.EBUSY, "a peek is pending on this handle: Release it first")
	}
	off, n, next, err := q.startRecv(op, timeout)
	if err != nil {
		return 0, err
	}
	if n > len(buf) {
		q.exit(&q.recv)
		return 0, q.fail(op, syscall.EMSGSIZE, fmt.Sprintf("the next message has %d bytes; the buffer holds %d", n, len(buf)))
	}
	copy(buf, q.buf[off:off+n])
	q.consume(next)
	return n, nil
}

// Peek is a zero-copy receive, step 1: it returns the next message in place, waiting up to timeout
// for one. The slice aliases the ring and is valid until Release or Close; the receive side stays
// held until the Release (other receivers wait). Peeking again before the Release returns the same
// message. The errors: EAGAIN or ETIMEDOUT, EPROTO, EINVAL (closed handle, bad timeout).
func (q *Ring) Peek(timeout time.Duration) (_ []byte, err error) {
	const op = "ring_peek"
	defer q.endGuard(op, &err, debug.SetPanicOnFault(true))
	if err := q.usable(op, timeout); err != nil {
		return nil, err
	}
	if !q.peeked {
		off, n, next, err := q.startRecv(op, timeout)
		if err != nil {
			return nil, err
		}
		q.peeked, q.peekOff, q.peekLen, q.peekNext = true, off, n, next
	}
	return q.buf[q.peekOff : q.peekOff+q.peekLen : q.peekOff+q.peekLen], nil
}

// Release is a zero-copy receive, step 2: it consumes the peeked message. The error is EINVAL when
// nothing is peeked.
func (q *Ring) Release() (err error) {
	const op = "ring_release"
	defer q.endGuard(op, &err, debug.SetPanicOnFault(true))
	if err := q.checkOpen(op); err != nil {
		return err
	}
	if !q.peeked {
		return q.fail(op, syscall.EINVAL, "nothing peeked")
	}
	q.peeked = false
	q.consume(q.peekNext)
	return nil
}

// startRecv is the part Recv and Peek share once the call is checked: next with the timeout, its
// failure as op's error.
func (q *Ring) startRecv(op string, timeout time.Duration) (off, n int, next uint64, err error) {
	dl := deadline{timeout: timeout}
	off, n, next, e, detail := q.next(&dl)
	if e != 0 {
		return 0, 0, 0, q.fail(op, e, detail)
	}
	return off, n, next, nil
}

// next holds the receive side and waits for a message. It returns the payload's buffer offset and
// length and the head past it, with the side held; on an error the side is not held.
func (q *Ring) next(dl *deadline) (off, n int, next uint64, e syscall.Errno, detail string) {
	s := &q.recv
	for round := 0; ; round++ {
		if e, detail := q.enter(s, dl); e != 0 {
			return 0, 0, 0, e, detail
		}
		h := atomic.LoadUint64(q.head)
		t := s.cache
		fresh := t == h || t-h > q.capacity
		if fresh {
			t = atomic.LoadUint64(q.tail)
			s.cache = t
		}
		rec := parseRecord(q.buf, h, t)
		if rec.empty && !fresh {
			// Empty up to the cached tail (a padding record alone): the wait below must start
			// from the real tail, or a tail that already moved would end it at once, forever.
			t = atomic.LoadUint64(q.tail)
			s.cache = t
			rec = parseRecord(q.buf, h, t)
		}
		switch {
		case rec.detail != "":
			q.exit(s)
			return 0, 0, 0, syscall.EPROTO, rec.detail
		case !rec.empty:
			return rec.off, rec.n, rec.next, 0, ""
		}
		q.exit(s)
		if e := waitChange(q.tail, q.tailWord, q.recvSleepers, t, &s.spin, dl, round > 0); e != 0 {
			return 0, 0, 0, e, ""
		}
	}
}

// consume publishes the receive side's progress, lets go of the side, and wakes sleeping senders
// once the ring is at most half full: they then send in bulk instead of waking per consumption. A
// waiting sender is still always woken: every consumption that leaves the ring at most half full
// wakes the senders counted, the one that empties it too, and an empty ring fits any message.
func (q *Ring) consume(next uint64) {
	atomic.StoreUint64(q.head, next)
	q.exit(&q.recv)
	if atomic.LoadUint32(q.sendSleepers) != 0 && atomic.LoadUint64(q.tail)-next <= q.capacity/2 {
		wakeSleepers(q.sendSleepers, q.headWord)
	}
}

// record is what parseRecord found at the head.
type record struct {
	off, n int    // the message's payload: buffer offset and length
	next   uint64 // the head past it
	empty  bool   // no message published (at most a padding record, left for later)
	detail string // why the bytes are not a ring's, for EPROTO; "" when they are
}

// parseRecord validates the published records [h, t) of a buffer (len(buf) is the capacity, a
// power of two) and finds the first message, stepping over padding. Everything it reads from the
// buffer is checked before it is used: for any h, t and buffer bytes it returns a message inside the
// buffer or a detail, and never indexes outside buf.
func parseRecord(buf []byte, h, t uint64) record {
	c := uint64(len(buf))
	if t-h > c || (h|t)&7 != 0 {
		return record{detail: fmt.Sprintf("head %d and tail %d: not 8-aligned positions at most %d apart", h, t, c)}
	}
	if h == t {
		return record{empty: true}
	}
	largest := uint64(ringMaxMessage(int(c)))
	start := h
	for {
		off := h & (c - 1)
		// Read once into private variables: a peer may be rewriting the bytes.
		length := binary.NativeEndian.Uint32(buf[off:])
		tag := binary.NativeEndian.Uint32(buf[off+4:])
		if tag>>8 != uint32(h>>3)&0xFFFFFF {
			return record{detail: fmt.Sprintf("the record at position %d has tag %#x: its position bits say %d", h, tag, (tag>>8)<<3)}
		}
		switch tag & 0xFF {
		case recordPadding:
			if h != start {
				return record{detail: fmt.Sprintf("padding after padding at position %d", h)}
			}
			if uint64(length) != c-off-recordHeaderLen {
				return record{detail: fmt.Sprintf("padding of %d bytes at buffer offset %d does not end at the buffer's end (%d)", length, off, c)}
			}
			h += c - off
			if h-start > t-start {
				return record{detail: fmt.Sprintf("padding at position %d runs past the tail %d", start, t)}
			}
			if h == t {
				return record{empty: true} // the message after it is not published yet
			}
		case recordMessage:
			if uint64(length) > largest {
				return record{detail: fmt.Sprintf("message of %d bytes at position %d; the ring carries at most %d", length, h, largest)}
			}
			rec := recordLen(uint64(length))
			if off+rec > c {
				return record{detail: fmt.Sprintf("message of %d bytes at buffer offset %d crosses the buffer's end", length, off)}
			}
			if rec > t-h {
				return record{detail: fmt.Sprintf("message of %d bytes at position %d runs past the tail %d", length, h, t)}
			}
			return record{off: int(off) + recordHeaderLen, n: int(length), next: h + rec}
		default:
			return record{detail: fmt.Sprintf("the record at position %d has kind %d (want 1 or 2)", h, tag&0xFF)}
		}
	}
}

// enter starts an operation on side s: it returns with the side held, either lock-free (this
// handle owns it exclusively: in_op = 1) or through the side's lock. See docs/PROTOCOL.md, "Sides".
func (q *Ring) enter(s *side, dl *deadline) (syscall.Errno, string) {
	for claims := 0; ; claims++ {
		switch s.mode {
		case modeExclusive:
			atomic.StoreUint32(s.inOp, 1)
			if atomic.LoadUint32(s.revoke) == 0 && atomic.LoadUint64(s.owner) == q.id && atomic.LoadUint32(s.ownerHandle) == q.handle {
				s.held = holdFast
				return 0, ""
			}
			// Revoked (or lost): give the side up for good, converting it to shared if it is still
			// this handle's, and go the shared way.
			atomic.StoreUint32(s.inOp, 0)
			if atomic.LoadUint32(s.ownerHandle) == q.handle {
				atomic.CompareAndSwapUint64(s.owner, q.id, sideShared)
			}
			s.mode = modeUnknown
		case modeShared:
			switch e := s.lock.acquire(dl); e {
			case 0:
			case syscall.EOWNERDEAD:
				// A dead holder published nothing (the position moves last): nothing to repair.
				s.lock.consistent()
			case syscall.EPROTO:
				return e, "the " + s.name + " side's lock has unknown state bits"
			case syscall.ENOTRECOVERABLE:
				// The ring never releases its locks unrepaired: someone scribbled on it. The ring
				// calls report damage as EPROTO (as mmipc.h lists their errnos).
				return syscall.EPROTO, "the " + s.name + " side's lock is marked not recoverable"
			default:
				return e, ""
			}
			s.held = holdLock
			return 0, ""
		default:
			if e := q.claim(s, dl); e != 0 {
				return e, ""
			}
			// The owner word changes a bounded number of times unless someone scribbles on it.
			if claims >= 64 {
				if e, ok := dl.expired(); ok {
					return e, ""
				}
			}
		}
	}
}

// claim looks at a side this handle does not own: it takes it when unclaimed or owned by a dead
// process, notes that it is shared, or revokes a live owner's exclusivity. The caller looks again.
func (q *Ring) claim(s *side, dl *deadline) syscall.Errno {
	o := atomic.LoadUint64(s.owner)
	switch {
	case o == sideShared:
		s.mode = modeShared
	case o == 0:
		if atomic.CompareAndSwapUint64(s.owner, 0, q.id) {
			atomic.StoreUint32(s.ownerHandle, q.handle)
			s.claimed()
		}
	case o == q.id && atomic.LoadUint32(s.ownerHandle) == q.handle:
		s.mode = modeExclusive
	case o != q.id && !identityAlive(o):
		if atomic.CompareAndSwapUint64(s.owner, o, q.id) {
			atomic.StoreUint32(s.ownerHandle, q.handle)
			atomic.StoreUint32(s.inOp, 0) // the dead owner may have died inside an operation
			s.claimed()
		}
	default:
		return q.revoke(s, o, dl)
	}
	return 0
}

// claimed makes s this handle's exclusively. The cpu word said where the previous owner ran; a C
// peer that read it would yield to a process that is not there instead of spinning, so it now says
// unknown.
func (s *side) claimed() {
	if atomic.LoadUint32(s.cpu) != cpuUnknown {
		atomic.StoreUint32(s.cpu, cpuUnknown)
	}
	s.mode = modeExclusive
}

// revoke ends a live handle's exclusive ownership of s (owner identity o): it asks with revoke = 1,
// makes the owner's in_op store visible with a global membarrier, and converts the side to shared
// once the owner is outside an operation. Without a membarrier it waits for the owner to convert the
// side itself (at its next operation), to close, or to die. It returns 0 when the caller should look
// at the side again.
func (q *Ring) revoke(s *side, o uint64, dl *deadline) syscall.Errno {
	// revoke is never cleared: the owner's check of it after its in_op store is what keeps the
	// two apart, for as long as this owner lasts. A later owner that finds it set goes shared.
	atomic.StoreUint32(s.revoke, 1)
	fenced := membarrierGlobal()
	pause := time.Microsecond
	for {
		if atomic.LoadUint64(s.owner) != o {
			return 0
		}
		if fenced && atomic.LoadUint32(s.inOp) == 0 {
			atomic.CompareAndSwapUint64(s.owner, o, sideShared) // a failure: the owner changed
			return 0
		}
		if pause >= time.Millisecond && o != q.id && !identityAlive(o) {
			atomic.CompareAndSwapUint64(s.owner, o, sideShared)
			return 0
		}
		if e, ok := dl.expired(); ok {
			return e
		}
		time.Sleep(dl.bounded(pause))
		pause = min(2*pause, time.Millisecond)
	}
}

// exit ends the operation on s: in_op = 0, or the lock released.
func (q *Ring) exit(s *side) {
	switch s.held {
	case holdFast:
		atomic.StoreUint32(s.inOp, 0)
	case holdLock:
		s.lock.release()
	}
	s.held = holdNone
}

// Close gives up this handle's exclusive claims, abandons a pending reservation (nothing is sent)
// or peek (the message stays for the next receive), and detaches the ring. The ring's name stays
// (Unlink removes it). A second Close returns nil.
func (q *Ring) Close() error {
	if q.closed {
		return nil
	}
	q.closed = true
	q.giveBack(true) // even after a fault: the truncation may have spared the control block
	return q.region.Close()
}

// Adaptive spinning before a sleep (per handle and direction): the budget starts at 4 µs; a wait
// that ends during the spin, or that slept but ended within 50 µs, raises it to twice that wait (at
// most 50 µs); a longer wait halves it, and below 200 ns it is 0, when one wait in 64 probes with
// 1 µs. Go does not know which CPU it runs on (a side it claims says unknown: see side.claimed),
// so only this history decides, whatever GOMAXPROCS says: the peer is another process, which may
// run on another CPU even when this one is pinned to a single CPU (GOMAXPROCS 1). On a shared CPU
// the spins fail and the history turns them off.
const (
	spinStart      = 4 * time.Microsecond
	spinMax        = 50 * time.Microsecond
	spinFloor      = 200 * time.Nanosecond
	spinProbe      = time.Microsecond
	spinProbeEvery = 64
	// The clock is read once per spinClockEvery re-reads of the word.
	spinClockEvery = 64
	// Every sleep is bounded: the first after counting in to firstSleepBound (a C sender does not
	// fence between publishing and reading the sleeper count, so a wake-up can be lost to that
	// race; it costs at most this), the following ones doubling up to maxSleepBound (a waker that
	// read the count late may swap it to 0 for a change this sleeper had already seen).
	firstSleepBound = time.Millisecond
	maxSleepBound   = 100 * time.Millisecond
)

type spinner struct {
	budget time.Duration
	waits  uint32 // waits while the budget was 0, for the probes
}

// waitChange waits until *pos differs from seen: it spins (within the budget), then sleeps on word
// (pos's low half) counted in sleepers. It returns 0 when the position changed. A try-once call
// never waits; a later wait of the same call (again) checks the deadline first, so that a position
// that keeps moving without ever bringing what the caller waits for (a peer scribbling) cannot
// keep it past its timeout.
func waitChange(pos *uint64, word, sleepers *uint32, seen uint64, sp *spinner, dl *deadline, again bool) syscall.Errno {
	if dl.timeout == 0 {
		return syscall.EAGAIN
	}
	if again {
		if e, ok := dl.expired(); ok {
			return e
		}
	}
	if atomic.LoadUint64(pos) != seen {
		return 0
	}
	start := time.Now()
	dl.startAt(start) // a positive timeout counts from here, spin included
	budget := sp.budget
	if budget == 0 {
		if sp.waits++; sp.waits%spinProbeEvery == 0 {
			budget = spinProbe
		}
	}
	if budget > 0 {
		for i := 1; ; i++ {
			if atomic.LoadUint64(pos) != seen {
				sp.budget = min(spinMax, max(sp.budget, 2*time.Since(start)))
				return 0
			}
			if i%spinClockEvery == 0 && time.Since(start) >= budget {
				break
			}
		}
	}
	e := sleepChange(pos, word, sleepers, seen, dl)
	// A wait that slept but ended within the longest spin would have ended during a spin that
	// long: typically the peer was asleep and took a wake-up to answer, and it will spin next
	// time (both sides halving here instead is a trap: each side's sleep makes the other's spin
	// fail, and the budgets never grow back).
	if waited := time.Since(start); e == 0 && waited <= spinMax {
		sp.budget = min(spinMax, max(sp.budget, 2*waited))
	} else if sp.budget /= 2; sp.budget < spinFloor {
		sp.budget = 0
	}
	return e
}

// sleepChange is waitChange's sleep. It counts itself in sleepers and never counts itself out: a
// waker swaps the count to 0 (a count left by a wait that ends otherwise costs the next publish one
// needless wake-up). Every sleep is bounded; one that ends with the position unchanged and the
// count taken by a waker (of a change already seen) counts in again.
func sleepChange(pos *uint64, word, sleepers *uint32, seen uint64, dl *deadline) syscall.Errno {
	if e, ok := dl.expired(); ok {
		return e // before counting in: a wait that cannot sleep leaves no count behind
	}
	atomic.AddUint32(sleepers, 1)
	bound := firstSleepBound
	for {
		if atomic.LoadUint64(pos) != seen {
			return 0
		}
		if e, ok := dl.expired(); ok {
			return e
		}
		// EINTR, EAGAIN (the word moved), a wake-up or the bound: all mean look again.
		futexWait(word, uint32(seen), dl.bounded(bound))
		if atomic.LoadUint64(pos) != seen {
			return 0
		}
		if atomic.LoadUint32(sleepers) == 0 {
			atomic.AddUint32(sleepers, 1)
			bound = firstSleepBound
		} else {
			bound = min(2*bound, maxSleepBound)
		}
	}
}

// The membarrier commands of linux/membarrier.h.
const (
	membarrierCmdQuery           = 0
	membarrierCmdGlobalExpedited = 1 << 1
)

// membarrierSupported reports once whether the kernel offers MEMBARRIER_CMD_GLOBAL_EXPEDITED.
var membarrierSupported = sync.OnceValue(func() bool {
	r, _, e := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdQuery, 0, 0)
	return e == 0 && r&membarrierCmdGlobalExpedited != 0
})

// membarrierGlobal runs a memory barrier on every CPU running a process that registered for
// expedited global barriers (C peers whose fast path stores in_op without a fence), so that their
// in_op stores are visible to the revoker. It reports whether it could. (A variable, so that a test
// can take the path of a kernel without it.)
var membarrierGlobal = func() bool {
	if !membarrierSupported() {
		return false
	}
	_, _, e := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdGlobalExpedited, 0, 0)
	return e == 0
}
