package mmipc

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io/fs"
	"syscall"
)

// The ring's layout in its region's data, as docs/PROTOCOL.md ("Ring") specifies it. Change it only
// together with that document; the C library (ring.c) implements the same offsets.
const (
	// RingMagic opens a ring's control block.
	RingMagic = "MMIPCRNG"
	// RingVersion is the control block layout this package writes and accepts.
	RingVersion = 1
	// FlagRing is the region header flag (bit 0 of flags) that marks a ring region.
	FlagRing = 1

	// RingControlSize is the control block's size: the buffer starts at this offset of the data.
	RingControlSize = 512
	// MinRingCapacity and MaxRingCapacity bound a ring's buffer; capacities are powers of two.
	MinRingCapacity = 1 << 10
	MaxRingCapacity = 1 << 30

	ringOffMagic       = 0
	ringOffVersion     = 8
	ringOffControlSize = 12
	ringOffCapacity    = 16
	ringOffCRC         = 28
	ringCRCCovers      = 28

	ringOffTail         = 64  // u64, senders publish
	ringOffRecvSleepers = 72  // u32
	ringOffHead         = 128 // u64, receivers publish
	ringOffSendSleepers = 136 // u32
	ringOffSendSide     = 192 // 64-byte side: owner u64, owner_handle u32, in_op u32, revoke u32, cpu u32
	ringOffRecvSide     = 256
	ringOffSendLock     = 320 // a 64-byte Lock
	ringOffRecvLock     = 384

	sideOffOwner       = 0
	sideOffOwnerHandle = 8
	sideOffInOp        = 12
	sideOffRevoke      = 16
	sideOffCPU         = 20

	// sideShared in a side's owner word: the side is shared; every operation takes its lock.
	sideShared = ^uint64(0)
	// cpuUnknown in a side's cpu word: the side's last operation did not record its CPU.
	cpuUnknown = ^uint32(0)

	recordHeaderLen = 8
	recordMessage   = 1
	recordPadding   = 2
)

// ringCapacity rounds a requested capacity up to the ring's power of two, or explains why it
// cannot (an EINVAL reason).
func ringCapacity(requested int) (int, error) {
	if requested <= 0 || requested > MaxRingCapacity {
		return 0, reason{syscall.EINVAL, fmt.Sprintf("capacity %d: must be 1 to %d bytes", requested, MaxRingCapacity)}
	}
	c := MinRingCapacity
	for c < requested {
		c <<= 1
	}
	return c, nil
}

// ringMaxMessage is the largest payload a ring of this capacity accepts: half the buffer less a
// record header, so that a message always fits once the ring has drained.
func ringMaxMessage(capacity int) int { return capacity/2 - recordHeaderLen }

// encodeRingControl writes a new ring's control block into data (zeros but for the first line).
func encodeRingControl(data []byte, capacity int) {
	clear(data[:RingControlSize])
	ne := binary.NativeEndian
	copy(data[ringOffMagic:], RingMagic)
	ne.PutUint32(data[ringOffVersion:], RingVersion)
	ne.PutUint32(data[ringOffControlSize:], RingControlSize)
	ne.PutUint64(data[ringOffCapacity:], uint64(capacity))
	ne.PutUint32(data[ringOffCRC:], crc32.ChecksumIEEE(data[:ringCRCCovers]))
	for _, side := range []int{ringOffSendSide, ringOffRecvSide} {
		ne.PutUint32(data[side+sideOffCPU:], cpuUnknown)
	}
}

