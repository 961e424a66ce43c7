// Package ringmsg is the Go form of c_examples/ringmsg.h: the message format ring_sender and
// ring_receiver (C, Go or Python) agree on. Each message says who sent it and its place in that
// sender's sequence, and carries a checksum of its payload, so that a receiver can prove nothing
// was lost, repeated, reordered or torn:
//
//	offset 0   u64 seq       0, 1, 2, ... per sender (native byte order)
//	       8   u32 sender    the sender's id
//	      12   u32 checksum  FNV-1a (32-bit) of the payload
//	      16   payload       seq % 97 bytes, byte i = (seq + 31*i + sender) & 0xff
package ringmsg

import (
	"encoding/binary"
	"hash/fnv"
	"time"
)

const (
	DefaultName = "mmipc-ring-example" // RINGMSG_DEFAULT_NAME
	Header      = 16                   // RINGMSG_HEADER
	Max         = Header + 96          // RINGMSG_MAX
	Capacity    = 64 * 1024            // RINGMSG_CAPACITY
	Timeout     = 10 * time.Second     // RINGMSG_TIMEOUT_NS
)

// Build writes message seq of sender into buf (at least Max bytes) and returns its length.
func Build(buf []byte, seq uint64, sender uint32) int {
	n := int(seq % 97)
	payload := buf[Header : Header+n]
	for i := range payload {
		payload[i] = byte(seq + 31*uint64(i) + uint64(sender))
	}
	h := fnv.New32a()
	h.Write(payload)
	ne := binary.NativeEndian
	ne.PutUint64(buf[0:], seq)
	ne.PutUint32(buf[8:], sender)
	ne.PutUint32(buf[12:], h.Sum32())
	return Header + n
}

// Parse returns the sequence number and sender of a message, and false when it is too short to
// carry them.
func Parse(msg []byte) (seq uint64, sender uint32, ok bool) {
	if len(msg) < Header {
		return 0, 0, false
	}
	ne := binary.NativeEndian
	return ne.Uint64(msg[0:]), ne.Uint32(msg[8:]), true
}
