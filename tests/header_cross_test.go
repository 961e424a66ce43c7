package tests

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mmipc/mmipc/mmipc"
)

// The header layout of docs/PROTOCOL.md is the single source: these tests exchange region files
// between the library (written in Go, also reached through libmmipc.so) and tests/c/header_codec.c,
// an independent C implementation written from the document alone, in both directions.

const headerCodecSrc = "tests/c/header_codec.c"

// crossSizes are the data sizes exchanged: one byte, around a page boundary, and over a MiB.
var crossSizes = []uint64{1, 4095, 4096, 4097, 1<<20 + 3}

// runCodec runs header_codec with args in dir (also its MMIPC_DIR) and requires exit 0.
func runCodec(t *testing.T, dir string, args ...string) map[string]string {
	t.Helper()
	bin := compileC(t, headerCodecSrc)
	r := runProgram(t, 30*time.Second, dir, []string{"MMIPC_DIR=" + dir}, bin, args...)
	if r.code != 0 {
		t.Fatalf("header_codec %v exited %d:\n%s", args, r.code, r.out)
	}
	return parseKV(t, r.out)
}

// parseKV reads header_codec's key=value lines; the verdict line carries "verdict=... reason=...".
func parseKV(t *testing.T, out string) map[string]string {
	t.Helper()
	kv := map[string]string{"_out": out}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		fields := []string{line}
		if strings.HasPrefix(line, "verdict=") {
			fields = strings.Fields(line)
		}
		for _, f := range fields {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				t.Fatalf("header_codec printed a line that is not key=value: %q\n%s", line, out)
			}
			if _, dup := kv[k]; dup {
				t.Fatalf("header_codec printed %s twice:\n%s", k, out)
			}
			kv[k] = v
		}
	}
	return kv
}

// expectKV checks that each key was printed with the wanted value.
func expectKV(t *testing.T, what string, kv map[string]string, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if got, ok := kv[k]; !ok || got != w {
			t.Errorf("%s: %s=%q (printed: %v), want %q\n%s", what, k, got, ok, w, kv["_out"])
		}
	}
}

// regionFileLen is the test's own oracle for a region's file size.
func regionFileLen(hs, size uint64) int64 { return int64(hs + (size+hs-1)/hs*hs) }

