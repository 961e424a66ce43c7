package mmipc

import (
	"bytes"
	"encoding/hex"
	"hash/crc32"
	"math"
	"math/big"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// nativeLittle reports the host byte order, found without encoding/binary so that the golden test
// does not share its oracle with the code under test.
func nativeLittle() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// putN writes the low n bytes of v at b[off:] in the host byte order, by hand.
func putN(b []byte, off int, v uint64, n int) {
	for i := 0; i < n; i++ {
		byt := byte(v >> (8 * i))
		if nativeLittle() {
			b[off+i] = byt
		} else {
			b[off+n-1-i] = byt
		}
	}
}

// getN reads n bytes at b[off:] in the host byte order, by hand.
func getN(b []byte, off, n int) uint64 {
	var v uint64
	for i := 0; i < n; i++ {
		var byt byte
		if nativeLittle() {
			byt = b[off+i]
		} else {
			byt = b[off+n-1-i]
		}
		v |= uint64(byt) << (8 * i)
	}
	return v
}

// handHeader builds the 64 fixed bytes of a header without the package's encoder.
func handHeader(version, headerSize uint32, dataSize uint64, pid, flags uint32, created int64) []byte {
	b := make([]byte, 64)
	copy(b[0:], "MMIPCREG")
	putN(b, 8, uint64(version), 4)
	putN(b, 12, uint64(headerSize), 4)
	putN(b, 16, dataSize, 8)
	putN(b, 24, uint64(pid), 4)
	putN(b, 28, uint64(flags), 4)
	putN(b, 32, uint64(created), 8)
	putN(b, 40, uint64(crc32.ChecksumIEEE(b[:40])), 4)
	return b
}

// fixCRC recomputes the checksum after a test changed a covered field on purpose.
func fixCRC(b []byte) { putN(b, 40, uint64(crc32.ChecksumIEEE(b[:40])), 4) }

// fileSizeFor is the test's own oracle for the region file size (valid, small inputs only).
func fileSizeFor(headerSize, dataSize uint64) int64 {
	pages := (dataSize + headerSize - 1) / headerSize
	return int64(headerSize + pages*headerSize)
}

func validHeader() Header {
	return Header{Version: 1, HeaderSize: 4096, DataSize: 12345, CreatorPID: 4242, Flags: 0, Created: 1700000000123456789}
}

func TestHeaderRoundTrip(t *testing.T) {
	headers := []Header{
		validHeader(),
		{Version: 1, HeaderSize: 4096, DataSize: 1, CreatorPID: 1, Created: 0},
		{Version: 1, HeaderSize: 4096, DataSize: 4096, CreatorPID: math.MaxUint32, Created: -1},
		{Version: 1, HeaderSize: 4096, DataSize: 4097, CreatorPID: 7, Flags: math.MaxUint32, Created: math.MinInt64},
		{Version: 1, HeaderSize: 16384, DataSize: 1 << 30, CreatorPID: 99, Created: math.MaxInt64},
		{Version: 1, HeaderSize: 65536, DataSize: 3, Created: 5},
		{Version: 1, HeaderSize: 1 << 20, DataSize: 1<<40 + 1, Created: 6},
	}
	for _, h := range headers {
		fs, ok := h.FileSize()
		if !ok {
			t.Fatalf("%+v: FileSize not ok", h)
		}
		if want := fileSizeFor(uint64(h.HeaderSize), h.DataSize); fs != want {
			t.Errorf("%+v: FileSize = %d, want %d", h, fs, want)
		}
		// Encode into a larger buffer full of garbage: it must write exactly [0, 64).
		buf := bytes.Repeat([]byte{0xA5}, 100)
		h.Encode(buf)
		if !bytes.Equal(buf[HeaderFixedLen:], bytes.Repeat([]byte{0xA5}, 100-HeaderFixedLen)) {
			t.Errorf("%+v: Encode wrote past HeaderFixedLen", h)
		}
		if want := handHeader(h.Version, h.HeaderSize, h.DataSize, h.CreatorPID, h.Flags, h.Created); !bytes.Equal(buf[:HeaderFixedLen], want) {
			t.Errorf("%+v: Encode =\n%x\nwant\n%x", h, buf[:HeaderFixedLen], want)
		}
		got, err := DecodeHeader(buf, fs)
		if err != nil {
			t.Fatalf("%+v: DecodeHeader: %v", h, err)
		}
		if got != h {
			t.Errorf("round trip: got %+v, want %+v", got, h)
		}
		// Exactly HeaderFixedLen bytes are enough.
		if got, err := DecodeHeader(buf[:HeaderFixedLen], fs); err != nil || got != h {
			t.Errorf("DecodeHeader(64 bytes) = %+v, %v", got, err)
		}
	}
}

func TestHeaderGoldenLayout(t *testing.T) {
	h := Header{Version: 1, HeaderSize: 4096, DataSize: 0x10203, CreatorPID: 0x11223344, Flags: 0x55667788, Created: 0x0A0B0C0D0E0F1011}
	b := make([]byte, HeaderFixedLen)
	h.Encode(b)

	if got := string(b[0:8]); got != "MMIPCREG" {
		t.Errorf("magic at 0 = %q", got)
	}
	if Magic != "MMIPCREG" || ProtocolVersion != 1 || HeaderFixedLen != 64 {
		t.Errorf("constants: Magic %q ProtocolVersion %d HeaderFixedLen %d", Magic, ProtocolVersion, HeaderFixedLen)
	}
	fields := []struct {
		name   string
		off, n int
		want   uint64
	}{
		{"version", 8, 4, 1},
		{"header size", 12, 4, 4096},
		{"data size", 16, 8, 0x10203},
		{"pid", 24, 4, 0x11223344},
		{"flags", 28, 4, 0x55667788},
		{"created", 32, 8, 0x0A0B0C0D0E0F1011},
		{"crc32", 40, 4, uint64(crc32.ChecksumIEEE(b[:40]))},
		{"reserved 44..52", 44, 8, 0},
		{"reserved 52..60", 52, 8, 0},
		{"reserved 60..64", 60, 4, 0},
	}
	for _, f := range fields {
		if got := getN(b, f.off, f.n); got != f.want {
			t.Errorf("%s at %d (%d bytes) = %#x, want %#x", f.name, f.off, f.n, got, f.want)
		}
	}
	// The CRC is CRC-32/IEEE of bytes [0, 40), computed here independently of hash/crc32 too.
	if got, want := uint32(getN(b, 40, 4)), bitwiseCRC32(b[:40]); got != want {
		t.Errorf("crc at 40 = %#08x, bitwise CRC-32/IEEE of [0,40) = %#08x", got, want)
	}
	// Created is a signed 64-bit field.
	neg := Header{Version: 1, HeaderSize: 4096, DataSize: 1, Created: -2}
	neg.Encode(b)
	if got := getN(b, 32, 8); got != math.MaxUint64-1 {
		t.Errorf("created -2 encodes as %#x", got)
	}

	if nativeLittle() {
		const golden = "4d4d495043524547" + // "MMIPCREG"
			"01000000" + // version 1
			"00100000" + // header size 4096
			"0302010000000000" + // data size 0x10203
			"44332211" + // pid
			"88776655" + // flags
			"11100f0e0d0c0b0a" + // created
			"f0d58ad3" + // crc32 IEEE of [0, 40)
			"0000000000000000000000000000000000000000" // reserved
		h.Encode(b)
		if got := hex.EncodeToString(b); got != golden {
			t.Errorf("little-endian golden bytes:\n got %s\nwant %s", got, golden)
		}
	}
}

// bitwiseCRC32 is the reflected CRC-32 with polynomial 0xEDB88320 (IEEE 802.3), written out.
func bitwiseCRC32(p []byte) uint32 {
	crc := ^uint32(0)
	for _, c := range p {
		crc ^= uint32(c)
		for i := 0; i < 8; i++ {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xEDB88320
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

func TestDecodeHeaderRejects(t *testing.T) {
	good := func() []byte {
		h := validHeader()
		return handHeader(h.Version, h.HeaderSize, h.DataSize, h.CreatorPID, h.Flags, h.Created)
	}
	goodSize := fileSizeFor(4096, 12345) // 4096 + 16384
	if _, err := DecodeHeader(good(), goodSize); err != nil {
		t.Fatalf("the base header is rejected: %v", err)
	}
	withHeaderSize := func(hs uint32) []byte {
		b := good()
		putN(b, 12, uint64(hs), 4)
		fixCRC(b)
		return b
	}
	withDataSize := func(ds uint64) []byte {
		b := good()
		putN(b, 16, ds, 8)
		fixCRC(b)
		return b
	}
	withVersion := func(v uint32) []byte {
		b := good()
		putN(b, 8, uint64(v), 4)
		fixCRC(b)
		return b
	}
	mutate := func(f func(b []byte)) []byte {
		b := good()
		f(b)
		return b
	}

	cases := []struct {
		name     string
		b        []byte
		fileSize int64
		keyword  string // a word the error must contain, to show which check fired
	}{
		{"nil buffer", nil, goodSize, "short"},
		{"short buffer 63", good()[:63], goodSize, "short"},
		{"short buffer 40", good()[:40], goodSize, "short"},
		{"short file 63", good(), 63, "short"},
		{"short file 0", good(), 0, "short"},
		{"negative file size", good(), -1, "short"},
		{"bad magic first byte", mutate(func(b []byte) { b[0] = 'X'; fixCRC(b) }), goodSize, "magic"},
		{"bad magic last byte", mutate(func(b []byte) { b[7] = 'g'; fixCRC(b) }), goodSize, "magic"},
		{"lowercase magic", mutate(func(b []byte) { copy(b, "mmipcreg"); fixCRC(b) }), goodSize, "magic"},
		{"zero magic", mutate(func(b []byte) { clear(b[:8]); fixCRC(b) }), goodSize, "magic"},
		{"all zero", make([]byte, 64), goodSize, "magic"},
		{"version 0", withVersion(0), goodSize, "version"},
		{"version 2", withVersion(2), goodSize, "version"},
		{"version max", withVersion(math.MaxUint32), goodSize, "version"},
		{"other byte order", otherByteOrder(good()), goodSize, "version"},
		{"crc field flipped", mutate(func(b []byte) { b[40] ^= 1 }), goodSize, "checksum"},
		{"pid flipped, crc stale", mutate(func(b []byte) { b[24] ^= 0x80 }), goodSize, "checksum"},
		{"flags flipped, crc stale", mutate(func(b []byte) { b[31] ^= 1 }), goodSize, "checksum"},
		{"created flipped, crc stale", mutate(func(b []byte) { b[39] ^= 1 }), goodSize, "checksum"},
		{"data size flipped, crc stale", mutate(func(b []byte) { b[16] ^= 1 }), goodSize, "checksum"},
		{"header size 0", withHeaderSize(0), goodSize, "header size"},
		{"header size 1", withHeaderSize(1), goodSize, "header size"},
		{"header size 2048 (power of two below 4096)", withHeaderSize(2048), goodSize, "header size"},
		{"header size 4095", withHeaderSize(4095), goodSize, "header size"},
		{"header size 4097", withHeaderSize(4097), goodSize, "header size"},
		{"header size 6144", withHeaderSize(6144), goodSize, "header size"},
		{"header size 12288", withHeaderSize(12288), fileSizeFor(12288, 12345), "header size"},
		{"header size 2 MiB", withHeaderSize(2 << 20), fileSizeFor(2<<20, 12345), "header size"},
		{"header size 1 MiB + 4096", withHeaderSize(1<<20 + 4096), fileSizeFor(1<<20+4096, 12345), "header size"},
		{"header size 2^31", withHeaderSize(1 << 31), goodSize, "header size"},
		{"header size max", withHeaderSize(math.MaxUint32), goodSize, "header size"},
		{"data size 0", withDataSize(0), 4096, "data size 0"},
		{"data size 0 (one page file)", withDataSize(0), 8192, "data size 0"},
		{"data size max uint64", withDataSize(math.MaxUint64), math.MaxInt64, "overflows"},
		{"data size 2^63", withDataSize(1 << 63), math.MaxInt64, "overflows"},
		{"data size max int64", withDataSize(math.MaxInt64), math.MaxInt64, "overflows"},
		{"data size max int64 - 4096", withDataSize(math.MaxInt64 - 4096), math.MaxInt64, "overflows"},
		{"file one page less", good(), goodSize - 4096, "file has"},
		{"file one page more", good(), goodSize + 4096, "file has"},
		{"file one byte less", good(), goodSize - 1, "file has"},
		{"file one byte more", good(), goodSize + 1, "file has"},
		{"file just the header", good(), 4096, "file has"},
		{"file max int64", good(), math.MaxInt64, "file has"},
		{"data size one page more than the file holds", withDataSize(16384 + 1), goodSize, "file has"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := DecodeHeader(c.b, c.fileSize)
			if err == nil {
				t.Fatalf("DecodeHeader accepted it: %+v", h)
			}
			if h != (Header{}) {
				t.Errorf("a rejected header still returned %+v", h)
			}
			if !strings.Contains(err.Error(), c.keyword) {
				t.Errorf("error %q does not mention %q", err, c.keyword)
			}
		})
	}
}

// otherByteOrder rewrites a header as a host of the other byte order would have written it
// (PROTOCOL.md: such a region "fails the version check").
func otherByteOrder(b []byte) []byte {
	for _, f := range [][2]int{{8, 12}, {12, 16}, {16, 24}, {24, 28}, {28, 32}, {32, 40}} {
		slices.Reverse(b[f[0]:f[1]])
	}
	crc := make([]byte, 4)
	putN(crc, 0, uint64(crc32.ChecksumIEEE(b[:40])), 4)
	slices.Reverse(crc)
	copy(b[40:], crc)
	return b
}

func TestDecodeHeaderAccepts(t *testing.T) {
	// Everything the contract allows, at the edges.
	for _, hs := range []uint32{4096, 8192, 16384, 65536, 1 << 20} {
		for _, ds := range []uint64{1, uint64(hs) - 1, uint64(hs), uint64(hs) + 1, 10*uint64(hs) + 17} {
			b := handHeader(1, hs, ds, 1, 0, 0)
			size := fileSizeFor(uint64(hs), ds)
			h, err := DecodeHeader(b, size)
			if err != nil {
				t.Errorf("hs %d ds %d size %d: %v", hs, ds, size, err)
				continue
			}
			if h.HeaderSize != hs || h.DataSize != ds {
				t.Errorf("hs %d ds %d: decoded %+v", hs, ds, h)
			}
		}
	}
	// Flags is zero in version 1, but readers ignore it.
	b := handHeader(1, 4096, 1, 1, 0xDEADBEEF, 0)
	if h, err := DecodeHeader(b, 8192); err != nil || h.Flags != 0xDEADBEEF {
		t.Errorf("flags set: %+v, %v", h, err)
	}
	// A page-sized buffer (what a reader may pass) decodes the same as the fixed 64 bytes.
	page := make([]byte, 4096)
	copy(page, b)
	if h, err := DecodeHeader(page, 8192); err != nil || h.DataSize != 1 {
		t.Errorf("page buffer: %+v, %v", h, err)
	}
}

// bigFileSize is the exact file size hs + roundup(ds, hs) as a big integer: the oracle.
func bigFileSize(hs, ds uint64) *big.Int {
	h := new(big.Int).SetUint64(hs)
	d := new(big.Int).SetUint64(ds)
	pages := new(big.Int).Add(d, h)
	pages.Sub(pages, big.NewInt(1))
	pages.Div(pages, h)
	return pages.Mul(pages, h).Add(pages, h)
}

func TestRegionFileSize(t *testing.T) {
	small := []struct {
		hs, ds uint64
		want   int64
	}{
		{4096, 1, 8192},
		{4096, 4095, 8192},
		{4096, 4096, 8192},
		{4096, 4097, 12288},
		{4096, 8192, 12288},
		{4096, 8193, 16384},
		{65536, 1, 131072},
		{65536, 65537, 196608},
		{1 << 20, 1, 2 << 20},
	}
	for _, c := range small {
		got, ok := regionFileSize(c.hs, c.ds)
		if !ok || got != c.want {
			t.Errorf("regionFileSize(%d, %d) = %d, %v; want %d, true", c.hs, c.ds, got, ok, c.want)
		}
		if got, ok := (Header{HeaderSize: uint32(c.hs), DataSize: c.ds}).FileSize(); !ok || got != c.want {
			t.Errorf("Header{%d, %d}.FileSize() = %d, %v; want %d, true", c.hs, c.ds, got, ok, c.want)
		}
	}
	if _, ok := regionFileSize(0, 1); ok {
		t.Errorf("regionFileSize(0, 1) is ok")
	}
	if _, ok := (Header{HeaderSize: 0, DataSize: 1}).FileSize(); ok {
		t.Errorf("FileSize with header size 0 is ok")
	}

	// Near MaxInt64, checked against an exact big-integer oracle.
	maxInt := new(big.Int).SetInt64(math.MaxInt64)
	type probe struct {
		hs, ds uint64
		exact  *big.Int
		fits   bool
	}
	var probes []probe
	for _, hs := range []uint64{4096, 8192, 65536, 1 << 20, math.MaxUint32} {
		for k := uint64(0); k <= 3; k++ {
			for _, d := range []uint64{
				math.MaxInt64 - 2*hs + k, math.MaxInt64 - 2*hs - k, math.MaxInt64 - 3*hs + k,
				math.MaxInt64 - hs + k, math.MaxInt64 - hs - k, math.MaxInt64 - k,
				1<<63 + k, math.MaxUint64 - k,
			} {
				exact := bigFileSize(hs, d)
				probes = append(probes, probe{hs, d, exact, exact.Cmp(maxInt) <= 0})
			}
		}
	}
	// ok never comes with a wrong (wrapped) size.
	t.Run("never wrong", func(t *testing.T) {
		for _, p := range probes {
			got, ok := regionFileSize(p.hs, p.ds)
			if ok && (!p.fits || big.NewInt(got).Cmp(p.exact) != 0) {
				t.Errorf("regionFileSize(%d, %d) = %d, true; the exact size is %s", p.hs, p.ds, got, p.exact)
			}
			if !ok && got != 0 {
				t.Errorf("regionFileSize(%d, %d) = %d, false; want 0 with false", p.hs, p.ds, got)
			}
		}
	})
	// FileSize's doc: "ok is false when that does not fit in an int64" (and only then).
	t.Run("accepts what fits", func(t *testing.T) {
		for _, p := range probes {
			if _, ok := regionFileSize(p.hs, p.ds); p.fits && !ok {
				t.Errorf("regionFileSize(%d, %d) reports overflow, but the file size %s fits in an int64", p.hs, p.ds, p.exact)
			}
		}
	})
}
