package mmipc

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// copyCase writes src with content and mode, copies it to dst, and checks the copy.
func copyCase(t *testing.T, dir string, content []byte, mode os.FileMode) {
	t.Helper()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	os.Remove(src)
	os.Remove(dst)
	if err := os.WriteFile(src, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(src, mode); err != nil {
		t.Fatal(err)
	}
	if err := CopyFile(src, dst); err != nil {
		t.Fatalf("CopyFile of %d bytes: %v", len(content), err)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		i := 0
		for i < len(got) && i < len(content) && got[i] == content[i] {
			i++
		}
		t.Fatalf("copy of %d bytes differs (got %d bytes, first difference at %d)", len(content), len(got), i)
	}
	if m := modeOf(t, dst); m != mode {
		t.Fatalf("dst mode %v, want %v", m, mode)
	}
	if src, _ := os.ReadFile(src); !bytes.Equal(src, content) {
		t.Fatalf("the source changed")
	}
	wantDir(t, dir, "dst", "src")
}

func TestCopyFile(t *testing.T) {
	dir := t.TempDir()
	copyCase(t, dir, randomBytes(5<<20+123, 1), 0o644)
	copyCase(t, dir, []byte("x"), 0o600)
	copyCase(t, dir, randomBytes(pageSize(), 2), 0o755)
}

// TestCopyFileWindows makes the copy window 3 pages so that files span several windows and end in
// a partial one.
func TestCopyFileWindows(t *testing.T) {
	old := copyWindow
	t.Cleanup(func() { copyWindow = old })
	ps := pageSize()
	copyWindow = int64(3 * ps)
	dir := t.TempDir()
	for i, n := range []int{10*ps + 17, 3 * ps, 6 * ps, 6*ps + 1, 3*ps - 1, ps + 1, 1} {
		copyCase(t, dir, randomBytes(n, uint64(10+i)), 0o640)
	}
}

func TestCopyFileMode(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	// cp keeps the source's permission bits; the umask does not filter them.
	modes := []os.FileMode{0o705, 0o644, 0o600, 0o444, 0o777, 0o640}
	if os.Geteuid() == 0 {
		modes = append(modes, 0o000) // only root can read it back
	}
	for _, mode := range modes {
		copyCase(t, dir, []byte("mode"), mode)
	}
}

func TestCopyFileEmpty(t *testing.T) {
	dir := t.TempDir()
	copyCase(t, dir, nil, 0o640)
	// An empty source also replaces a non-empty destination.
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	os.WriteFile(dst, []byte("old contents"), 0o600)
	if err := CopyFile(src, dst); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dst); err != nil || st.Size() != 0 {
		t.Fatalf("dst after copying an empty file: %v, %v", st, err)
	}
}

