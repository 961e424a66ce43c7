package mmipc

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// wantShared checks that a and b map the same bytes through distinct mappings, writing at both ends
// of the data through each.
func wantShared(t *testing.T, what string, a, b *Region) {
	t.Helper()
	x, y := a.Bytes(), b.Bytes()
	if len(x) == 0 || len(x) != len(y) {
		t.Fatalf("%s: sizes %d and %d", what, len(x), len(y))
	}
	if &x[0] == &y[0] {
		t.Fatalf("%s: the two regions share one mapping; want distinct mappings of the same memory", what)
	}
	n := len(x)
	copy(x, "written through the first")
	y[n-1] = 0xA5
	if !bytes.HasPrefix(y, []byte("written through the first")[:min(n, 25)]) || x[n-1] != 0xA5 {
		t.Fatalf("%s: the bytes are not shared both ways (first sees last byte %#x)", what, x[n-1])
	}
}

// wantReadOnly checks that r reads what w wrote and that a write through r faults without landing.
func wantReadOnly(t *testing.T, what string, w, r *Region) {
	t.Helper()
	w.Bytes()[0] = 0x3C
	b := r.Bytes()
	if b[0] != 0x3C {
		t.Fatalf("%s: the read-only attachment reads %#x, want 0x3c", what, b[0])
	}
	if !faults(func() { b[0] = 0x77 }) {
		t.Fatalf("%s: writing through the read-only attachment did not fault", what)
	}
	if w.Bytes()[0] != 0x3C {
		t.Fatalf("%s: the faulting write landed", what)
	}
}

