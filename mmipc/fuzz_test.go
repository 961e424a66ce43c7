package mmipc

import (
	"bytes"
	"errors"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The fuzzers of the bytes a hostile peer controls before a region is attached: the header
// (DecodeHeader), a ring's control block (checkRingControl) and a whole region file (Dir.Open,
// Dir.OpenRing, Dir.Stat). Each checks the code against an oracle written from docs/PROTOCOL.md
// ("Opening and validation", "Ring") with the hand decoder of header_test.go (getN), not with the
// package's own encoder. Their seed corpora are in testdata/fuzz/<FuzzName>/; `go test` runs them,
// and `go test -run '^$' -fuzz '^FuzzOpenFile$' -fuzztime 60s ./mmipc/` (one target at a time)
// explores further.

// headerOracle says whether the first bytes b of a file of fileSize bytes are a valid header, as
// docs/PROTOCOL.md "Opening and validation" step 4 defines one, computing the file size in big
// integers (bigFileSize, header_test.go) so that no overflow can hide.
func headerOracle(b []byte, fileSize int64) bool {
	if len(b) < HeaderFixedLen || fileSize < HeaderFixedLen {
		return false
	}
	if string(b[:8]) != "MMIPCREG" || getN(b, 8, 4) != 1 || getN(b, 40, 4) != uint64(crc32.ChecksumIEEE(b[:40])) {
		return false
	}
	hs, ds := getN(b, 12, 4), getN(b, 16, 8)
	if hs < 4096 || hs > 1<<20 || hs&(hs-1) != 0 || ds < 1 {
		return false
	}
	want := bigFileSize(hs, ds)
	return want.IsInt64() && want.Int64() == fileSize
}

// FuzzDecodeHeader: for any bytes and file size, DecodeHeader never panics nor modifies its input,
// accepts exactly what the oracle accepts, and an accepted header re-encodes (Header.Encode) to the same 44 bytes with
// zero reserved bytes, with sizes that satisfy the protocol's invariants. Bytes after the first 64
// change nothing, and the same header with any other file size (±1, ± a page) is refused.
func FuzzDecodeHeader(f *testing.F) {
	f.Add(handHeader(1, 4096, 100, 1, 0, 1), int64(8192))
	h := validHeader()
	good := handHeader(h.Version, h.HeaderSize, h.DataSize, h.CreatorPID, h.Flags, h.Created)
	goodSize := fileSizeFor(4096, h.DataSize)
	f.Add(good, goodSize)
	f.Add(good, goodSize-4096)
	f.Add(good[:63], goodSize)
	f.Add([]byte{}, int64(0))
	f.Add(make([]byte, 64), int64(8192))
	f.Add(handHeader(1, 1<<20, 1, 0, 0, 0), int64(2<<20))
	f.Add(handHeader(1, 4096, math.MaxInt64-8192, 0, 0, 0), int64(math.MaxInt64-4096))
	f.Add(handHeader(2, 4096, 1, 0, 0, 0), int64(8192))
	f.Add(handHeader(1, 4097, 1, 0, 0, 0), int64(8194))
	f.Add(bytes.Repeat([]byte{0xFF}, 128), int64(-1))

	f.Fuzz(func(t *testing.T, b []byte, fileSize int64) {
		in := bytes.Clone(b)
		h, err := DecodeHeader(b, fileSize)
		if !bytes.Equal(in, b) {
			t.Fatalf("DecodeHeader modified its input")
		}
		want := headerOracle(b, fileSize)
		if (err == nil) != want {
			t.Fatalf("DecodeHeader(% x, %d) = %+v, %v; the protocol says valid=%v", b, fileSize, h, err, want)
		}
		if err != nil {
			if h != (Header{}) {
				t.Fatalf("a refused header comes with fields: %+v (%v)", h, err)
			}
			return
		}
		var enc [HeaderFixedLen]byte
		h.Encode(enc[:])
		if !bytes.Equal(enc[:44], b[:44]) || !bytes.Equal(enc[44:], make([]byte, 20)) {
			t.Fatalf("accepted % x; it re-encodes to % x", b[:HeaderFixedLen], enc)
		}
		hs := uint64(h.HeaderSize)
		if hs < 4096 || hs > 1<<20 || hs&(hs-1) != 0 || h.DataSize < 1 || h.Version != ProtocolVersion {
			t.Fatalf("accepted a header with version %d, header size %d, data size %d", h.Version, hs, h.DataSize)
		}
		if fs, ok := h.FileSize(); !ok || fs != fileSize || bigFileSize(hs, h.DataSize).Int64() != fileSize {
			t.Fatalf("accepted header size %d, data size %d for a file of %d bytes (FileSize %d %v)", hs, h.DataSize, fileSize, fs, ok)
		}
		// The data fits in the file, after the header: what a mapping of fileSize bytes relies on.
		if fileSize-int64(hs) < int64(h.DataSize) || fileSize-int64(hs)-int64(h.DataSize) >= int64(hs) {
			t.Fatalf("data of %d bytes after a %d-byte header in a %d-byte file", h.DataSize, hs, fileSize)
		}
		if h2, err := DecodeHeader(append(b[:HeaderFixedLen:HeaderFixedLen], 0xFF, 0xEE), fileSize); err != nil || h2 != h {
			t.Fatalf("bytes after the fixed fields changed the result: %+v, %v", h2, err)
		}
		if _, err := DecodeHeader(b[:HeaderFixedLen-1], fileSize); err == nil {
			t.Fatalf("63 bytes of a valid header were accepted")
		}
		for _, d := range []int64{-1, 1, -int64(hs), int64(hs)} {
			if other := fileSize + d; other >= 0 && (d < 0 || other > fileSize) {
				if _, err := DecodeHeader(b, other); err == nil {
					t.Fatalf("the header of a %d-byte file also accepted for %d bytes", fileSize, other)
				}
			}
		}
	})
}

// ringOracle says whether a ring region with header flags and data of dataLen bytes, starting with
// the control bytes c (at least 28 of them), is valid per docs/PROTOCOL.md "Ring", and its capacity.
func ringOracle(flags uint32, c []byte, dataLen uint64) (uint64, bool) {
	if flags&1 == 0 || dataLen < 512 || len(c) < 28 {
		return 0, false
	}
	capacity := getN(c, 16, 8)
	ok := string(c[:8]) == "MMIPCRNG" && getN(c, 8, 4) == 1 && getN(c, 12, 4) == 512 &&
		getN(c, 28, 4) == uint64(crc32.ChecksumIEEE(c[:28])) &&
		capacity >= 1024 && capacity <= 1<<30 && capacity&(capacity-1) == 0 && dataLen == 512+capacity
	return capacity, ok
}

// ringFuzzMem is address space for data slices of any length up to 2 GiB + 4 KiB: read-only,
// reserved without memory, but for a first writable page for the control block. checkRingControl
// reads the control block and the slice's length only, so no other page is ever touched.
var ringFuzzMem = sync.OnceValues(func() ([]byte, error) {
	mem, err := unix.Mmap(-1, 0, 1<<31+4096, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, err
	}
	return mem, unix.Mprotect(mem[:4096], unix.PROT_READ|unix.PROT_WRITE)
})

// FuzzRingControl: for any control block, header flags and data length, checkRingControl never
// panics and never reads past the data (its slice has no spare capacity), accepts exactly what
// the oracle accepts (then a power-of-two capacity in range, and exactly 512 + capacity data bytes),
// and refuses with EPROTO.
func FuzzRingControl(f *testing.F) {
	mem, err := ringFuzzMem()
	if err != nil {
		f.Fatal(err)
	}
	valid := make([]byte, RingControlSize)
	encodeRingControl(valid, 4096)
	f.Add(valid, uint32(FlagRing), uint64(512+4096))
	f.Fuzz(func(t *testing.T, ctrl []byte, flags uint32, dataLen uint64) {
		if dataLen > uint64(len(mem)) {
			dataLen %= uint64(len(mem)) + 1
		}
		clear(mem[:RingControlSize])
		copy(mem[:min(len(ctrl), RingControlSize, int(dataLen))], ctrl)
		data := mem[:dataLen:dataLen]
		c, err := checkRingControl(Header{Flags: flags}, data)
		wantCap, want := ringOracle(flags, mem[:min(int(dataLen), RingControlSize)], dataLen)
		if (err == nil) != want {
			t.Fatalf("checkRingControl(flags %#x, % x..., %d bytes) = %d, %v; the protocol says valid=%v",
				flags, mem[:min(int(dataLen), 64)], dataLen, c, err, want)
		}
		if err != nil {
			if c != 0 || !errors.Is(err, syscall.EPROTO) {
				t.Fatalf("refused with capacity %d and %v, want 0 and EPROTO", c, err)
			}
			return
		}
		if uint64(c) != wantCap || c < MinRingCapacity || c > MaxRingCapacity || c&(c-1) != 0 || uint64(len(data)) != RingControlSize+uint64(c) {
			t.Fatalf("accepted capacity %d (control block says %d) for %d data bytes", c, wantCap, len(data))
		}
	})
}

// fuzzFileSizeMax bounds the region files FuzzOpenFile makes (sparse files on tmpfs: cheap).
const fuzzFileSizeMax = 3 << 20

// FuzzOpenFile: a file made of fuzzed header bytes, a fuzzed size and fuzzed bytes at offset 4096
// (where a ring's control block is) is opened by name with Dir.Open, OpenReadOnly and OpenRing,
// and described with Dir.Stat: every call returns nil or an *Error with EPROTO (the only thing a
// regular file that is not a valid region can be), never panics, and what succeeds agrees with the
// oracles and the file. An opened ring then takes a try-once receive and send: nil, or EAGAIN or
// EPROTO (damaged control words).
func FuzzOpenFile(f *testing.F) {
	// One directory per process (each fuzz worker is one), under /dev/shm where regions live.
	parent := "/dev/shm"
	if st, err := os.Stat(parent); err != nil || !st.IsDir() {
		parent = ""
	}
	dir, err := os.MkdirTemp(parent, "mmipc-fuzz-")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	d := Dir(dir)
	path := filepath.Join(dir, "r")

	ctrl := make([]byte, RingControlSize)
	encodeRingControl(ctrl, 1024)
	f.Add(handHeader(1, 4096, 512+1024, 1, FlagRing, 1), int64(8192), ctrl)

	f.Fuzz(func(t *testing.T, hdr []byte, size int64, tail []byte) {
		if size < 0 || size > fuzzFileSizeMax {
			size = int64(uint64(size) % (fuzzFileSizeMax + 1))
		}
		writeFuzzFile(t, path, hdr, size, tail)
		// The oracles read the file: hdr may be short (then zeros follow) or cut by the size.
		head := make([]byte, HeaderFixedLen)
		readFuzzFile(t, path, head, 0)
		valid := headerOracle(head, size)
		var wantHdr Header
		ctl := make([]byte, RingControlSize)
		if valid {
			wantHdr, _ = DecodeHeader(head, size)
			readFuzzFile(t, path, ctl, int64(wantHdr.HeaderSize)) // the data holds at least 512 bytes when a ring is valid
		}
		allowed := func(what string, err error) {
			t.Helper()
			var e *Error
			if !errors.As(err, &e) || e.Errno != syscall.EPROTO {
				t.Fatalf("%s: %T %v, want nil or an *Error with EPROTO", what, err, err)
			}
			if valid && what != "OpenRing" {
				t.Fatalf("%s refused a valid region (header % x, %d bytes): %v", what, head, size, err)
			}
		}
		for _, readOnly := range []bool{false, true} {
			r, err := d.open("r", readOnly)
			if err != nil {
				allowed("Open", err)
				continue
			}
			if !valid || r.Size() != int(wantHdr.DataSize) || len(r.Mapping()) != int(size) {
				t.Fatalf("Open accepted header % x of a %d-byte file (valid=%v): %d data bytes, a %d-byte mapping",
					head, size, valid, r.Size(), len(r.Mapping()))
			}
			b := r.Bytes()
			_ = b[0] + b[len(b)-1] // the whole data is inside the file: no fault
			r.Close()
		}
		info, err := d.Stat("r")
		if err != nil {
			allowed("Stat", err)
		} else if !valid || info.Size != int(wantHdr.DataSize) || info.FileSize != size || info.HeaderSize != int(wantHdr.HeaderSize) ||
			info.Ring != (wantHdr.Flags&FlagRing != 0) || info.CreatorPID != int(wantHdr.CreatorPID) || info.Attached {
			t.Fatalf("Stat of header % x, %d bytes (valid=%v): %+v", head, size, valid, info)
		}
		q, err := d.OpenRing("r")
		if err != nil {
			allowed("OpenRing", err)
			return
		}
		wantCap, ringOK := ringOracle(wantHdr.Flags, ctl, wantHdr.DataSize)
		if !valid || !ringOK || q.Capacity() != int(wantCap) {
			t.Fatalf("OpenRing accepted header % x, control % x (valid=%v, ring=%v): capacity %d", head, ctl[:64], valid, ringOK, q.Capacity())
		}
		defer q.Close()
		ringErr := func(what string, err error) {
			var e *Error
			if err != nil && (!errors.As(err, &e) || e.Errno != syscall.EAGAIN && e.Errno != syscall.EPROTO) {
				t.Fatalf("%s on a fuzzed ring: %v", what, err)
			}
		}
		buf := make([]byte, q.MaxMessage())
		n, err := q.Recv(buf, TryOnce)
		ringErr("Recv", err)
		if n < 0 || n > len(buf) {
			t.Fatalf("Recv returned %d bytes into a %d-byte buffer", n, len(buf))
		}
		ringErr("Send", q.Send([]byte("fuzz"), TryOnce))
	})
}

// readFuzzFile fills b from path at off (zeros past the end of the file).
func readFuzzFile(t *testing.T, path string, b []byte, off int64) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	clear(b)
	if _, err := unix.Pread(fd, b, off); err != nil {
		t.Fatal(err)
	}
}

// writeFuzzFile makes path hold hdr, cut or extended (with zeros) to size bytes, with tail written
// at offset 4096 when the file reaches it.
func writeFuzzFile(t *testing.T, path string, hdr []byte, size int64, tail []byte) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if len(hdr) > 0 {
		if _, err := unix.Pwrite(fd, hdr[:min(int64(len(hdr)), size)], 0); err != nil {
			t.Fatal(err)
		}
	}
	if size > 4096 && len(tail) > 0 {
		if _, err := unix.Pwrite(fd, tail[:min(int64(len(tail)), size-4096, math.MaxInt32)], 4096); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		t.Fatal(err)
	}
}
