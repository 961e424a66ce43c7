// Package hmsg is the message format of the hardening tests (tests/hardening_*_test.go) and their
// peers in C (tests/c/hmsg.h), Go (tests/crashwriter, tests/loadpeer) and Python
// (tests/python_hmsg.py). A message proves its own integrity, so a receiver catches a torn, shifted,
// truncated or stale message without knowing how its sender chose lengths:
//
//	offset  size  field
//	     0     8  seq     0, 1, 2, ... per sender (native byte order, like every field)
//	     8     4  sender  the sender's id
//	    12     4  len     the whole message's length in bytes (HeaderLen or more)
//	    16     4  flags   0: data; FlagEnd: the sender's last message, seq = data messages sent
//	    20     4  crc     CRC-32 (IEEE, zlib's crc32) of bytes [0, 20) followed by [24, len)
//	    24        payload len-24 bytes: byte i = Pattern[(seq*7 + sender*13) % 256 + i]
//
// Pattern[k] = byte((uint32(k) * 2654435761) >> 13): no short period, so a payload moved by a few
// bytes, or one of another message, does not match. An end marker carries no payload.
package hmsg

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

const (
	HeaderLen = 24
	MaxLen    = 64 << 10 // the longest message the peers build
	FlagEnd   = 1
)

// Pattern is the byte sequence payloads are cut from.
var Pattern = func() []byte {
	p := make([]byte, 256+MaxLen)
	for k := range p {
		p[k] = byte((uint32(k) * 2654435761) >> 13)
	}
	return p
}()

func payloadStart(seq uint64, sender uint32) uint64 { return (seq*7 + uint64(sender)*13) & 255 }

// Fill writes message seq of sender into msg, whose length is the message's (at least HeaderLen,
// at most MaxLen), the checksum last.
func Fill(msg []byte, seq uint64, sender, flags uint32) {
	ne := binary.NativeEndian
	ne.PutUint64(msg[0:], seq)
	ne.PutUint32(msg[8:], sender)
	ne.PutUint32(msg[12:], uint32(len(msg)))
	ne.PutUint32(msg[16:], flags)
	o := payloadStart(seq, sender)
	copy(msg[HeaderLen:], Pattern[o:o+uint64(len(msg)-HeaderLen)])
	ne.PutUint32(msg[20:], Checksum(msg))
}

// Checksum is the crc field's value for msg.
func Checksum(msg []byte) uint32 {
	return crc32.Update(crc32.ChecksumIEEE(msg[:20]), crc32.IEEETable, msg[HeaderLen:])
}

// Verify checks a received message completely and returns its header fields.
func Verify(msg []byte) (seq uint64, sender, flags uint32, err error) {
	if len(msg) < HeaderLen || len(msg) > MaxLen {
		return 0, 0, 0, fmt.Errorf("a message of %d bytes (want %d to %d)", len(msg), HeaderLen, MaxLen)
	}
	ne := binary.NativeEndian
	seq, sender, flags = ne.Uint64(msg[0:]), ne.Uint32(msg[8:]), ne.Uint32(msg[16:])
	if n := ne.Uint32(msg[12:]); n != uint32(len(msg)) {
		return seq, sender, flags, fmt.Errorf("seq %d from %d: len field %d, received %d bytes (torn or truncated)", seq, sender, n, len(msg))
	}
	if sum, want := ne.Uint32(msg[20:]), Checksum(msg); sum != want {
		return seq, sender, flags, fmt.Errorf("seq %d from %d (%d bytes): crc %#x, computed %#x (torn)", seq, sender, len(msg), sum, want)
	}
	if flags&^FlagEnd != 0 || (flags == FlagEnd && len(msg) != HeaderLen) {
		return seq, sender, flags, fmt.Errorf("seq %d from %d: flags %#x with %d bytes", seq, sender, flags, len(msg))
	}
	o := payloadStart(seq, sender)
	want := Pattern[o : o+uint64(len(msg)-HeaderLen)]
	if got := msg[HeaderLen:]; !bytes.Equal(got, want) {
		i := 0
		for got[i] == want[i] {
			i++
		}
		return seq, sender, flags, fmt.Errorf("seq %d from %d: payload byte %d is %#x, want %#x", seq, sender, i, got[i], want[i])
	}
	return seq, sender, flags, nil
}