// mustAttach runs attach and fails the test on an error; the region is closed with the test.
func mustAttach(t *testing.T, what string, attach func() (*Region, error)) *Region {
	t.Helper()
	r, err := attach()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if r == nil {
		t.Fatalf("%s: nil region without an error", what)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestFromFileAnon(t *testing.T) {
	size := 3*pageSize() + 5
	r, err := Anon(size)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	a := mustAttach(t, "FromFile", func() (*Region, error) { return FromFile(r.File()) })
	if a.Size() != size || len(a.Bytes()) != size || len(a.Mapping()) != size || a.Name() != "" {
		t.Fatalf("FromFile of an anonymous region: Size %d len(Bytes) %d len(Mapping) %d Name %q; want %d, %d, %d, \"\"",
			a.Size(), len(a.Bytes()), len(a.Mapping()), a.Name(), size, size, size)
	}
	wantShared(t, "Anon and FromFile", r, a)
	wantShared(t, "FromFile and Anon", a, r)

	ro := mustAttach(t, "FromFileReadOnly", func() (*Region, error) { return FromFileReadOnly(r.File()) })
	if ro.Size() != size || ro.Name() != "" {
		t.Fatalf("FromFileReadOnly: Size %d Name %q", ro.Size(), ro.Name())
	}
	wantReadOnly(t, "FromFileReadOnly of an anonymous region", r, ro)

	fd := mustAttach(t, "FromFd", func() (*Region, error) { return FromFd(r.Fd(), false) })
	if fd.Size() != size || fd.Name() != "" {
		t.Fatalf("FromFd: Size %d Name %q", fd.Size(), fd.Name())
	}
	wantShared(t, "Anon and FromFd", r, fd)
	fdro := mustAttach(t, "FromFd read-only", func() (*Region, error) { return FromFd(r.Fd(), true) })
	wantReadOnly(t, "FromFd(fd, true) of an anonymous region", r, fdro)
}

func TestFromFileNamed(t *testing.T) {
	ps := pageSize()
	const size = 5000
	tmpfs := testDir(t)
	for _, c := range []struct {
		kind string
		dir  Dir
		name string
	}{
		{"tmpfs", tmpfs, "fd-named"},
		{"disk path", Dir(""), filepath.Join(t.TempDir(), "fd-disk-region")},
	} {
		t.Run(c.kind, func(t *testing.T) {
			path := c.name
			if !strings.Contains(c.name, "/") {
				path = c.dir.path(c.name)
			}
			r, err := c.dir.Create(c.name, size, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer c.dir.Unlink(c.name)
			defer r.Close()
			copy(r.Bytes(), "data after the header")

			a := mustAttach(t, "FromFile", func() (*Region, error) { return FromFile(r.File()) })
			if a.Size() != size || len(a.Bytes()) != size || a.Name() != "" {
				t.Fatalf("Size %d len(Bytes) %d Name %q; want %d, %d, \"\"", a.Size(), len(a.Bytes()), a.Name(), size, size)
			}
			// The whole file is mapped, padding included, as Open maps it, and the data starts
			// after the header page.
			m := a.Mapping()
			if want := len(r.Mapping()); len(m) != want || &m[ps] != &a.Bytes()[0] {
				t.Fatalf("Mapping has %d bytes (want %d, the whole file) or does not hold Bytes after the header page", len(m), want)
			}
			if !bytes.Equal(m[:HeaderFixedLen], readHeader(t, path)) {
				t.Fatalf("the mapping does not start with the file's header")
			}
			if !bytes.HasPrefix(a.Bytes(), []byte("data after the header")) {
				t.Fatalf("FromFile reads %q", a.Bytes()[:21])
			}
			wantShared(t, "Create and FromFile", r, a)
			wantShared(t, "FromFile and Create", a, r)

			// A write through the attachment reaches the file, after the header.
			copy(a.Bytes()[1000:], "through the descriptor")
			if err := a.Sync(); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b[ps+1000 : ps+1022]); got != "through the descriptor" {
				t.Fatalf("the file holds %q at header_size+1000", got)
			}

			ro := mustAttach(t, "FromFileReadOnly", func() (*Region, error) { return FromFileReadOnly(r.File()) })
			if ro.Size() != size {
				t.Fatalf("FromFileReadOnly: Size %d", ro.Size())
			}
			wantReadOnly(t, "FromFileReadOnly of a named region", r, ro)

			// A descriptor opened read-only: only the read-only attach may map it.
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			_, err = FromFile(f)
			wantErr(t, err, "attach_fd", path, syscall.EACCES)
			rof := mustAttach(t, "FromFileReadOnly of an O_RDONLY file", func() (*Region, error) { return FromFileReadOnly(f) })
			wantReadOnly(t, "FromFileReadOnly of an O_RDONLY file", r, rof)

			fd := mustAttach(t, "FromFd", func() (*Region, error) { return FromFd(r.Fd(), false) })
			if fd.Size() != size {
				t.Fatalf("FromFd: Size %d", fd.Size())
			}
			wantShared(t, "Create and FromFd", r, fd)

			// A descriptor carries no name: it still attaches after Unlink.
			if err := c.dir.Unlink(c.name); err != nil {
				t.Fatal(err)
			}
			u := mustAttach(t, "FromFile after Unlink", func() (*Region, error) { return FromFile(r.File()) })
			wantShared(t, "FromFile after Unlink", r, u)
		})
	}
}

// TestFromFileOwnership: the Region holds its own duplicate; the caller's file and the Region live
// independently.
func TestFromFileOwnership(t *testing.T) {
	r, err := Anon(100)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f := r.File()
	for i := 0; i < 3; i++ {
		a, err := FromFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if a.Fd() == r.Fd() || a.Fd() < 0 {
			t.Fatalf("the Region uses the caller's descriptor %d (its own: %d), not a duplicate", r.Fd(), a.Fd())
		}
		if fl, err := unix.FcntlInt(uintptr(a.Fd()), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC == 0 {
			t.Fatalf("the Region's duplicate: F_GETFD %#x, %v; want close-on-exec", fl, err)
		}
		a.Bytes()[i] = byte('a' + i)
		if err := a.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if a.Bytes() != nil || a.Size() != 0 {
			t.Fatalf("after Close: Size %d", a.Size())
		}
		// The caller's file is still open and usable.
		if _, err := unix.FcntlInt(uintptr(r.Fd()), unix.F_GETFD, 0); err != nil {
			t.Fatalf("closing the Region closed the caller's descriptor: %v", err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(r.Fd(), &st); err != nil || st.Size != 100 {
			t.Fatalf("the caller's file after Close: size %d, %v", st.Size, err)
		}
	}
	if got := string(r.Bytes()[:3]); got != "abc" {
		t.Fatalf("the writes of the closed attachments: %q, want \"abc\"", got)
	}

	// The caller closes its file at once: the Region keeps working.
	d := testDir(t)
	n, err := d.Create("own", 4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	g, err := os.OpenFile(d.path("own"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := FromFile(g)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(a.Fd()), unix.F_GETFD, 0); err != nil {
		t.Fatalf("the Region's descriptor after the caller closed its file: %v", err)
	}
	wantShared(t, "after the caller closed its file", n, a)
	if err := a.Sync(); err != nil {
		t.Fatalf("Sync after the caller closed its file: %v", err)
	}
	// The Region's own File can be handed on again.
	b := mustAttach(t, "FromFile of a FromFile region's File", func() (*Region, error) { return FromFile(a.File()) })
	wantShared(t, "FromFile of a FromFile region's File", a, b)
	if err := a.Close(); err != nil || a.Close() != nil {
		t.Fatalf("Close: %v", err)
	}
	wantShared(t, "after the first attachment closed", n, b)

	// The sender's Region closes: the receiver's memory lives on.
	s, err := Anon(64)
	if err != nil {
		t.Fatal(err)
	}
	copy(s.Bytes(), "outlives the sender")
	rcv := mustAttach(t, "FromFile", func() (*Region, error) { return FromFile(s.File()) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := string(rcv.Bytes()[:19]); got != "outlives the sender" {
		t.Fatalf("after the sender closed: %q", got)
	}
	rcv.Bytes()[63] = 1
}

// TestFromFileErrors: whatever the descriptor is, if it is not a region that may be mapped as asked,
// FromFile, FromFileReadOnly and FromFd fail with the errno of docs/PROTOCOL.md, "Descriptors".
func TestFromFileErrors(t *testing.T) {
	d := testDir(t)
	ps := pageSize()
	dir := t.TempDir()
	open := func(path string, flag int) *os.File {
		t.Helper()
		f, err := os.OpenFile(path, flag, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	// attachFile runs FromFile or FromFileReadOnly, bounded, and checks the error. The error names
	// the file (its Name) and the descriptor.
	attachFile := func(f *os.File, readOnly bool, errno syscall.Errno, keyword string) {
		t.Helper()
		var r *Region
		var err error
		noBlock(t, "FromFile", func() {
			if readOnly {
				r, err = FromFileReadOnly(f)
			} else {
				r, err = FromFile(f)
			}
		})
		if r != nil {
			r.Close()
			t.Errorf("FromFile(%v, readOnly %v) returned a region along with %v", f, readOnly, err)
		}
		name := ""
		if f != nil {
			name = f.Name()
		}
		e := wantErr(t, err, "attach_fd", name, errno)
		if keyword != "" && !strings.Contains(e.Detail, keyword) {
			t.Errorf("readOnly %v: detail %q does not mention %q", readOnly, e.Detail, keyword)
		}
	}
	attachFd := func(fd int, readOnly bool, errno syscall.Errno) {
		t.Helper()
		var r *Region
		var err error
		noBlock(t, "FromFd", func() { r, err = FromFd(fd, readOnly) })
		if r != nil {
			r.Close()
			t.Errorf("FromFd(%d, %v) returned a region along with %v", fd, readOnly, err)
		}
		e := wantErr(t, err, "attach_fd", "", errno)
		if want := fmt.Sprintf("fd %d", fd); e.Path != want || !strings.Contains(err.Error(), want) {
			t.Errorf("FromFd(%d): Path %q, message %q; want them to say %q", fd, e.Path, err, want)
		}
	}

	t.Run("bad descriptors", func(t *testing.T) {
		attachFile(nil, false, syscall.EBADF, "")
		attachFile(nil, true, syscall.EBADF, "")
		closed, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		closed.Close()
		attachFile(closed, false, syscall.EBADF, "")
		attachFile(closed, true, syscall.EBADF, "")
		attachFd(-1, false, syscall.EBADF)
		attachFd(-1, true, syscall.EBADF)
		attachFd(-1000, false, syscall.EBADF)
		// Numbers that cannot be open: at or above the descriptor limit.
		var rl unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			t.Fatal(err)
		}
		high := []int{1 << 30}
		if rl.Cur < 1<<30 {
			high = append(high, int(rl.Cur))
		}
		for _, fd := range high {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
				t.Fatalf("setup: fd %d: F_GETFD %v, want EBADF", fd, err)
			}
			attachFd(fd, false, syscall.EBADF)
			attachFd(fd, true, syscall.EBADF)
		}
	})

	t.Run("access mode", func(t *testing.T) {
		r, err := d.Create("access", 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		path := d.path("access")
		ro := open(path, os.O_RDONLY)
		attachFile(ro, false, syscall.EACCES, "read-only")
		attachFd(int(ro.Fd()), false, syscall.EACCES)
		if a, err := FromFileReadOnly(ro); err != nil {
			t.Fatalf("FromFileReadOnly of an O_RDONLY descriptor: %v", err)
		} else {
			a.Close()
		}
		wo := open(path, os.O_WRONLY)
		attachFile(wo, false, syscall.EACCES, "write-only")
		attachFile(wo, true, syscall.EACCES, "write-only")
		attachFd(int(wo.Fd()), true, syscall.EACCES)
	})

	t.Run("not regular files", func(t *testing.T) {
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		defer pw.Close()
		attachFile(pr, true, syscall.EPROTO, "regular")
		attachFile(pr, false, syscall.EACCES, "") // the read end is O_RDONLY: the access check comes first
		attachFile(pw, true, syscall.EACCES, "")

		fifo := filepath.Join(dir, "fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		ff := open(fifo, os.O_RDWR) // O_RDWR opens a FIFO at once on Linux
		attachFile(ff, false, syscall.EPROTO, "regular")
		attachFile(ff, true, syscall.EPROTO, "regular")

		sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(sp[0])
		attachFd(sp[0], false, syscall.EPROTO)
		attachFd(sp[0], true, syscall.EPROTO)
		sf := os.NewFile(uintptr(sp[1]), "socket")
		defer sf.Close()
		attachFile(sf, false, syscall.EPROTO, "regular")

		df := open(dir, os.O_RDONLY)
		attachFile(df, true, syscall.EPROTO, "regular")
		attachFile(df, false, syscall.EACCES, "")

		null := open(os.DevNull, os.O_RDWR)
		attachFile(null, false, syscall.EPROTO, "regular")
	})

	t.Run("ordinary files", func(t *testing.T) {
		text := filepath.Join(dir, "text")
		if err := os.WriteFile(text, []byte("hello, world\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		tf := open(text, os.O_RDWR)
		attachFile(tf, false, syscall.EPROTO, "short")
		attachFile(tf, true, syscall.EPROTO, "short")
		zeros := filepath.Join(dir, "zeros")
		if err := os.WriteFile(zeros, make([]byte, 2*ps), 0o600); err != nil {
			t.Fatal(err)
		}
		attachFile(open(zeros, os.O_RDWR), false, syscall.EPROTO, "magic")
		empty := filepath.Join(dir, "empty")
		if err := os.WriteFile(empty, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		attachFile(open(empty, os.O_RDWR), false, syscall.EPROTO, "")
		if b, _ := os.ReadFile(text); string(b) != "hello, world\n" {
			t.Fatalf("a failed attach changed the file: %q", b)
		}
	})

	t.Run("memfds", func(t *testing.T) {
		memfd := func(name string, flags, size, seals int) *os.File {
			t.Helper()
			fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|flags)
			if err != nil {
				t.Skipf("memfd_create: %v", err)
			}
			f := os.NewFile(uintptr(fd), name)
			t.Cleanup(func() { f.Close() })
			if err := unix.Ftruncate(fd, int64(size)); err != nil {
				t.Fatal(err)
			}
			if seals != 0 {
				if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
					t.Fatal(err)
				}
			}
			return f
		}
		// Not sealed at all (sealing not allowed: F_GET_SEALS reports F_SEAL_SEAL), and sealing
		// allowed but no seal: neither is an anonymous region, nor a named one.
		attachFile(memfd("unsealed", 0, 2*ps, 0), false, syscall.EPROTO, "magic")
		attachFile(memfd("sealable", unix.MFD_ALLOW_SEALING, 2*ps, 0), false, syscall.EPROTO, "magic")
		// Sealed against growing only: the shrink seal is the mark.
		attachFile(memfd("grow-sealed", unix.MFD_ALLOW_SEALING, 2*ps, unix.F_SEAL_GROW), false, syscall.EPROTO, "magic")
		// Sealed like an anonymous region, but empty.
		empty := memfd("empty", unix.MFD_ALLOW_SEALING, 0, unix.F_SEAL_SHRINK)
		attachFile(empty, false, syscall.EPROTO, "empty")
		attachFile(empty, true, syscall.EPROTO, "empty")
		attachFd(int(empty.Fd()), false, syscall.EPROTO)
		// Control: the same memfd with a size attaches raw, all of it data.
		ok := memfd("sized", unix.MFD_ALLOW_SEALING, 100, unix.F_SEAL_SHRINK)
		a := mustAttach(t, "FromFile of a shrink-sealed memfd", func() (*Region, error) { return FromFile(ok) })
		if a.Size() != 100 || len(a.Mapping()) != 100 {
			t.Fatalf("shrink-sealed memfd of 100 bytes: Size %d len(Mapping) %d", a.Size(), len(a.Mapping()))
		}
	})

	t.Run("damaged regions", func(t *testing.T) {
		// makeRegion creates a region of size bytes, changes its file with damage, and returns the
		// file opened read-write (the descriptor a peer would send).
		makeRegion := func(name string, size int, damage func(path string)) *os.File {
			t.Helper()
			r, err := d.Create(name, size, 0)
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			damage(d.path(name))
			return open(d.path(name), os.O_RDWR)
		}
		cases := []struct {
			name    string
			damage  func(path string)
			keyword string
		}{
			{"flipped-pid", func(p string) {
				b := readHeader(t, p)
				patchFile(t, p, 24, []byte{b[24] ^ 0x01})
			}, "checksum"},
			{"flipped-magic", func(p string) { patchFile(t, p, 0, []byte{'m'}) }, "magic"},
			{"truncated-one-page", func(p string) { os.Truncate(p, int64(3*ps)) }, "file has"},
			{"extended-one-page", func(p string) { os.Truncate(p, int64(5*ps)) }, "file has"},
			{"truncated-one-byte", func(p string) { os.Truncate(p, int64(4*ps-1)) }, "file has"},
			{"data-size-grown", func(p string) {
				b := bytes.Clone(readHeader(t, p))
				putN(b, 16, uint64(5*ps), 8)
				fixCRC(b)
				patchFile(t, p, 0, b)
			}, "file has"},
		}
		for _, c := range cases {
			f := makeRegion(c.name, 3*ps, c.damage)
			attachFile(f, false, syscall.EPROTO, c.keyword)
			attachFile(f, true, syscall.EPROTO, c.keyword)
			attachFd(int(f.Fd()), false, syscall.EPROTO)
		}
	})
}

// The helper-process pattern: TestFromFileChildProcess re-executes this test binary to run only
// TestFdHelperChild, which finds the mode in fdHelperEnv and the region at fd 3.
const (
	fdHelperEnv     = "MMIPC_TEST_FD_HELPER"
	fdHelperSizeEnv = "MMIPC_TEST_FD_HELPER_SIZE"
)

func fdPattern(mode string) string { return "parent to child: " + mode }
func fdReply(mode string) string   { return "child to parent: " + mode }

// TestFdHelperChild is the child side of TestFromFileChildProcess; run directly it skips.
func TestFdHelperChild(t *testing.T) {
	mode := os.Getenv(fdHelperEnv)
	if mode == "" {
		t.Skip("the child of TestFromFileChildProcess: runs only when re-executed by it")
	}
	size, err := strconv.Atoi(os.Getenv(fdHelperSizeEnv))
	if err != nil {
		t.Fatalf("%s: %v", fdHelperSizeEnv, err)
	}
	f := os.NewFile(3, "region")
	if f == nil {
		t.Fatal("fd 3 is not open")
	}
	defer f.Close()
	// checkPattern checks what the parent wrote: its pattern at 0 and 0x5A in the last byte.
	checkPattern := func(r *Region) {
		t.Helper()
		b := r.Bytes()
		if r.Size() != size || len(b) != size {
			t.Fatalf("%s: Size %d, want %d", mode, r.Size(), size)
		}
		if p := fdPattern(mode); !bytes.HasPrefix(b, []byte(p)) || b[size-1] != 0x5A {
			t.Fatalf("%s: the child reads %q and last byte %#x; want %q and 0x5a", mode, b[:len(p)], b[size-1], p)
		}
	}
	reply := func(r *Region) {
		copy(r.Bytes()[100:], fdReply(mode))
		r.Bytes()[size-2] = 0xC3
	}
	// attachReadOnly attaches f read-only, checks the parent's pattern and that a write at off
	// faults; the attachment is closed when the test ends.
	attachReadOnly := func(off int) *Region {
		t.Helper()
		ro, err := FromFileReadOnly(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ro.Close() })
		checkPattern(ro)
		b := ro.Bytes()
		if !faults(func() { b[off] = 'X' }) {
			t.Fatalf("%s: writing through the child's read-only attachment did not fault", mode)
		}
		return ro
	}
	switch mode {
	case "anon":
		r, err := FromFile(f)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		checkPattern(r)
		reply(r)
	case "named":
		ro := attachReadOnly(50)
		rw, err := FromFile(f)
		if err != nil {
			t.Fatal(err)
		}
		defer rw.Close()
		reply(rw)
		if !bytes.HasPrefix(ro.Bytes()[100:], []byte(fdReply(mode))) {
			t.Fatalf("the read-only attachment does not see the read-write one's reply")
		}
	case "readonly-fd":
		_, err := FromFile(f)
		wantErr(t, err, "attach_fd", "region", syscall.EACCES)
		attachReadOnly(100)
	default:
		t.Fatalf("unknown mode %q", mode)
	}
}

// runFdHelper runs TestFdHelperChild in a new process with f as its fd 3, bounded by a timeout,
// and fails unless the child ran and passed.
func runFdHelper(t *testing.T, mode string, f *os.File, size int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestFdHelperChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), fdHelperEnv+"="+mode, fdHelperSizeEnv+"="+strconv.Itoa(size))
	if os.Getenv("GORACE") == "" {
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0") // a -race child would idle 1 s at exit
	}
	cmd.ExtraFiles = []*os.File{f} // the child's fd 3
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s: the child still ran after 30 s:\n%s", mode, out)
	}
	if err != nil {
		t.Fatalf("%s: the child failed: %v\n%s", mode, err, out)
	}
	// -test.v: a child that skipped or ran nothing must not pass for one that checked.
	if !strings.Contains(string(out), "--- PASS: TestFdHelperChild") {
		t.Fatalf("%s: the child did not run TestFdHelperChild to a pass:\n%s", mode, out)
	}
}

// TestFromFileChildProcess hands regions to a child process through exec.Cmd.ExtraFiles, the way
// the package documents: the child attaches fd 3 with FromFile and both see the same bytes.
func TestFromFileChildProcess(t *testing.T) {
	if os.Getenv(fdHelperEnv) != "" {
		t.Skip("already in the child")
	}
	wantReply := func(t *testing.T, mode string, r *Region) {
		t.Helper()
		b := r.Bytes()
		if !bytes.HasPrefix(b[100:], []byte(fdReply(mode))) || b[len(b)-2] != 0xC3 {
			t.Fatalf("%s: the parent reads %q and %#x; want the child's %q and 0xc3", mode, b[100:100+len(fdReply(mode))], b[len(b)-2], fdReply(mode))
		}
	}
	prepare := func(r *Region, mode string) {
		copy(r.Bytes(), fdPattern(mode))
		r.Bytes()[r.Size()-1] = 0x5A
	}

	t.Run("anon", func(t *testing.T) {
		size := 2*pageSize() + 7
		r, err := Anon(size)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		prepare(r, "anon")
		runFdHelper(t, "anon", r.File(), size)
		wantReply(t, "anon", r)
	})

	t.Run("named", func(t *testing.T) {
		d := testDir(t)
		const size = 10000
		r, err := d.Create("child", size, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		prepare(r, "named")
		runFdHelper(t, "named", r.File(), size)
		wantReply(t, "named", r)
		if r.Bytes()[50] == 'X' {
			t.Fatalf("the child's faulting write landed")
		}
	})

	t.Run("readonly-fd", func(t *testing.T) {
		d := testDir(t)
		const size = 300
		r, err := d.Create("child-ro", size, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		prepare(r, "readonly-fd")
		f, err := os.Open(d.path("child-ro"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		runFdHelper(t, "readonly-fd", f, size)
		if r.Bytes()[100] == 'X' {
			t.Fatalf("the child's faulting write landed")
		}
	})
}

// openFds counts this process's open descriptors, less the Go runtime's network poller (an epoll
// instance and an eventfd), which the runtime opens lazily at a moment of its own choosing.
func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("/proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		if target != "anon_inode:[eventpoll]" && target != "anon_inode:[eventfd]" {
			n++
		}
	}
	return n
}

// sharedMappings counts the shared mappings (MAP_SHARED: "s" in the permissions) in
// /proc/self/maps: the regions. (A path would not do: a created region's mapping shows its temporary
// name, and so do attachments of its descriptor.)
func sharedMappings(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("/proc/self/maps: %v", err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && len(f[1]) == 4 && f[1][3] == 's' {
			n++
		}
	}
	return n
}

// TestFromFileNoLeaks: attaching and closing, and failing to attach, leave no descriptor and no
// mapping behind.
func TestFromFileNoLeaks(t *testing.T) {
	d := testDir(t)
	a, err := Anon(4096)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	n, err := d.Create("leak", 4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	text := filepath.Join(t.TempDir(), "text")
	if err := os.WriteFile(text, []byte("not a region"), 0o600); err != nil {
		t.Fatal(err)
	}
	tf, err := os.OpenFile(text, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tf.Close()
	ro, err := os.Open(d.path("leak"))
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()

	failures := 0
	cycle := func(i int) {
		for _, src := range []*os.File{a.File(), n.File()} {
			r, err := FromFile(src)
			if err != nil {
				failures++
				continue
			}
			r.Bytes()[0] = byte(i)
			r.Close()
			if r, err = FromFileReadOnly(src); err != nil {
				failures++
				continue
			}
			r.Close()
		}
		// Failures after the descriptor was duplicated (EPROTO) and before (EACCES, EBADF).
		for _, err := range []error{
			func() error { _, err := FromFile(tf); return err }(),
			func() error { _, err := FromFile(ro); return err }(),
			func() error { _, err := FromFd(-1, false); return err }(),
		} {
			if err == nil {
				failures++
			}
		}
	}
	cycle(0) // warm-up: whatever the runtime opens once
	fds0 := openFds(t)
	maps0 := sharedMappings(t)
	const cycles = 200
	for i := 1; i <= cycles; i++ {
		cycle(i)
	}
	fds1 := openFds(t)
	maps1 := sharedMappings(t)
	if failures != 0 {
		t.Fatalf("%d unexpected results in %d cycles", failures, cycles+1)
	}
	if fds1 != fds0 {
		t.Errorf("open descriptors after %d attach/close cycles: %d, want %d", cycles, fds1, fds0)
	}
	if maps1 != maps0 || maps0 < 2 {
		t.Errorf("shared mappings after %d cycles: %d, want %d (at least the 2 regions)", cycles, maps1, maps0)
	}
	// The counters do see a leak: one more attachment is one more descriptor and mapping.
	r, err := FromFile(n.File())
	if err != nil {
		t.Fatal(err)
	}
	if got := openFds(t); got != fds0+1 {
		t.Errorf("an open attachment: %d descriptors, want %d", got, fds0+1)
	}
	if got := sharedMappings(t); got != maps0+1 {
		t.Errorf("an open attachment: %d shared mappings, want %d", got, maps0+1)
	}
	r.Close()
	if n.Bytes()[0] != byte(cycles) || a.Bytes()[0] != byte(cycles) {
		t.Errorf("the cycles' writes did not land: %d, %d, want %d", n.Bytes()[0], a.Bytes()[0], byte(cycles))
	}
}
