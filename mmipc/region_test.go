package mmipc

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testDir returns a fresh, private directory for region names: under /dev/shm when it exists (the
// tmpfs regions normally live on), else under the test's temporary directory. It never uses the
// real /dev/shm names.
func testDir(t *testing.T) Dir {
	t.Helper()
	if st, err := os.Stat(DefaultDir); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp(DefaultDir, "mmipc-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return Dir(d)
		}
	}
	return Dir(t.TempDir())
}

func (d Dir) path(name string) string { return filepath.Join(string(d), name) }

// wantErr checks that err is an *Error for op and name with the errno, that errors.Is sees the
// errno (and the matching fs sentinel), and that the message names the op and the name.
func wantErr(t *testing.T, err error, op, name string, errno syscall.Errno) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("%s %q succeeded; want %v (%d)", op, name, errno, int(errno))
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s %q: error %v is a %T, not an *Error", op, name, err, err)
	}
	if e.Errno != errno {
		t.Errorf("%s %q: errno %v (%d), want %v (%d); error: %v", op, name, e.Errno, int(e.Errno), errno, int(errno), err)
	}
	if !errors.Is(err, errno) {
		t.Errorf("%s %q: errors.Is(err, %v) is false", op, name, errno)
	}
	var se syscall.Errno
	if !errors.As(err, &se) || se != errno {
		t.Errorf("%s %q: errors.As(err, *syscall.Errno) = %v", op, name, se)
	}
	sentinels := map[error]bool{
		fs.ErrExist:      errno == syscall.EEXIST,
		fs.ErrNotExist:   errno == syscall.ENOENT,
		fs.ErrPermission: errno == syscall.EACCES || errno == syscall.EPERM,
	}
	for s, want := range sentinels {
		if errors.Is(err, s) != want {
			t.Errorf("%s %q (%v): errors.Is(err, %v) = %v", op, name, errno, s, !want)
		}
	}
	if e.Op != op {
		t.Errorf("Op = %q, want %q", e.Op, op)
	}
	if e.Name != name {
		t.Errorf("Name = %q, want %q", e.Name, name)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "mmipc "+op) {
		t.Errorf("message %q does not start with %q", msg, "mmipc "+op)
	}
	if name != "" && !strings.Contains(msg, strconv.Quote(name)) {
		t.Errorf("message %q does not name %q", msg, name)
	}
	if !strings.Contains(msg, errno.Error()) {
		t.Errorf("message %q does not give the cause %q", msg, errno.Error())
	}
	if got := "mmipc " + e.Describe(); got != msg {
		t.Errorf("Describe() = %q, Error() = %q", e.Describe(), msg)
	}
	return e
}

// dirNames lists a directory, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// wantDir checks that dir holds exactly the names given: in particular no temporary file.
func wantDir(t *testing.T, dir string, names ...string) {
	t.Helper()
	got := dirNames(t, dir)
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("directory %s holds %q, want %q", dir, got, names)
	}
	for _, n := range got {
		if strings.Contains(n, ".mmipc-") {
			t.Errorf("temporary file %s left in %s", n, dir)
		}
	}
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func pageSize() int { return os.Getpagesize() }

func roundUp(n, to int) int { return (n + to - 1) / to * to }

// faults runs f and reports whether it faulted (SIGSEGV or SIGBUS) instead of crashing.
func faults(f func()) (faulted bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); !ok {
				panic(r)
			}
			faulted = true
		}
	}()
	f()
	return false
}

// noBlock runs f and fails the test if it does not return within a few seconds.
func noBlock(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s blocked", what)
	}
}