// checkRingControl validates a ring region: the header flag and the control block against the
// region's data size. It returns the capacity, or why the region is not a ring (an EPROTO reason).
func checkRingControl(h Header, data []byte) (int, error) {
	if h.Flags&FlagRing == 0 {
		return 0, notRegion(fmt.Sprintf("the region is not a ring (header flags %#x)", h.Flags))
	}
	if len(data) < RingControlSize {
		return 0, notRegion(fmt.Sprintf("data of %d bytes is too short for a ring control block", len(data)))
	}
	if string(data[ringOffMagic:ringOffMagic+len(RingMagic)]) != RingMagic {
		return 0, notRegion(fmt.Sprintf("bad ring magic %q", data[ringOffMagic:ringOffMagic+len(RingMagic)]))
	}
	ne := binary.NativeEndian
	if v := ne.Uint32(data[ringOffVersion:]); v != RingVersion {
		return 0, notRegion(fmt.Sprintf("unknown ring version %d (this library speaks %d)", v, RingVersion))
	}
	if got, want := ne.Uint32(data[ringOffCRC:]), crc32.ChecksumIEEE(data[:ringCRCCovers]); got != want {
		return 0, notRegion(fmt.Sprintf("ring checksum %#08x, computed %#08x: control block damaged", got, want))
	}
	if cs := ne.Uint32(data[ringOffControlSize:]); cs != RingControlSize {
		return 0, notRegion(fmt.Sprintf("ring control size %d (want %d)", cs, RingControlSize))
	}
	c := ne.Uint64(data[ringOffCapacity:])
	if c < MinRingCapacity || c > MaxRingCapacity || c&(c-1) != 0 {
		return 0, notRegion(fmt.Sprintf("ring capacity %d is not a power of two in [%d, %d]", c, MinRingCapacity, MaxRingCapacity))
	}
	if uint64(len(data)) != RingControlSize+c {
		return 0, notRegion(fmt.Sprintf("ring of capacity %d needs %d data bytes; the region has %d", c, RingControlSize+c, len(data)))
	}
	return int(c), nil
}

// createRingRegion makes a named region holding a new, empty ring of at least capacity bytes.
func (d Dir) createRingRegion(name string, capacity int, perm fs.FileMode) (*Region, int, error) {
	c, err := ringCapacity(capacity)
	if err != nil {
		path, _ := d.resolve(name)
		return nil, 0, &Error{Op: "ring_create", Name: name, Path: path, Errno: errnoOf(err), Detail: detailOf(err)}
	}
	r, err := d.create("ring_create", name, RingControlSize+c, perm, FlagRing, func(data []byte) { encodeRingControl(data, c) })
	if err != nil {
		return nil, 0, err
	}
	return r, c, nil
}

// openRingRegion attaches a named region and checks that it holds a ring.
func (d Dir) openRingRegion(name string) (*Region, int, error) {
	r, h, err := d.openRegion("ring_open", name, false)
	if err != nil {
		return nil, 0, err
	}
	c, err := checkRingRegion(r, h)
	if err != nil {
		r.Close()
		path, _ := d.resolve(name)
		return nil, 0, &Error{Op: "ring_open", Name: name, Path: path, Errno: errnoOf(err), Detail: detailOf(err)}
	}
	return r, c, nil
}

// checkRingRegion is checkRingControl on an attached region, whose file another process may have
// truncated since its header was validated: a fault reading the control block is EPROTO too.
func checkRingRegion(r *Region, h Header) (int, error) {
	var c int
	var err error
	if gerr := r.guard("ring_open", byLibrary, func(data []byte) { c, err = checkRingControl(h, data) }); gerr != nil {
		e := gerr.(*Error) // guard's errors are always *Error
		return 0, reason{e.Errno, e.Detail}
	}
	return c, err
}

// CreateRing makes a new message ring named name (in $MMIPC_DIR, default /dev/shm, or at a path)
// with a buffer of at least capacity bytes, rounded up to a power of two (1 KiB to 1 GiB). perm is
// applied exactly; 0 means 0600. Creation is atomic: openers never see a half-made ring.
func CreateRing(name string, capacity int, perm fs.FileMode) (*Ring, error) {
	return EnvDir().CreateRing(name, capacity, perm)
}

// OpenRing attaches an existing ring. A region that is not a ring, or whose control block does not
// validate, is EPROTO.
func OpenRing(name string) (*Ring, error) { return EnvDir().OpenRing(name) }

// CreateRing is the package-level CreateRing with names resolved in d.
func (d Dir) CreateRing(name string, capacity int, perm fs.FileMode) (*Ring, error) {
	r, c, err := d.createRingRegion(name, capacity, perm)
	if err != nil {
		return nil, err
	}
	return newRing(r, c), nil
}

// OpenRing is the package-level OpenRing with names resolved in d.
func (d Dir) OpenRing(name string) (*Ring, error) {
	r, c, err := d.openRingRegion(name)
	if err != nil {
		return nil, err
	}
	return newRing(r, c), nil
}