// fieldAt names the header field that holds byte off, for messages.
func fieldAt(off, hs int) string {
	switch {
	case off < 8:
		return "magic"
	case off < 12:
		return "version"
	case off < 16:
		return "header_size"
	case off < 24:
		return "data_size"
	case off < 28:
		return "creator_pid"
	case off < 32:
		return "flags"
	case off < 40:
		return "created_ns"
	case off < 44:
		return "header_crc"
	case off < hs:
		return "reserved"
	}
	return "data or padding"
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestHeaderCrossCWrittenGoDecoded: libmmipc.so (called from C) creates regions; the test checks
// their files byte for byte against a layout it builds itself from PROTOCOL.md's table, then lets
// mmipc.DecodeHeader, mmipc.Dir.Open and the independent C decoder read them.
func TestHeaderCrossCWrittenGoDecoded(t *testing.T) {
	dir := regionDir(t)
	hs := uint64(os.Getpagesize())
	ne := binary.NativeEndian
	for _, size := range crossSizes {
		t.Run(strconv.FormatUint(size, 10), func(t *testing.T) {
			name := fmt.Sprintf("c-written-%d", size)
			before := time.Now().UnixNano()
			kv := runCodec(t, dir, "create", name, strconv.FormatUint(size, 10))
			after := time.Now().UnixNano()
			pid, err := strconv.ParseUint(kv["pid"], 10, 32)
			if err != nil || pid == 0 {
				t.Fatalf("create printed pid %q:\n%s", kv["pid"], kv["_out"])
			}
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if want := regionFileLen(hs, size); int64(len(b)) != want {
				t.Fatalf("file is %d bytes, want header_size + round_up(data_size) = %d", len(b), want)
			}

			// Field by field, each at its documented offset.
			if got := string(b[0:8]); got != "MMIPCREG" {
				t.Errorf("magic at 0..7 = %q", got)
			}
			if got := ne.Uint32(b[8:]); got != mmipc.ProtocolVersion {
				t.Errorf("version at 8 = %d, want %d", got, mmipc.ProtocolVersion)
			}
			if got := ne.Uint32(b[12:]); uint64(got) != hs {
				t.Errorf("header_size at 12 = %d, want the page size %d", got, hs)
			}
			if got := ne.Uint64(b[16:]); got != size {
				t.Errorf("data_size at 16 = %d, want %d", got, size)
			}
			if got := ne.Uint32(b[24:]); uint64(got) != pid {
				t.Errorf("creator_pid at 24 = %d, want the C program's pid %d", got, pid)
			}
			if got := ne.Uint32(b[28:]); got != 0 {
				t.Errorf("flags at 28 = %d, want 0", got)
			}
			created := int64(ne.Uint64(b[32:]))
			if created < before || created > after {
				t.Errorf("created_ns at 32 = %d, outside the run's window [%d, %d]", created, before, after)
			}
			if got, want := ne.Uint32(b[40:]), crc32.ChecksumIEEE(b[0:40]); got != want {
				t.Errorf("header_crc at 40 = %#08x, CRC-32/IEEE of bytes 0..39 = %#08x", got, want)
			}

			// The whole file against one built here: header fields, zero reserved area (44 to
			// header_size), zero data (a new region reads as zeros) and zero padding.
			want := make([]byte, len(b))
			copy(want[0:], "MMIPCREG")
			ne.PutUint32(want[8:], mmipc.ProtocolVersion)
			ne.PutUint32(want[12:], uint32(hs))
			ne.PutUint64(want[16:], size)
			ne.PutUint32(want[24:], uint32(pid))
			ne.PutUint64(want[32:], uint64(created))
			ne.PutUint32(want[40:], crc32.ChecksumIEEE(want[0:40]))
			if !bytes.Equal(b, want) {
				off := firstDiff(b, want)
				t.Errorf("file differs from the documented layout first at byte %d (%s): got %#02x, want %#02x",
					off, fieldAt(off, int(hs)), b[off], want[off])
			}

			// The Go decoder agrees field by field.
			h, err := mmipc.DecodeHeader(b, int64(len(b)))
			if err != nil {
				t.Fatalf("DecodeHeader: %v", err)
			}
			wantH := mmipc.Header{Version: mmipc.ProtocolVersion, HeaderSize: uint32(hs), DataSize: size,
				CreatorPID: uint32(pid), Flags: 0, Created: created}
			if h != wantH {
				t.Errorf("DecodeHeader = %+v, want %+v", h, wantH)
			}
			r, err := mmipc.Dir(dir).Open(name)
			if err != nil {
				t.Fatalf("Go Open of the C-created region: %v", err)
			}
			if uint64(r.Size()) != size {
				t.Errorf("Go Open: Size %d, want %d", r.Size(), size)
			}
			r.Close()

			// And so does the independent C decoder.
			dec := runCodec(t, dir, "decode", name)
			expectKV(t, "C decode of a libmmipc region", dec, map[string]string{
				"verdict": "valid", "data_size": strconv.FormatUint(size, 10), "creator_pid": kv["pid"],
				"created_ns": strconv.FormatInt(created, 10), "crc_ok": "1", "reserved_zero": "1",
				"padding_zero": "1", "data_nonzero": "0",
			})
		})
	}
}

// TestHeaderCrossGoWrittenCDecoded: the Go package creates regions; the independent C decoder
// reads their files with plain read() and must print exactly what Go knows, and libmmipc opens them.
func TestHeaderCrossGoWrittenCDecoded(t *testing.T) {
	dir := regionDir(t)
	hs := uint64(os.Getpagesize())
	for _, size := range append(crossSizes, 12345) {
		t.Run(strconv.FormatUint(size, 10), func(t *testing.T) {
			name := fmt.Sprintf("go-written-%d", size)
			before := time.Now().UnixNano()
			r, err := mmipc.Dir(dir).Create(name, int(size), 0o600)
			after := time.Now().UnixNano()
			if err != nil {
				t.Fatal(err)
			}
			// Marks at the first and last usable bytes: the C side must find the data exactly at
			// [header_size, header_size + data_size), and the padding after it still zero.
			data := r.Bytes()
			data[0] = 0xA1
			wantLast, wantNonzero := "0xa1", "1"
			if size >= 2 {
				data[size-1] = 0xB2
				wantLast, wantNonzero = "0xb2", "2"
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			kv := runCodec(t, dir, "decode", name)
			expectKV(t, "C decode of a Go region", kv, map[string]string{
				"file_size":     strconv.FormatInt(regionFileLen(hs, size), 10),
				"magic":         mmipc.Magic,
				"version":       strconv.Itoa(mmipc.ProtocolVersion),
				"header_size":   strconv.FormatUint(hs, 10),
				"data_size":     strconv.FormatUint(size, 10),
				"creator_pid":   strconv.Itoa(os.Getpid()),
				"flags":         "0",
				"header_crc":    fmt.Sprintf("0x%08x", crc32.ChecksumIEEE(b[:40])),
				"crc_computed":  fmt.Sprintf("0x%08x", crc32.ChecksumIEEE(b[:40])),
				"crc_ok":        "1",
				"reserved_zero": "1",
				"padding_zero":  "1",
				"data_first":    "0xa1",
				"data_last":     wantLast,
				"data_nonzero":  wantNonzero,
				"verdict":       "valid",
			})
			created, err := strconv.ParseInt(kv["created_ns"], 10, 64)
			if err != nil || created < before || created > after {
				t.Errorf("C decode: created_ns=%q, want a time in [%d, %d]", kv["created_ns"], before, after)
			}
			if _, ok := kv["reason"]; ok {
				t.Errorf("C decode gave a reason for a valid region:\n%s", kv["_out"])
			}

			op := runCodec(t, dir, "open", name)
			expectKV(t, "libmmipc open of a Go region", op, map[string]string{
				"open": "ok", "size": strconv.FormatUint(size, 10),
				"data_first": "0xa1", "data_last": wantLast, "data_nonzero": wantNonzero,
			})
		})
	}
}

// TestHeaderCrossHandEncoded: the independent C encoder writes region files by hand (write and
// ftruncate, no libmmipc); the Go package and libmmipc must open them. PROTOCOL.md alone suffices
// to make a region the library accepts, including header sizes other than the local page size.
func TestHeaderCrossHandEncoded(t *testing.T) {
	dir := regionDir(t)
	page := uint64(os.Getpagesize())
	type encCase struct {
		size       uint64
		pid        uint32
		created    int64
		headerSize uint64 // 0: the encoder's default, the page size
		explicit   bool   // pid and created given on the command line
	}
	var cases []encCase
	for _, s := range crossSizes {
		cases = append(cases, encCase{size: s})
	}
	cases = append(cases,
		encCase{size: 5000, pid: 4242, created: 1700000000123456789, explicit: true},
		encCase{size: 7, pid: math.MaxUint32, created: -5, explicit: true}, // created is an int64
		encCase{size: 3, pid: 1, created: 1, headerSize: 2 * page, explicit: true},
		encCase{size: 70000, pid: 2, created: 2, headerSize: 65536, explicit: true},
		encCase{size: 3, pid: 3, created: 3, headerSize: 1 << 20, explicit: true},
	)
	for i, c := range cases {
		t.Run(fmt.Sprintf("%d-size%d-hs%d", i, c.size, c.headerSize), func(t *testing.T) {
			name := fmt.Sprintf("hand-%d", i)
			args := []string{"encode", name, strconv.FormatUint(c.size, 10)}
			if c.explicit {
				args = append(args, strconv.FormatUint(uint64(c.pid), 10), strconv.FormatInt(c.created, 10))
			}
			if c.headerSize != 0 {
				args = append(args, strconv.FormatUint(c.headerSize, 10))
			}
			enc := runCodec(t, dir, args...)
			hs := c.headerSize
			if hs == 0 {
				hs = page
			}
			pid, created := uint64(c.pid), c.created
			if !c.explicit {
				var err1, err2 error
				pid, err1 = strconv.ParseUint(enc["creator_pid"], 10, 32)
				created, err2 = strconv.ParseInt(enc["created_ns"], 10, 64)
				if err1 != nil || err2 != nil {
					t.Fatalf("encode output:\n%s", enc["_out"])
				}
			}
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if want := regionFileLen(hs, c.size); int64(len(b)) != want {
				t.Fatalf("hand-written file is %d bytes, want %d", len(b), want)
			}

			// The two encoders agree on the 64 fixed bytes, and the rest of the page is zero.
			h := mmipc.Header{Version: mmipc.ProtocolVersion, HeaderSize: uint32(hs), DataSize: c.size,
				CreatorPID: uint32(pid), Created: created}
			goFixed := make([]byte, mmipc.HeaderFixedLen)
			h.Encode(goFixed)
			if !bytes.Equal(b[:mmipc.HeaderFixedLen], goFixed) {
				off := firstDiff(b, goFixed)
				t.Errorf("C and Go encoders differ first at byte %d (%s):\n C %x\nGo %x", off, fieldAt(off, int(hs)),
					b[:mmipc.HeaderFixedLen], goFixed)
			}
			if i := bytes.IndexFunc(b[mmipc.HeaderFixedLen:hs], func(r rune) bool { return r != 0 }); i >= 0 {
				t.Errorf("reserved area has a non-zero byte at %d", mmipc.HeaderFixedLen+i)
			}
			if got, err := mmipc.DecodeHeader(b, int64(len(b))); err != nil || got != h {
				t.Errorf("DecodeHeader = %+v, %v; want %+v", got, err, h)
			}

			// Go opens it and sees the marker exactly at the ends of the data.
			r, err := mmipc.Dir(dir).Open(name)
			if err != nil {
				t.Fatalf("Go Open of a hand-written region: %v", err)
			}
			data := r.Bytes()
			if uint64(r.Size()) != c.size || uint64(len(data)) != c.size {
				t.Errorf("Go Open: Size %d, len(Bytes) %d, want %d", r.Size(), len(data), c.size)
			}
			wantNonzero, wantLast := 1, byte(0xC5)
			if c.size >= 2 {
				wantNonzero, wantLast = 2, 0x5C
			}
			nonzero := 0
			for _, x := range data {
				if x != 0 {
					nonzero++
				}
			}
			if len(data) > 0 && (data[0] != 0xC5 || data[len(data)-1] != wantLast || nonzero != wantNonzero) {
				t.Errorf("Go Open: data first %#02x last %#02x, %d non-zero bytes; want 0xc5, %#02x, %d",
					data[0], data[len(data)-1], nonzero, wantLast, wantNonzero)
			}
			r.Close()

			// libmmipc opens it too.
			op := runCodec(t, dir, "open", name)
			expectKV(t, "libmmipc open of a hand-written region", op, map[string]string{
				"open": "ok", "size": strconv.FormatUint(c.size, 10), "data_first": "0xc5",
				"data_last": fmt.Sprintf("0x%02x", wantLast), "data_nonzero": strconv.Itoa(wantNonzero),
			})
			// Unlink validates the header before removing the name: it must accept the file too.
			if err := mmipc.Dir(dir).Unlink(name); err != nil {
				t.Errorf("Go Unlink of a hand-written region: %v", err)
			}
		})
	}
}

// TestHeaderCrossDisagreements changes one thing at a time in a valid region file and requires the
// Go package (Open and Unlink), libmmipc (mmipc_open) and the independent C decoder to agree: the
// same files rejected, for the same reason (the first failing check in PROTOCOL.md's order), with
// EPROTO; and the same files accepted.
func TestHeaderCrossDisagreements(t *testing.T) {
	dir := regionDir(t)
	hs := os.Getpagesize()
	const size = 5000
	base, err := mmipc.Dir(dir).Create("base", size, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	base.Close()
	good, err := os.ReadFile(filepath.Join(dir, "base"))
	if err != nil {
		t.Fatal(err)
	}
	ne := binary.NativeEndian
	fixCRC := func(b []byte) { ne.PutUint32(b[40:], crc32.ChecksumIEEE(b[:40])) }
	// edit returns a copy of the good file changed by f; fix recomputes the CRC afterwards.
	edit := func(fix bool, f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		if fix {
			fixCRC(b)
		}
		return b
	}

	// goWord is what the Go error's detail says for each C reason.
	cases := []struct {
		name     string
		file     []byte
		reason   string // the C decoder's reason; "" when every reader must accept the file
		goWord   string // a word of the Go (and libmmipc) error detail
		cPrinted map[string]string
	}{
		{"magic byte, crc recomputed", edit(true, func(b []byte) { b[0] = 'X' }), "magic", "magic", nil},
		{"magic byte, crc stale (magic is checked first)", edit(false, func(b []byte) { b[7] = 'g' }), "magic", "magic", nil},
		{"version 2, crc recomputed", edit(true, func(b []byte) { ne.PutUint32(b[8:], 2) }), "version", "version",
			map[string]string{"version": "2", "crc_ok": "1"}},
		{"version 2, crc stale (version before crc)", edit(false, func(b []byte) { ne.PutUint32(b[8:], 2) }), "version", "version", nil},
		{"crc wrong", edit(false, func(b []byte) { b[40] ^= 1 }), "header_crc", "checksum", map[string]string{"crc_ok": "0"}},
		{"creator_pid changed, crc stale", edit(false, func(b []byte) { b[24] ^= 0x80 }), "header_crc", "checksum", nil},
		{"created_ns changed, crc stale", edit(false, func(b []byte) { b[39] ^= 1 }), "header_crc", "checksum", nil},
		{"header_size 3000 with a stale crc (crc before header_size)", edit(false, func(b []byte) { ne.PutUint32(b[12:], 3000) }), "header_crc", "checksum", nil},
		{"header_size 3000, crc recomputed", edit(true, func(b []byte) { ne.PutUint32(b[12:], 3000) }), "header_size", "header size",
			map[string]string{"header_size": "3000", "reserved_zero": "na"}},
		{"header_size 3000 and data_size 0 (header_size first)", edit(true, func(b []byte) {
			ne.PutUint32(b[12:], 3000)
			ne.PutUint64(b[16:], 0)
		}), "header_size", "header size", nil},
		{"header_size twice the page, crc recomputed", edit(true, func(b []byte) { ne.PutUint32(b[12:], uint32(2*hs)) }), "file_size", "file has", nil},
		{"data_size 0, crc recomputed", edit(true, func(b []byte) { ne.PutUint64(b[16:], 0) }), "data_size", "data size 0", nil},
		{"data_size overflows, crc recomputed", edit(true, func(b []byte) { ne.PutUint64(b[16:], math.MaxUint64) }), "data_size", "overflows", nil},
		{"data_size a page more than the file holds, crc recomputed", edit(true, func(b []byte) { ne.PutUint64(b[16:], size+uint64(hs)) }), "file_size", "file has", nil},
		{"data_size within the same last page, crc recomputed", edit(true, func(b []byte) { ne.PutUint64(b[16:], size+1) }), "", "", nil},
		{"file truncated by one byte", good[:len(good)-1], "file_size", "file has", nil},
		{"file extended by one page", append(bytes.Clone(good), make([]byte, hs)...), "file_size", "file has", nil},
		{"file of 63 bytes", good[:63], "short", "short", nil},
		{"empty file", []byte{}, "short", "short", nil},
		{"flags 1, crc recomputed", edit(true, func(b []byte) { ne.PutUint32(b[28:], 1) }), "", "",
			map[string]string{"flags": "1"}},
		{"flags all ones, crc recomputed", edit(true, func(b []byte) { ne.PutUint32(b[28:], math.MaxUint32) }), "", "",
			map[string]string{"flags": "4294967295"}},
		{"reserved byte 44 set (not covered by the crc)", edit(false, func(b []byte) { b[44] = 1 }), "", "",
			map[string]string{"reserved_zero": "0", "crc_ok": "1"}},
		{"last reserved byte set", edit(false, func(b []byte) { b[hs-1] = 0xFF }), "", "",
			map[string]string{"reserved_zero": "0"}},
		{"padding byte set", edit(false, func(b []byte) { b[len(b)-1] = 0xFF }), "", "",
			map[string]string{"padding_zero": "0", "data_nonzero": "0"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := fmt.Sprintf("case-%02d", i)
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, c.file, 0o600); err != nil {
				t.Fatal(err)
			}
			accept := c.reason == ""

			// The Go package.
			r, err := mmipc.Dir(dir).Open(name)
			if accept {
				if err != nil {
					t.Errorf("Go Open rejected it: %v", err)
				} else {
					if want := int(ne.Uint64(c.file[16:])); r.Size() != want {
						t.Errorf("Go Open: Size %d, want %d", r.Size(), want)
					}
					r.Close()
				}
			} else {
				var me *mmipc.Error
				if err == nil {
					r.Close()
					t.Errorf("Go Open accepted it (Size %d); the C decoder says %s", r.Size(), c.reason)
				} else if !errors.Is(err, syscall.EPROTO) || !errors.As(err, &me) || !strings.Contains(me.Detail, c.goWord) {
					t.Errorf("Go Open: %v; want EPROTO with a detail mentioning %q", err, c.goWord)
				}
			}

			// The independent C decoder.
			kv := runCodec(t, dir, "decode", name)
			if accept {
				expectKV(t, "C decode", kv, map[string]string{"verdict": "valid"})
			} else {
				expectKV(t, "C decode", kv, map[string]string{"verdict": "invalid", "reason": c.reason})
			}
			expectKV(t, "C decode", kv, c.cPrinted)

			// libmmipc.
			op := runCodec(t, dir, "open", name)
			if accept {
				expectKV(t, "mmipc_open", op, map[string]string{"open": "ok",
					"size": strconv.FormatUint(ne.Uint64(c.file[16:]), 10)})
			} else {
				expectKV(t, "mmipc_open", op, map[string]string{"open": "fail", "errno": strconv.Itoa(int(syscall.EPROTO))})
				if !strings.Contains(op["msg"], c.goWord) {
					t.Errorf("mmipc_last_error %q does not mention %q", op["msg"], c.goWord)
				}
			}

			// Unlink validates the same way: it removes a region, never a file that is not one.
			err = mmipc.Dir(dir).Unlink(name)
			_, statErr := os.Lstat(path)
			if accept && (err != nil || statErr == nil) {
				t.Errorf("Go Unlink of an accepted file: %v (file still there: %v)", err, statErr == nil)
			}
			if !accept && (!errors.Is(err, syscall.EPROTO) || statErr != nil) {
				t.Errorf("Go Unlink of a rejected file: %v, want EPROTO and the file kept (stat: %v)", err, statErr)
			}
		})
	}
}