// patchFile overwrites bytes of a file at off.
func patchFile(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func readHeader(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < HeaderFixedLen {
		t.Fatalf("%s has %d bytes", path, len(b))
	}
	return b[:HeaderFixedLen]
}

func TestRegionLifecycle(t *testing.T) {
	d := testDir(t)
	r, err := d.Create("life", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Name() != "life" || r.Size() != 100 || len(r.Bytes()) != 100 {
		t.Fatalf("Name %q Size %d len(Bytes) %d", r.Name(), r.Size(), len(r.Bytes()))
	}
	ps := pageSize()
	if m := r.Mapping(); len(m) != ps+roundUp(100, ps) || &m[ps] != &r.Bytes()[0] {
		t.Fatalf("Mapping has %d bytes (want %d) or does not hold Bytes after the header page", len(m), 2*ps)
	}
	var st unix.Stat_t
	if r.File() == nil || unix.Fstat(int(r.File().Fd()), &st) != nil || st.Size != int64(2*ps) {
		t.Fatalf("File() does not give the region's file (size %d)", st.Size)
	}
	wantDir(t, string(d), "life")

	r2, err := d.Open("life")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	r3, err := d.OpenReadOnly("life")
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	for _, x := range []*Region{r2, r3} {
		if x.Size() != 100 || x.Name() != "life" {
			t.Fatalf("opened: Size %d Name %q", x.Size(), x.Name())
		}
	}
	copy(r.Bytes(), "written by the creator")
	if got := string(r2.Bytes()[:22]); got != "written by the creator" {
		t.Fatalf("the opener reads %q", got)
	}
	if got := string(r3.Bytes()[:22]); got != "written by the creator" {
		t.Fatalf("the read-only opener reads %q", got)
	}
	r2.Bytes()[99] = 0x5A
	if r.Bytes()[99] != 0x5A || r3.Bytes()[99] != 0x5A {
		t.Fatalf("a write through the opener is not seen")
	}

	if err := d.Unlink("life"); err != nil {
		t.Fatal(err)
	}
	wantDir(t, string(d))
	wantErr(t, func() error { _, err := d.Open("life"); return err }(), "open", "life", syscall.ENOENT)
	wantErr(t, d.Unlink("life"), "unlink", "life", syscall.ENOENT)
	// The attachments still work.
	r.Bytes()[0] = 'W'
	if r2.Bytes()[0] != 'W' || r3.Bytes()[0] != 'W' {
		t.Fatalf("attachments stopped sharing after Unlink")
	}
	for _, x := range []*Region{r, r2, r3} {
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRegionSizes(t *testing.T) {
	d := testDir(t)
	ps := pageSize()
	for _, size := range []int{1, 4095, 4096, 4097, 3*ps + 1, 1 << 20} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			name := fmt.Sprintf("size-%d", size)
			before := time.Now().UnixNano()
			r, err := d.Create(name, size, 0)
			if err != nil {
				t.Fatal(err)
			}
			after := time.Now().UnixNano()
			defer r.Close()
			defer d.Unlink(name)
			if r.Size() != size || len(r.Bytes()) != size {
				t.Fatalf("Size %d, len(Bytes) %d", r.Size(), len(r.Bytes()))
			}
			if !isZero(r.Bytes()) {
				t.Fatalf("a new region is not zero")
			}
			if !isZero(r.Mapping()[HeaderFixedLen:ps]) || !isZero(r.Mapping()[ps+size:]) {
				t.Fatalf("the reserved header bytes or the tail after the data are not zero")
			}
			st, err := os.Stat(d.path(name))
			if err != nil {
				t.Fatal(err)
			}
			if want := int64(ps + roundUp(size, ps)); st.Size() != want || !st.Mode().IsRegular() {
				t.Fatalf("file: size %d mode %v; want a regular file of %d bytes", st.Size(), st.Mode(), want)
			}
			h, err := DecodeHeader(readHeader(t, d.path(name)), st.Size())
			if err != nil {
				t.Fatal(err)
			}
			if h.Version != ProtocolVersion || h.HeaderSize != uint32(ps) || h.DataSize != uint64(size) ||
				h.CreatorPID != uint32(os.Getpid()) || h.Flags != 0 || h.Created < before || h.Created > after {
				t.Fatalf("header on disk %+v (pid %d, created in [%d, %d])", h, os.Getpid(), before, after)
			}

			o, err := d.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			if o.Size() != size || !isZero(o.Bytes()) {
				t.Fatalf("opened: Size %d, zero %v", o.Size(), isZero(o.Bytes()))
			}
			r.Bytes()[0] = 0x11
			r.Bytes()[size-1] = 0xEE
			if o.Bytes()[size-1] != 0xEE || (size > 1 && o.Bytes()[0] != 0x11) {
				t.Fatalf("first and last bytes are not shared")
			}
			if !isZero(o.Mapping()[ps+size:]) {
				t.Fatalf("the write leaked past the data")
			}
		})
	}
}

// TestRegionForeignHeaderSize opens a region whose creator had another page size: the data starts
// where the header says, not at this process's page size.
func TestRegionForeignHeaderSize(t *testing.T) {
	d := testDir(t)
	const hs, ds = 65536, 10
	path := d.path("foreign")
	file := make([]byte, hs+hs)
	copy(file, handHeader(1, hs, ds, 1, 0, 0))
	copy(file[hs:], "0123456789")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := d.Open("foreign")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != ds || string(r.Bytes()) != "0123456789" || len(r.Mapping()) != 2*hs {
		t.Fatalf("Size %d Bytes %q len(Mapping) %d", r.Size(), r.Bytes(), len(r.Mapping()))
	}
	if err := d.Unlink("foreign"); err != nil {
		t.Fatal(err)
	}
}

func modeOf(t *testing.T, path string) fs.FileMode {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode()
}

func TestRegionPermissions(t *testing.T) {
	d := testDir(t)
	check := func(perm, want fs.FileMode) {
		t.Helper()
		name := fmt.Sprintf("perm-%o", perm)
		r, err := d.Create(name, 10, perm)
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		if got := modeOf(t, d.path(name)); got != want {
			t.Errorf("Create(perm %#o): mode %v, want %v", perm, got, want)
		}
		// Unlink reads the header, which modes without owner read forbid to non-root callers.
		if err := os.Remove(d.path(name)); err != nil {
			t.Fatal(err)
		}
	}
	check(0, 0o600)
	check(0o600, 0o600)
	check(0o644, 0o644)
	check(0o640, 0o640)
	check(0o400, 0o400)

	// The mode is exact: the umask does not filter it.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	check(0, 0o600)
	check(0o666, 0o666)
	check(0o777, 0o777)
	check(0o604, 0o604)
	check(0o001, 0o001)
	wantDir(t, string(d))
}

func TestRegionPermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root bypasses file permissions: EACCES cannot be provoked")
	}
	d := testDir(t)
	r, err := d.Create("ro", 10, 0o400)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	_, err = d.Open("ro")
	wantErr(t, err, "open", "ro", syscall.EACCES)
	o, err := d.OpenReadOnly("ro")
	if err != nil {
		t.Fatalf("OpenReadOnly of a 0400 region: %v", err)
	}
	o.Close()
	if err := os.Chmod(d.path("ro"), 0); err != nil {
		t.Fatal(err)
	}
	_, err = d.OpenReadOnly("ro")
	wantErr(t, err, "open", "ro", syscall.EACCES)
	wantErr(t, d.Unlink("ro"), "unlink", "ro", syscall.EACCES)
	if err := os.Chmod(d.path("ro"), 0o600); err != nil {
		t.Fatal(err)
	}

	// A directory the caller cannot write to.
	locked := filepath.Join(string(d), "locked")
	if err := os.Mkdir(locked, 0o500); err != nil {
		t.Fatal(err)
	}
	_, err = Dir(locked).Create("x", 10, 0)
	wantErr(t, err, "create", "x", syscall.EACCES)
}