func TestCopyFileReplaces(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	os.WriteFile(src, []byte("new"), 0o640)
	os.WriteFile(dst, bytes.Repeat([]byte("old and longer "), 1000), 0o600)
	// Someone holding the old destination keeps the old bytes: it is replaced, not rewritten.
	held, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := CopyFile(src, dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "new" {
		t.Fatalf("dst holds %q", b)
	}
	if m := modeOf(t, dst); m != 0o640 {
		t.Fatalf("dst mode %v", m)
	}
	buf := make([]byte, 3)
	if _, err := held.ReadAt(buf, 0); err != nil || string(buf) != "old" {
		t.Fatalf("the old destination was rewritten in place: %q, %v", buf, err)
	}
	wantDir(t, dir, "dst", "src")

	// A destination that is a symlink is replaced, not followed.
	other := filepath.Join(dir, "other")
	os.WriteFile(other, []byte("untouched"), 0o600)
	link := filepath.Join(dir, "link")
	if err := os.Symlink("other", link); err != nil {
		t.Fatal(err)
	}
	if err := CopyFile(src, link); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(other); string(b) != "untouched" {
		t.Fatalf("CopyFile wrote through the symlink: %q", b)
	}
	if m := modeOf(t, link); !m.IsRegular() {
		t.Fatalf("link is now %v, want a regular file", m)
	}
	wantDir(t, dir, "dst", "link", "other", "src")
}

func TestCopyFileErrors(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	content := []byte("the source")
	os.WriteFile(src, content, 0o644)
	hard := filepath.Join(dir, "hard")
	if err := os.Link(src, hard); err != nil {
		t.Fatal(err)
	}
	soft := filepath.Join(dir, "soft")
	if err := os.Symlink("src", soft); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")

	cases := []struct {
		what     string
		src, dst string
		errno    syscall.Errno
	}{
		{"same path", src, src, syscall.EINVAL},
		{"hard link", src, hard, syscall.EINVAL},
		{"hard link reversed", hard, src, syscall.EINVAL},
		{"symlink to the source", src, soft, syscall.EINVAL},
		{"empty source path", "", filepath.Join(dir, "d1"), syscall.EINVAL},
		{"empty destination path", src, "", syscall.EINVAL},
		{"missing source", missing, filepath.Join(dir, "d2"), syscall.ENOENT},
		{"directory source", sub, filepath.Join(dir, "d3"), syscall.EPROTO},
		{"fifo source", fifo, filepath.Join(dir, "d4"), syscall.EPROTO},
		{"destination directory missing", src, filepath.Join(missing, "d5"), syscall.ENOENT},
	}
	for _, c := range cases {
		var err error
		noBlock(t, "CopyFile "+c.what, func() { err = CopyFile(c.src, c.dst) })
		e := wantErr(t, err, "copy_file", c.src, c.errno)
		if e.Path != c.dst {
			t.Errorf("%s: Path %q, want %q", c.what, e.Path, c.dst)
		}
	}
	if b, err := os.ReadFile(src); err != nil || !bytes.Equal(b, content) {
		t.Fatalf("the source changed: %q, %v", b, err)
	}
	if m := modeOf(t, soft); m&os.ModeSymlink == 0 {
		t.Fatalf("the symlink was replaced")
	}
	wantDir(t, dir, "fifo", "hard", "soft", "src", "sub")

	// A copy that fails after its temporary file exists (the destination is a non-empty directory,
	// so the final rename fails) leaves no temporary file and the destination intact.
	os.WriteFile(filepath.Join(sub, "keep"), []byte("k"), 0o600)
	if err := CopyFile(src, sub); err == nil {
		t.Fatalf("CopyFile onto a directory succeeded")
	}
	wantDir(t, dir, "fifo", "hard", "soft", "src", "sub")
	wantDir(t, sub, "keep")
}

func TestCopyFaultSafe(t *testing.T) {
	// The ordinary case copies.
	src, dst := []byte("hello"), make([]byte, 5)
	if err := copyFaultSafe(dst, src); err != nil || string(dst) != "hello" {
		t.Fatalf("copyFaultSafe = %v, %q", err, dst)
	}

	// A mapping whose file shrank under it: reading faults (SIGBUS), which must become EIO.
	dir := t.TempDir()
	p := filepath.Join(dir, "shrinking")
	n := 4 * pageSize()
	if err := os.WriteFile(p, bytes.Repeat([]byte{0xAB}, n), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := MapFile(p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	debug.SetPanicOnFault(false)
	out := make([]byte, n)
	err = copyFaultSafe(out, r.Bytes())
	if err == nil {
		t.Fatalf("copyFaultSafe from a truncated mapping succeeded")
	}
	if errnoOf(err) != syscall.EIO || !errors.Is(err, syscall.EIO) {
		t.Fatalf("copyFaultSafe = %v (errno %v), want EIO", err, errnoOf(err))
	}
	if debug.SetPanicOnFault(false) {
		t.Fatalf("copyFaultSafe left SetPanicOnFault on")
	}

	// The same through a raw mapping of a file truncated half-way.
	q := filepath.Join(dir, "half")
	if err := os.WriteFile(q, bytes.Repeat([]byte{0xCD}, n), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(q)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, n, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	if err := os.Truncate(q, int64(2*pageSize())); err != nil {
		t.Fatal(err)
	}
	if err := copyFaultSafe(out, m); !errors.Is(err, syscall.EIO) {
		t.Fatalf("copyFaultSafe = %v, want EIO", err)
	}
	// The goroutine goes on working after the recovered fault.
	if err := copyFaultSafe(out[:pageSize()], m[:pageSize()]); err != nil || out[0] != 0xCD {
		t.Fatalf("copy of the part still backed by the file: %v, %#x", err, out[0])
	}
}
