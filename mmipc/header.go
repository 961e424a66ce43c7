package mmipc

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// The region header, as docs/PROTOCOL.md specifies it. Change the layout only together with that
// document and ProtocolVersion.
const (
	// Magic opens every named region's file.
	Magic = "MMIPCREG"
	// ProtocolVersion is the header layout this package writes and the only one it accepts.
	ProtocolVersion = 1

	// HeaderFixedLen is the length of the fixed fields at the start of the header page; the rest of
	// the page is reserved for the sync layer and is zero at creation.
	HeaderFixedLen = 64

	minHeaderSize = 4096
	maxHeaderSize = 1 << 20

	offMagic      = 0
	offVersion    = 8
	offHeaderSize = 12
	offDataSize   = 16
	offCreatorPID = 24
	offFlags      = 28
	offCreated    = 32
	offCRC        = 40
	crcCovers     = 40 // the CRC covers bytes [0, 40): every field before it
)

// Header is the decoded fixed part of a named region's first page.
type Header struct {
	Version    uint32 // ProtocolVersion
	HeaderSize uint32 // bytes before the data: the creator's page size
	DataSize   uint64 // usable bytes, exactly as asked at creation
	CreatorPID uint32 // process that created the region
	Flags      uint32 // zero in version 1; readers ignore it
	Created    int64  // creation time, Unix nanoseconds
}

// FileSize is the size the region's file must have: the header, then the data rounded up to a
// multiple of HeaderSize. ok is false when that does not fit in an int64.
func (h Header) FileSize() (size int64, ok bool) {
	return regionFileSize(uint64(h.HeaderSize), h.DataSize)
}

func regionFileSize(headerSize, dataSize uint64) (int64, bool) {
	if headerSize == 0 {
		return 0, false
	}
	pages := dataSize / headerSize // data pages, in header-size units
	if dataSize%headerSize != 0 {
		pages++
	}
	if pages >= math.MaxInt64/headerSize { // (pages + 1) * headerSize would pass MaxInt64
		return 0, false
	}
	return int64((pages + 1) * headerSize), true
}

// Encode writes the fixed fields and their CRC into b[:HeaderFixedLen].
func (h Header) Encode(b []byte) {
	_ = b[HeaderFixedLen-1]
	clear(b[:HeaderFixedLen])
	ne := binary.NativeEndian
	copy(b[offMagic:], Magic)
	ne.PutUint32(b[offVersion:], h.Version)
	ne.PutUint32(b[offHeaderSize:], h.HeaderSize)
	ne.PutUint64(b[offDataSize:], h.DataSize)
	ne.PutUint32(b[offCreatorPID:], h.CreatorPID)
	ne.PutUint32(b[offFlags:], h.Flags)
	ne.PutUint64(b[offCreated:], uint64(h.Created))
	ne.PutUint32(b[offCRC:], crc32.ChecksumIEEE(b[:crcCovers]))
}

// DecodeHeader parses and validates the first bytes of a region file whose real size is fileSize.
// It trusts nothing in b: any disagreement is reported as a detail for an EPROTO error, never a
// panic. b may be shorter than HeaderFixedLen (a short file).
func DecodeHeader(b []byte, fileSize int64) (Header, error) {
	if len(b) < HeaderFixedLen || fileSize < HeaderFixedLen {
		return Header{}, fmt.Errorf("file of %d bytes is too short for a region header", fileSize)
	}
	if string(b[offMagic:offMagic+len(Magic)]) != Magic {
		return Header{}, fmt.Errorf("bad magic %q (want %q): not an mmipc region", b[offMagic:offMagic+len(Magic)], Magic)
	}
	ne := binary.NativeEndian
	h := Header{
		Version:    ne.Uint32(b[offVersion:]),
		HeaderSize: ne.Uint32(b[offHeaderSize:]),
		DataSize:   ne.Uint64(b[offDataSize:]),
		CreatorPID: ne.Uint32(b[offCreatorPID:]),
		Flags:      ne.Uint32(b[offFlags:]),
		Created:    int64(ne.Uint64(b[offCreated:])),
	}
	if h.Version != ProtocolVersion {
		return Header{}, fmt.Errorf("unknown protocol version %d (this library speaks %d)", h.Version, ProtocolVersion)
	}
	if got, want := ne.Uint32(b[offCRC:]), crc32.ChecksumIEEE(b[:crcCovers]); got != want {
		return Header{}, fmt.Errorf("header checksum %#08x, computed %#08x: header damaged", got, want)
	}
	hs := h.HeaderSize
	if hs < minHeaderSize || hs > maxHeaderSize || hs&(hs-1) != 0 {
		return Header{}, fmt.Errorf("header size %d is not a power of two in [%d, %d]", hs, minHeaderSize, maxHeaderSize)
	}
	if h.DataSize == 0 {
		return Header{}, fmt.Errorf("data size 0")
	}
	want, ok := h.FileSize()
	if !ok {
		return Header{}, fmt.Errorf("data size %d overflows", h.DataSize)
	}
	if want != fileSize {
		return Header{}, fmt.Errorf("header says %d data bytes after a %d-byte header, which needs a %d-byte file; the file has %d", h.DataSize, hs, want, fileSize)
	}
	return h, nil
}
