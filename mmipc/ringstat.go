package mmipc

import (
	"runtime/debug"
	"sync/atomic"
)

// RingInfo is a snapshot of a ring's state, for tools and monitoring. Peers keep working while it
// is taken, so its figures may be a moment old.
type RingInfo struct {
	Capacity   int    // buffer bytes
	MaxMessage int    // the largest message
	Head, Tail uint64 // the byte positions receivers and senders have reached (they only grow)
	Used       int    // bytes published and not yet received: Tail - Head
	Messages   int    // messages waiting; -1 when the records could not be walked (damaged, moving too fast, or more than 4 Mi of them)
	Send, Recv SideInfo
}

// SideInfo describes one side of a ring: its senders or its receivers.
type SideInfo struct {
	Owner      int  // pid of the process that owns the side exclusively, 0 if none
	OwnerAlive bool // that process still runs
	Shared     bool // the side has had concurrent users, so every operation takes its lock (for good)
	LockOwner  int  // pid holding the side's lock now, 0 if free
	// Sleepers counts the blocked calls registered on this side (senders waiting for room,
	// receivers for data) that no waker has taken yet: an upper bound, since a call that timed out
	// stays counted until the next wake-up (docs/PROTOCOL.md, "Ring").
	Sleepers int
}

// RingStat describes the ring named name, attaching it read-only for the moment it takes. A region
// that is not a ring is EPROTO.
func RingStat(name string) (RingInfo, error) { return EnvDir().RingStat(name) }

// RingStat is the package-level RingStat with names resolved in d.
func (d Dir) RingStat(name string) (RingInfo, error) {
	r, h, err := d.openRegion("ring_stat", name, true)
	if err != nil {
		return RingInfo{}, err
	}
	c, err := checkRingRegion(r, h)
	if err != nil {
		r.Close()
		path, _ := d.resolve(name)
		return RingInfo{}, &Error{Op: "ring_stat", Name: name, Path: path, Errno: errnoOf(err), Detail: detailOf(err)}
	}
	q := newRing(r, c)
	defer q.Close()
	return q.stat("ring_stat")
}

// Stat describes the ring as RingStat does. It fails only when the ring's file was truncated under
// it (EPROTO) or the handle is closed.
func (q *Ring) Stat() (RingInfo, error) { return q.stat("ring_stat") }

func (q *Ring) stat(op string) (info RingInfo, err error) {
	if err := q.checkOpen(op); err != nil {
		return RingInfo{}, err
	}
	defer q.endGuard(op, &err, debug.SetPanicOnFault(true))
	info = RingInfo{Capacity: int(q.capacity), MaxMessage: q.maxMsg, Messages: -1}
	// Head first: positions only grow, so a head read before the tail is never past it, unless the
	// words are damaged. A walk that races with receivers is retried.
	for try := 0; try < 3 && info.Messages < 0; try++ {
		h := atomic.LoadUint64(q.head)
		t := atomic.LoadUint64(q.tail)
		info.Head, info.Tail = h, t
		info.Messages = q.countMessages(h, t)
		if atomic.LoadUint64(q.head) != h {
			info.Messages = -1
		}
	}
	if d := info.Tail - info.Head; d <= q.capacity {
		info.Used = int(d)
	} else {
		info.Used = -1
	}
	info.Send = sideInfo(&q.send, q.sendSleepers)
	info.Recv = sideInfo(&q.recv, q.recvSleepers)
	return info, nil
}

// maxCount bounds countMessages' walk (a few tens of milliseconds): a 1 GiB ring of empty messages
// holds 128 Mi records, too many to walk for a status line.
const maxCount = 1 << 22

// countMessages walks the records in [h, t), validating each as a receiver would; -1 when they do
// not validate, or when there are more than maxCount. Each step advances by at least one record
// header, never past t.
func (q *Ring) countMessages(h, t uint64) int {
	n := 0
	for h != t {
		if n == maxCount {
			return -1
		}
		rec := parseRecord(q.buf, h, t)
		switch {
		case rec.detail != "":
			return -1
		case rec.empty:
			return n
		}
		n++
		h = rec.next
	}
	return n
}

func sideInfo(s *side, sleepers *uint32) SideInfo {
	var si SideInfo
	switch o := atomic.LoadUint64(s.owner); o {
	case 0:
	case sideShared:
		si.Shared = true
	default:
		si.Owner, si.OwnerAlive = int(uint32(o)), identityAlive(o)
	}
	if o := atomic.LoadUint64(s.lock.owner); o != 0 {
		si.LockOwner = int(uint32(o))
	}
	si.Sleepers = int(atomic.LoadUint32(sleepers))
	return si
}