func TestRegionExists(t *testing.T) {
	d := testDir(t)
	r, err := d.Create("taken", 64, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	copy(r.Bytes(), "original")

	_, err = d.Create("taken", 64, 0)
	e := wantErr(t, err, "create", "taken", syscall.EEXIST)
	if e.Path != d.path("taken") {
		t.Errorf("Path = %q, want %q", e.Path, d.path("taken"))
	}
	if !strings.Contains(err.Error(), d.path("taken")) {
		t.Errorf("message %q does not give the path", err)
	}
	_, err = d.Create("taken", 999999, 0o666)
	wantErr(t, err, "create", "taken", syscall.EEXIST)
	// The existing region is untouched.
	o, err := d.Open("taken")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.Size() != 64 || string(o.Bytes()[:8]) != "original" || modeOf(t, d.path("taken")) != 0o640 {
		t.Fatalf("a failed Create changed the region")
	}

	// An ordinary file and a directory hold names too.
	if err := os.WriteFile(d.path("plain"), []byte("user data"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = d.Create("plain", 10, 0)
	wantErr(t, err, "create", "plain", syscall.EEXIST)
	if b, _ := os.ReadFile(d.path("plain")); string(b) != "user data" {
		t.Fatalf("Create changed an ordinary file: %q", b)
	}
	if err := os.Mkdir(d.path("adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = d.Create("adir", 10, 0)
	wantErr(t, err, "create", "adir", syscall.EEXIST)
	wantDir(t, string(d), "taken", "plain", "adir")
}

func TestRegionNotExist(t *testing.T) {
	d := testDir(t)
	_, err := d.Open("missing")
	wantErr(t, err, "open", "missing", syscall.ENOENT)
	_, err = d.OpenReadOnly("missing")
	wantErr(t, err, "open", "missing", syscall.ENOENT)
	wantErr(t, d.Unlink("missing"), "unlink", "missing", syscall.ENOENT)
	// A directory that does not exist.
	nodir := Dir(filepath.Join(string(d), "no", "such", "dir"))
	_, err = nodir.Create("x", 10, 0)
	wantErr(t, err, "create", "x", syscall.ENOENT)
	_, err = nodir.Open("x")
	wantErr(t, err, "open", "x", syscall.ENOENT)
	wantDir(t, string(d))
}

// TestRegionNotARegion: whatever holds the name, if it is not a valid region, Open, OpenReadOnly
// and Unlink say EPROTO and leave it alone.
func TestRegionNotARegion(t *testing.T) {
	d := testDir(t)
	ps := pageSize()

	// makeRegion creates a valid region of size bytes and returns its file's path.
	makeRegion := func(name string, size int) string {
		r, err := d.Create(name, size, 0)
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		return d.path(name)
	}
	cases := []struct {
		name    string
		setup   func(path string)
		keyword string
	}{
		{"empty", func(p string) { os.WriteFile(p, nil, 0o600) }, "short"},
		{"text", func(p string) { os.WriteFile(p, []byte("hello, world\n"), 0o600) }, "short"},
		{"zeros", func(p string) { os.WriteFile(p, make([]byte, 2*ps), 0o600) }, "magic"},
		{"elf-like", func(p string) { os.WriteFile(p, append([]byte("\x7fELF"), make([]byte, 3*ps)...), 0o755) }, "magic"},
		{"version-2", func(p string) {
			makeRegion(filepath.Base(p), 100)
			b := bytes.Clone(readHeader(t, p))
			putN(b, 8, 2, 4)
			fixCRC(b)
			patchFile(t, p, 0, b)
		}, "version"},
		{"version-0", func(p string) {
			makeRegion(filepath.Base(p), 100)
			b := bytes.Clone(readHeader(t, p))
			putN(b, 8, 0, 4)
			fixCRC(b)
			patchFile(t, p, 0, b)
		}, "version"},
		{"version-2-stale-crc", func(p string) {
			makeRegion(filepath.Base(p), 100)
			b := make([]byte, 4)
			putN(b, 0, 2, 4)
			patchFile(t, p, 8, b)
		}, ""},
		{"damaged", func(p string) {
			makeRegion(filepath.Base(p), 100)
			patchFile(t, p, 24, []byte{0xFF})
		}, "checksum"},
		{"truncated-one-page", func(p string) {
			makeRegion(filepath.Base(p), 3*ps)
			os.Truncate(p, int64(3*ps))
		}, "file has"},
		{"grown-one-page", func(p string) {
			makeRegion(filepath.Base(p), 3*ps)
			os.Truncate(p, int64(5*ps))
		}, "file has"},
		{"truncated-one-byte", func(p string) {
			makeRegion(filepath.Base(p), 3*ps)
			os.Truncate(p, int64(4*ps-1))
		}, "file has"},
		{"truncated-to-header", func(p string) {
			makeRegion(filepath.Base(p), 3*ps)
			os.Truncate(p, int64(ps))
		}, "file has"},
		{"truncated-to-10", func(p string) {
			makeRegion(filepath.Base(p), 3*ps)
			os.Truncate(p, 10)
		}, "short"},
		{"truncated-to-0", func(p string) {
			makeRegion(filepath.Base(p), 3*ps)
			os.Truncate(p, 0)
		}, "short"},
		{"directory", func(p string) { os.Mkdir(p, 0o755) }, "regular"},
		{"fifo", func(p string) {
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "regular"},
		{"socket", func(p string) {
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Skipf("unix socket: %v", err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			t.Cleanup(func() { l.Close() })
		}, "regular"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := d.path(c.name)
			c.setup(path)
			before, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			var content []byte
			if before.Mode().IsRegular() {
				content, _ = os.ReadFile(path)
			}
			for _, op := range []struct {
				op string
				f  func() error
			}{
				{"open", func() error { r, err := d.Open(c.name); closeIf(r); return err }},
				{"open", func() error { r, err := d.OpenReadOnly(c.name); closeIf(r); return err }},
				{"unlink", func() error { return d.Unlink(c.name) }},
			} {
				var err error
				noBlock(t, op.op+" "+c.name, func() { err = op.f() })
				e := wantErr(t, err, op.op, c.name, syscall.EPROTO)
				if c.keyword != "" && !strings.Contains(e.Detail, c.keyword) {
					t.Errorf("%s: detail %q does not mention %q", op.op, e.Detail, c.keyword)
				}
				if e.Path != path {
					t.Errorf("%s: Path %q, want %q", op.op, e.Path, path)
				}
			}
			after, err := os.Lstat(path)
			if err != nil {
				t.Fatalf("the file is gone: %v", err)
			}
			if !os.SameFile(before, after) || after.Size() != before.Size() || after.Mode() != before.Mode() {
				t.Fatalf("the file changed: %v %d -> %v %d", before.Mode(), before.Size(), after.Mode(), after.Size())
			}
			if content != nil {
				if now, _ := os.ReadFile(path); !bytes.Equal(now, content) {
					t.Fatalf("the file's content changed")
				}
			}
		})
	}

	// Devices are not regions either (opened read-only: nothing here may write to /dev).
	for _, dev := range []string{"/dev/null", "/dev/zero"} {
		if _, err := os.Stat(dev); err != nil {
			continue
		}
		var err error
		noBlock(t, "open "+dev, func() { var r *Region; r, err = d.OpenReadOnly(dev); closeIf(r) })
		wantErr(t, err, "open", dev, syscall.EPROTO)
	}
}

func closeIf(r *Region) {
	if r != nil {
		r.Close()
	}
}

func TestRegionSymlink(t *testing.T) {
	d := testDir(t)
	r, err := d.Create("target", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := os.Symlink("target", d.path("link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", d.path("dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(d.path("target"), d.path("abslink")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"link", "abslink", "dangling"} {
		_, err := d.Open(name)
		wantErr(t, err, "open", name, syscall.ELOOP)
		_, err = d.OpenReadOnly(name)
		wantErr(t, err, "open", name, syscall.ELOOP)
		wantErr(t, d.Unlink(name), "unlink", name, syscall.ELOOP)
		_, err = d.Create(name, 10, 0)
		wantErr(t, err, "create", name, syscall.ELOOP)
		// The same through a path.
		p := d.path(name)
		_, err = Dir("").Open(p)
		wantErr(t, err, "open", p, syscall.ELOOP)
		wantErr(t, Dir("").Unlink(p), "unlink", p, syscall.ELOOP)
		_, err = Dir("").Create(p, 10, 0)
		wantErr(t, err, "create", p, syscall.ELOOP)
	}
	if _, err := os.Lstat(d.path("nowhere")); err == nil {
		t.Errorf("Create followed the dangling symlink")
	}
	wantDir(t, string(d), "abslink", "dangling", "link", "target")
	for _, l := range []string{"link", "abslink", "dangling"} {
		if modeOf(t, d.path(l))&fs.ModeSymlink == 0 {
			t.Errorf("%s is no longer a symlink", l)
		}
	}
	if o, err := d.Open("target"); err != nil {
		t.Fatalf("the target region was damaged: %v", err)
	} else {
		o.Close()
	}
}

func TestRegionInvalid(t *testing.T) {
	d := testDir(t)
	names := []string{"", ".", "..", ".x", "a b", "a\x00b", "é", strings.Repeat("a", 201), "x/", "dir/.", "dir/..", "/abs/a\x00b"}
	for _, name := range names {
		_, err := d.Create(name, 10, 0)
		wantErr(t, err, "create", name, syscall.EINVAL)
		_, err = d.Open(name)
		wantErr(t, err, "open", name, syscall.EINVAL)
		_, err = d.OpenReadOnly(name)
		wantErr(t, err, "open", name, syscall.EINVAL)
		wantErr(t, d.Unlink(name), "unlink", name, syscall.EINVAL)
	}
	ps := pageSize()
	for _, size := range []int{0, -1, -4096, math.MinInt, math.MaxInt, math.MaxInt - ps, math.MaxInt - 2*ps + 2} {
		_, err := d.Create("badsize", size, 0)
		wantErr(t, err, "create", "badsize", syscall.EINVAL)
	}
	for _, perm := range []fs.FileMode{0o1000, 0o2600, 0o4600, 0o7777, fs.ModeDir | 0o600, fs.ModeSetuid | 0o600, fs.ModeSticky, fs.ModeSymlink | 0o777, fs.ModePerm + 1} {
		_, err := d.Create("badmode", 10, perm)
		wantErr(t, err, "create", "badmode", syscall.EINVAL)
	}
	wantDir(t, string(d))
}

// TestRegionPath: a name containing '/' is a file-system path, relative to the working directory,
// and ignores the Dir.
func TestRegionPath(t *testing.T) {
	base := t.TempDir()
	abs := filepath.Join(base, "disk-region")
	nowhere := Dir("/nonexistent-mmipc-dir")
	r, err := nowhere.Create(abs, 5000, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	o, err := Dir("").Open(abs)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.Size() != 5000 || o.Name() != abs {
		t.Fatalf("Size %d Name %q", o.Size(), o.Name())
	}
	r.Bytes()[4999] = 9
	if o.Bytes()[4999] != 9 {
		t.Fatalf("not shared")
	}

	t.Chdir(base)
	rel, err := nowhere.Open("./disk-region")
	if err != nil {
		t.Fatalf("relative path: %v", err)
	}
	rel.Close()
	if err := os.Mkdir("sub", 0o755); err != nil {
		t.Fatal(err)
	}
	r2, err := nowhere.Create("sub/r2", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	r2.Close()
	wantDir(t, filepath.Join(base, "sub"), "r2")
	if err := nowhere.Unlink("sub/r2"); err != nil {
		t.Fatal(err)
	}
	if err := nowhere.Unlink(abs); err != nil {
		t.Fatal(err)
	}
	wantDir(t, base, "sub")
}

func TestRegionUnlinkOrdinaryFile(t *testing.T) {
	d := testDir(t)
	p := d.path("notes.txt")
	if err := os.WriteFile(p, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := wantErr(t, d.Unlink("notes.txt"), "unlink", "notes.txt", syscall.EPROTO)
	if e.Detail == "" {
		t.Errorf("no detail says why")
	}
	// And as a path.
	wantErr(t, Dir("").Unlink(p), "unlink", p, syscall.EPROTO)
	if b, err := os.ReadFile(p); err != nil || string(b) != "precious" {
		t.Fatalf("Unlink touched an ordinary file: %q, %v", b, err)
	}
}

func TestRegionUnlinkWhileAttached(t *testing.T) {
	d := testDir(t)
	r, err := d.Create("u", 4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	o, err := d.Open("u")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := d.Unlink("u"); err != nil {
		t.Fatal(err)
	}
	copy(r.Bytes(), "still here")
	if string(o.Bytes()[:10]) != "still here" {
		t.Fatalf("memory stopped being shared after Unlink")
	}
	if err := r.Sync(); err != nil {
		t.Fatalf("Sync after Unlink: %v", err)
	}
	// The name is free again, and a new region under it is new memory.
	n, err := d.Create("u", 4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if !isZero(n.Bytes()) {
		t.Fatalf("the new region sees the old one's bytes")
	}
	n.Bytes()[0] = 'N'
	if r.Bytes()[0] != 's' {
		t.Fatalf("the new region shares memory with the unlinked one")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if string(o.Bytes()[:10]) != "still here" {
		t.Fatalf("closing one attachment broke the other")
	}
	if err := d.Unlink("u"); err != nil {
		t.Fatal(err)
	}
}

func TestRegionClose(t *testing.T) {
	d := testDir(t)
	r, err := d.Create("c", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if r.Bytes() != nil || r.Size() != 0 || r.Mapping() != nil {
		t.Fatalf("after Close: Bytes %v Size %d Mapping %d bytes", r.Bytes(), r.Size(), len(r.Mapping()))
	}
	if err := r.Sync(); err == nil {
		t.Fatalf("Sync after Close succeeded")
	} else {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("Sync after Close: %T %v", err, err)
		}
	}
	// Closing does not remove the name.
	o, err := d.Open("c")
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	a, err := Anon(10)
	if err != nil {
		t.Fatal(err)
	}
	if a.Close() != nil || a.Close() != nil || a.Bytes() != nil {
		t.Fatalf("anonymous Close")
	}
}

// TestRegionConcurrentClose: "A Region is safe for concurrent use", so its methods may race with
// Close (run with -race).
func TestRegionConcurrentClose(t *testing.T) {
	d := testDir(t)
	for i := 0; i < 20; i++ {
		r, err := d.Create("cc", 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				switch g {
				case 0, 1:
					if err := r.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				case 2:
					_ = r.Size()
					_ = len(r.Bytes())
				case 3:
					_ = r.Sync() // may fail once closed, but must not crash
				}
			}()
		}
		close(start)
		wg.Wait()
		if err := d.Unlink("cc"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRegionSync(t *testing.T) {
	d := testDir(t)
	r, err := d.Create("s", 10000, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	copy(r.Bytes()[5000:], "synced")
	if err := r.Sync(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(d.path("s"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b[pageSize()+5000 : pageSize()+5006]); got != "synced" {
		t.Fatalf("the file holds %q", got)
	}
	o, err := d.OpenReadOnly("s")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := o.Sync(); err != nil {
		t.Fatalf("Sync of a read-only attachment: %v", err)
	}
	a, err := Anon(100)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Sync(); err != nil {
		t.Fatalf("Sync of an anonymous region: %v", err)
	}
}

func TestRegionReadOnlyFaults(t *testing.T) {
	d := testDir(t)
	r, err := d.Create("ro", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Bytes()[0] = 7
	o, err := d.OpenReadOnly("ro")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.Bytes()[0] != 7 {
		t.Fatalf("read-only attachment reads %d", o.Bytes()[0])
	}
	b := o.Bytes()
	if !faults(func() { b[1] = 1 }) {
		t.Fatalf("writing through a read-only attachment did not fault")
	}
	if r.Bytes()[1] != 0 {
		t.Fatalf("the write through the read-only attachment landed")
	}
}

// TestRegionCreateRace: of creators racing for one name, exactly one wins and the others get
// EEXIST, and no temporary file is left behind.
func TestRegionCreateRace(t *testing.T) {
	d := testDir(t)
	const racers, rounds = 8, 50
	for round := 0; round < rounds; round++ {
		var wg sync.WaitGroup
		start := make(chan struct{})
		regions := make([]*Region, racers)
		errs := make([]error, racers)
		for i := 0; i < racers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				regions[i], errs[i] = d.Create("race", 1000+i, 0)
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for i := range racers {
			if errs[i] == nil {
				if winner >= 0 {
					t.Fatalf("round %d: two winners, %d and %d", round, winner, i)
				}
				winner = i
				continue
			}
			wantErr(t, errs[i], "create", "race", syscall.EEXIST)
		}
		if winner < 0 {
			t.Fatalf("round %d: no winner", round)
		}
		o, err := d.Open("race")
		if err != nil {
			t.Fatal(err)
		}
		if o.Size() != 1000+winner {
			t.Fatalf("round %d: the region has the size %d, the winner asked %d", round, o.Size(), 1000+winner)
		}
		o.Close()
		regions[winner].Close()
		wantDir(t, string(d), "race")
		if err := d.Unlink("race"); err != nil {
			t.Fatal(err)
		}
	}
	wantDir(t, string(d))
}

// TestRegionOpenRace: an opener racing a creator sees either no region (ENOENT) or the whole
// region, never a half-made one (EPROTO).
func TestRegionOpenRace(t *testing.T) {
	d := testDir(t)
	const rounds, size = 50, 12345
	for round := 0; round < rounds; round++ {
		name := fmt.Sprintf("open-race-%d", round)
		var wg sync.WaitGroup
		start := make(chan struct{})
		var created *Region
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			var err error
			if created, err = d.Create(name, size, 0o640); err != nil {
				t.Errorf("Create: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			deadline := time.Now().Add(10 * time.Second)
			for attempt := 0; ; attempt++ {
				var r *Region
				var err error
				if attempt%2 == 0 {
					r, err = d.Open(name)
				} else {
					r, err = d.OpenReadOnly(name)
				}
				if err == nil {
					if r.Size() != size || len(r.Mapping()) != pageSize()+roundUp(size, pageSize()) || !isZero(r.Bytes()) {
						t.Errorf("opened a region of %d bytes (mapping %d), zero %v", r.Size(), len(r.Mapping()), isZero(r.Bytes()))
					}
					r.Close()
					return
				}
				var e *Error
				if !errors.As(err, &e) || e.Errno != syscall.ENOENT {
					t.Errorf("the opener saw %v", err)
					return
				}
				if time.Now().After(deadline) {
					t.Errorf("the region never appeared")
					return
				}
			}
		}()
		close(start)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		created.Close()
		if err := d.Unlink(name); err != nil {
			t.Fatal(err)
		}
	}
	wantDir(t, string(d))
}

func TestAnon(t *testing.T) {
	ps := pageSize()
	for _, size := range []int{1, 4095, 4096, 4097, 3*ps + 1, 1<<20 + 3} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			r, err := Anon(size)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.Size() != size || len(r.Bytes()) != size || len(r.Mapping()) != size || r.Name() != "" || r.File() == nil {
				t.Fatalf("Size %d len(Bytes) %d len(Mapping) %d Name %q", r.Size(), len(r.Bytes()), len(r.Mapping()), r.Name())
			}
			if !isZero(r.Bytes()) {
				t.Fatalf("not zero")
			}
			fd := int(r.File().Fd())
			seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
			if err != nil {
				t.Fatal(err)
			}
			// PROTOCOL.md: sealed with F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL.
			if want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL; seals&want != want {
				t.Fatalf("seals %#x lack some of %#x", seals, want)
			}
			if err := unix.Ftruncate(fd, int64(size)+int64(ps)); err != unix.EPERM {
				t.Fatalf("ftruncate larger of a sealed anonymous region: %v, want EPERM", err)
			}
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_WRITE); err != unix.EPERM {
				t.Fatalf("adding a seal: %v, want EPERM (F_SEAL_SEAL)", err)
			}
			for _, smaller := range []int64{int64(size) - 1, 0} {
				if err := unix.Ftruncate(fd, smaller); err != unix.EPERM {
					t.Fatalf("ftruncate(%d) of a sealed anonymous region: %v, want EPERM", smaller, err)
				}
			}
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil || st.Size < int64(size) {
				t.Fatalf("memfd size %d, %v", st.Size, err)
			}
			// Another mapping of the same memory (as a child would have) shares the bytes.
			m, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Munmap(m)
			m[0] = 0xCD
			r.Bytes()[size-1] = 0xAB
			if m[size-1] != 0xAB || (size > 1 && r.Bytes()[0] != 0xCD) {
				t.Fatalf("the memfd's mappings do not share")
			}
		})
	}
}

func TestAnonInvalid(t *testing.T) {
	for _, size := range []int{0, -1, math.MinInt, math.MaxInt, math.MaxInt - pageSize()} {
		r, err := Anon(size)
		if r != nil {
			t.Errorf("Anon(%d) returned a region", size)
		}
		wantErr(t, err, "anon", "", syscall.EINVAL)
	}
}

func TestMapFile(t *testing.T) {
	dir := t.TempDir()
	ps := pageSize()
	content := make([]byte, 3*ps+5)
	for i := range content {
		content[i] = byte(i*7 + 3)
	}
	p := filepath.Join(dir, "data")
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("read-only", func(t *testing.T) {
		r, err := MapFile(p, false)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if r.Size() != len(content) || !bytes.Equal(r.Bytes(), content) || r.Name() != p || len(r.Mapping()) != len(content) {
			t.Fatalf("Size %d Name %q equal %v", r.Size(), r.Name(), bytes.Equal(r.Bytes(), content))
		}
		b := r.Bytes()
		if !faults(func() { b[0] ^= 0xFF }) {
			t.Fatalf("writing a read-only mapping did not fault")
		}
		if err := r.Sync(); err != nil {
			t.Fatalf("Sync: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if now, _ := os.ReadFile(p); !bytes.Equal(now, content) {
			t.Fatalf("a read-only mapping changed the file")
		}
	})

	t.Run("writable", func(t *testing.T) {
		r, err := MapFile(p, true)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if !bytes.Equal(r.Bytes(), content) {
			t.Fatalf("contents differ")
		}
		copy(r.Bytes()[ps-3:], "across a page")
		r.Bytes()[len(content)-1] = '!'
		if err := r.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		now, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(content)
		copy(want[ps-3:], "across a page")
		want[len(want)-1] = '!'
		if !bytes.Equal(now, want) {
			t.Fatalf("the writes did not reach the file")
		}
		if st, _ := os.Stat(p); st.Size() != int64(len(content)) {
			t.Fatalf("the file's size changed to %d", st.Size())
		}
	})

	t.Run("symlink followed", func(t *testing.T) {
		l := filepath.Join(dir, "link")
		if err := os.Symlink("data", l); err != nil {
			t.Fatal(err)
		}
		r, err := MapFile(l, false)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if r.Size() != len(content) {
			t.Fatalf("Size %d", r.Size())
		}
	})

	t.Run("one byte", func(t *testing.T) {
		one := filepath.Join(dir, "one")
		os.WriteFile(one, []byte{'1'}, 0o600)
		r, err := MapFile(one, true)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if r.Size() != 1 || r.Bytes()[0] != '1' {
			t.Fatalf("Size %d", r.Size())
		}
	})

	t.Run("errors", func(t *testing.T) {
		empty := filepath.Join(dir, "empty")
		os.WriteFile(empty, nil, 0o600)
		sub := filepath.Join(dir, "sub")
		os.Mkdir(sub, 0o755)
		fifo := filepath.Join(dir, "fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		missing := filepath.Join(dir, "missing")
		for _, w := range []bool{false, true} {
			cases := []struct {
				path  string
				errno syscall.Errno
			}{
				{"", syscall.EINVAL},
				{empty, syscall.EINVAL},
				{sub, syscall.EPROTO},
				{fifo, syscall.EPROTO},
				{missing, syscall.ENOENT},
				{filepath.Join(missing, "x"), syscall.ENOENT},
			}
			if !w {
				cases = append(cases, struct {
					path  string
					errno syscall.Errno
				}{"/dev/null", syscall.EPROTO})
			}
			for _, c := range cases {
				var r *Region
				var err error
				noBlock(t, "MapFile "+c.path, func() { r, err = MapFile(c.path, w) })
				if r != nil {
					r.Close()
				}
				wantErr(t, err, "map_file", c.path, c.errno)
			}
		}
		if _, err := os.Stat(missing); err == nil {
			t.Fatalf("MapFile created a missing file")
		}
	})

	t.Run("permission", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root bypasses file permissions")
		}
		ro := filepath.Join(dir, "readonly")
		os.WriteFile(ro, []byte("x"), 0o400)
		if r, err := MapFile(ro, false); err != nil {
			t.Fatal(err)
		} else {
			r.Close()
		}
		_, err := MapFile(ro, true)
		wantErr(t, err, "map_file", ro, syscall.EACCES)
	})
}

// TestErrorMessage pins the message format documented on Describe.
func TestErrorMessage(t *testing.T) {
	cases := []struct {
		e    Error
		want string
	}{
		{Error{Op: "create", Name: "x", Path: "/dev/shm/x", Errno: syscall.EEXIST}, `mmipc create "x" (/dev/shm/x): file exists`},
		{Error{Op: "open", Name: "/p/x", Path: "/p/x", Errno: syscall.EPROTO, Detail: "bad magic"}, `mmipc open "/p/x": protocol error: bad magic`},
		{Error{Op: "anon", Errno: syscall.EINVAL, Detail: "size 0"}, `mmipc anon: invalid argument: size 0`},
	}
	for _, c := range cases {
		if got := c.e.Error(); got != c.want {
			t.Errorf("Error() = %q, want %q", got, c.want)
		}
		if !errors.Is(&c.e, c.e.Errno) {
			t.Errorf("errors.Is(%v, %v) is false", &c.e, c.e.Errno)
		}
	}
	if errnoOf(errors.New("no errno")) != syscall.EIO {
		t.Errorf("errnoOf of a plain error is not EIO")
	}
	if errnoOf(fmt.Errorf("wrapped: %w", &os.PathError{Op: "open", Path: "x", Err: syscall.ENOSPC})) != syscall.ENOSPC {
		t.Errorf("errnoOf does not dig through wrapping")
	}
}
