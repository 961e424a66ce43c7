package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mmipc/mmipc/mmipc"
)

// regionDir points $MMIPC_DIR at a fresh directory under /dev/shm, removed after the test.
func regionDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "mmipc-cmd-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	t.Setenv("MMIPC_DIR", dir)
	return dir
}

// result is what one run of the command printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

func mmipcRun(args ...string) result {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return result{out.String(), errOut.String(), code}
}

// want runs the command and fails the test unless it exits with code.
func want(t *testing.T, code int, args ...string) result {
	t.Helper()
	r := mmipcRun(args...)
	if r.code != code {
		t.Fatalf("mmipc %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	return r
}

func create(t *testing.T, name string, size int, perm os.FileMode) *mmipc.Region {
	t.Helper()
	r, err := mmipc.Create(name, size, perm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// createClosed makes a region nobody holds.
func createClosed(t *testing.T, name string, size int) {
	t.Helper()
	if err := create(t, name, size, 0).Close(); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func TestLsEmpty(t *testing.T) {
	regionDir(t)
	if r := want(t, 0, "ls"); r.stdout != "NAME  KIND  SIZE  AGE  CREATOR  ATTACHED\n" || r.stderr != "" {
		t.Errorf("ls of an empty directory: %q, stderr %q", r.stdout, r.stderr)
	}
	if r := want(t, 0, "ls", "--json"); r.stdout != "[]\n" {
		t.Errorf("ls --json of an empty directory: %q", r.stdout)
	}
}

func TestLsMissingDir(t *testing.T) {
	dir := regionDir(t)
	t.Setenv("MMIPC_DIR", filepath.Join(dir, "nonexistent"))
	r := want(t, 1, "ls")
	if !strings.HasPrefix(r.stderr, "mmipc: ls: ") || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("stderr %q", r.stderr)
	}
}

// lsEntry is "mmipc ls --json"'s element, with the wire names spelled out independently of the
// command's own type.
type lsEntry struct {
	Name         string    `json:"name"`
	Path         string    `json:"path"`
	Kind         string    `json:"kind"`
	Ring         bool      `json:"ring"`
	Size         int       `json:"size"`
	FileSize     int64     `json:"file_size"`
	HeaderSize   int       `json:"header_size"`
	Mode         string    `json:"mode"`
	UID          uint32    `json:"uid"`
	GID          uint32    `json:"gid"`
	CreatorPID   int       `json:"creator_pid"`
	CreatorAlive bool      `json:"creator_alive"`
	Created      time.Time `json:"created"`
	Attached     bool      `json:"attached"`
	Note         string    `json:"note"`
}

func lsJSON(t *testing.T, args ...string) map[string]lsEntry {
	t.Helper()
	r := want(t, 0, append([]string{"ls", "--json"}, args...)...)
	var list []lsEntry
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	if err := dec.Decode(&list); err != nil {
		t.Fatalf("ls --json: %v\n%s", err, r.stdout)
	}
	m := map[string]lsEntry{}
	for i, e := range list {
		if i > 0 && list[i-1].Name >= e.Name {
			t.Errorf("ls --json not sorted by name: %q before %q", list[i-1].Name, e.Name)
		}
		m[e.Name] = e
	}
	return m
}

func TestLs(t *testing.T) {
	dir := regionDir(t)
	before := time.Now()
	alpha := create(t, "alpha", 100, 0o640)
	q, err := mmipc.CreateRing("beta", 1024, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	createClosed(t, "gamma", 5000)
	os.WriteFile(filepath.Join(dir, "plain.txt"), []byte("not a region"), 0o600)
	page := os.Getpagesize()

	got := lsJSON(t)
	if len(got) != 3 {
		t.Fatalf("ls --json lists %d entries, want alpha, beta, gamma: %v", len(got), got)
	}
	pid := os.Getpid()
	for _, w := range []lsEntry{
		{Name: "alpha", Kind: "region", Size: 100, FileSize: int64(2 * page), Mode: "0640", Attached: true},
		{Name: "beta", Kind: "ring", Ring: true, Size: mmipc.RingControlSize + 1024, FileSize: int64(2 * page), Mode: "0600", Attached: true},
		{Name: "gamma", Kind: "region", Size: 5000, FileSize: int64(page + (5000+page-1)/page*page), Mode: "0600", Attached: false},
	} {
		e, ok := got[w.Name]
		switch {
		case !ok:
			t.Errorf("%s not listed", w.Name)
			continue
		case e.Path != filepath.Join(dir, w.Name):
			t.Errorf("%s: path %q", w.Name, e.Path)
		case e.Kind != w.Kind || e.Ring != w.Ring:
			t.Errorf("%s: kind %q ring %v, want %q %v", w.Name, e.Kind, e.Ring, w.Kind, w.Ring)
		case e.Size != w.Size || e.FileSize != w.FileSize || e.HeaderSize != page:
			t.Errorf("%s: size %d file_size %d header_size %d, want %d %d %d", w.Name, e.Size, e.FileSize, e.HeaderSize, w.Size, w.FileSize, page)
		case e.Mode != w.Mode:
			t.Errorf("%s: mode %q, want %q", w.Name, e.Mode, w.Mode)
		case e.UID != uint32(os.Getuid()) || e.GID != uint32(os.Getgid()):
			t.Errorf("%s: uid %d gid %d", w.Name, e.UID, e.GID)
		case e.CreatorPID != pid || !e.CreatorAlive:
			t.Errorf("%s: creator_pid %d alive %v, want %d alive", w.Name, e.CreatorPID, e.CreatorAlive, pid)
		case e.Created.Before(before.Add(-time.Second)) || e.Created.After(time.Now()):
			t.Errorf("%s: created %v, not during the test (from %v)", w.Name, e.Created, before)
		case e.Attached != w.Attached:
			t.Errorf("%s: attached %v, want %v", w.Name, e.Attached, w.Attached)
		}
	}
	// The raw JSON: created is RFC 3339 with nanoseconds, mode a string.
	raw := want(t, 0, "ls", "--json").stdout
	for _, s := range []string{`"mode": "0640"`, `"size": 100,`, `"ring": true`} {
		if !strings.Contains(raw, s) {
			t.Errorf("ls --json lacks %s:\n%s", s, raw)
		}
	}

	table := want(t, 0, "ls").stdout
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("ls: %d lines, want a header and 3 regions:\n%s", len(lines), table)
	}
	for i, w := range [][]string{
		{"NAME", "KIND", "SIZE", "AGE", "CREATOR", "ATTACHED"},
		{"alpha", "region", "100", "B", "*", strconv.Itoa(pid), "yes"},
		{"beta", "ring", "1.5", "KiB", "*", strconv.Itoa(pid), "yes"},
		{"gamma", "region", "4.9", "KiB", "*", strconv.Itoa(pid), "no"},
	} {
		f := strings.Fields(lines[i])
		if len(f) != len(w) {
			t.Errorf("ls line %q: want fields %q", lines[i], w)
			continue
		}
		for j := range w {
			if w[j] != "*" && f[j] != w[j] {
				t.Errorf("ls line %q: field %d is %q, want %q", lines[i], j, f[j], w[j])
			}
		}
	}

	// Attached follows the test's own hold on the region.
	alpha.Close()
	if e := lsJSON(t)["alpha"]; e.Attached {
		t.Error("alpha still attached after Close")
	}
	if !strings.Contains(want(t, 0, "ls").stdout, "alpha  region  100 B") {
		t.Error("alpha's row changed shape after Close")
	}
}

func TestLsAll(t *testing.T) {
	dir := regionDir(t)
	createClosed(t, "reg", 10)
	os.WriteFile(filepath.Join(dir, "plain.txt"), []byte("not a region"), 0o600)
	os.WriteFile(filepath.Join(dir, ".mmipc-1-0123456789abcdef.tmp"), nil, 0o600)
	if got := lsJSON(t); len(got) != 1 {
		t.Errorf("ls without --all lists %d entries, want only reg", len(got))
	}
	got := lsJSON(t, "--all")
	if len(got) != 3 || got["reg"].Kind != "region" || got["plain.txt"].Kind != "other" || got[".mmipc-1-0123456789abcdef.tmp"].Kind != "temp" {
		t.Fatalf("ls --all --json: %+v", got)
	}
	if !strings.Contains(got["plain.txt"].Note, "too short") {
		t.Errorf("plain.txt's note %q does not say why it is no region", got["plain.txt"].Note)
	}
	if got[".mmipc-1-0123456789abcdef.tmp"].CreatorPID != 1 {
		t.Errorf("temp file: creator_pid %d, want 1 from its name", got[".mmipc-1-0123456789abcdef.tmp"].CreatorPID)
	}
	table := want(t, 0, "ls", "--all").stdout
	kinds := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(table, "\n"), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 {
			kinds[f[0]] = f[1]
		}
	}
	if len(kinds) != 3 || kinds["plain.txt"] != "other" || kinds[".mmipc-1-0123456789abcdef.tmp"] != "temp" || kinds["reg"] != "region" {
		t.Errorf("ls --all:\n%s", table)
	}
}

// statFields parses "key: value" lines.
func statFields(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		m[k] = v
	}
	return m
}

func TestStatRegion(t *testing.T) {
	dir := regionDir(t)
	create(t, "alpha", 100, 0o640)
	pid := strconv.Itoa(os.Getpid())
	page := os.Getpagesize()
	for _, name := range []string{"alpha", filepath.Join(dir, "alpha")} { // a name, and a path
		r := want(t, 0, "stat", name)
		f := statFields(t, r.stdout)
		for k, v := range map[string]string{
			"name":        name,
			"path":        filepath.Join(dir, "alpha"),
			"kind":        "region",
			"size":        "100 (100 B)",
			"file size":   strconv.Itoa(2*page) + " (" + humanSize(int64(2*page)) + ")",
			"header size": strconv.Itoa(page),
			"mode":        "0640 (-rw-r-----)",
			"creator pid": pid + " (alive)",
			"attached":    "yes",
		} {
			if f[k] != v {
				t.Errorf("stat %s: %q is %q, want %q\n%s", name, k, f[k], v, r.stdout)
			}
		}
		if !strings.Contains(f["owner"], "uid "+strconv.Itoa(os.Getuid())) {
			t.Errorf("owner: %q", f["owner"])
		}
		created, _, _ := strings.Cut(f["created"], " ")
		if ts, err := time.Parse(time.RFC3339Nano, created); err != nil || time.Since(ts) > time.Minute {
			t.Errorf("created %q: %v", f["created"], err)
		}
	}
}

func TestStatRing(t *testing.T) {
	regionDir(t)
	q, err := mmipc.CreateRing("q", 1024, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if err := q.Send([]byte("hello"), time.Second); err != nil {
		t.Fatal(err)
	}
	r := want(t, 0, "stat", "q")
	f := statFields(t, r.stdout)
	for k, v := range map[string]string{
		"kind":          "ring",
		"ring capacity": "1024 (1.0 KiB)",
		"ring used":     "16 bytes (1.6%)",
		"ring messages": "1",
	} {
		if f[k] != v {
			t.Errorf("stat q: %q is %q, want %q\n%s", k, f[k], v, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "mmipc ring stat q") {
		t.Errorf("stat of a ring does not point at ring stat:\n%s", r.stdout)
	}
}

func TestStatMissing(t *testing.T) {
	regionDir(t)
	r := want(t, 1, "stat", "nosuch")
	if r.stdout != "" || !strings.HasPrefix(r.stderr, "mmipc: stat: ") || !strings.Contains(r.stderr, "no such file or directory") {
		t.Errorf("stat nosuch: stdout %q stderr %q", r.stdout, r.stderr)
	}
	r = want(t, 1, "stat", "bad name!")
	if !strings.Contains(r.stderr, "invalid argument") {
		t.Errorf("stat of a bad name: %q", r.stderr)
	}
}

func TestRmNonRegion(t *testing.T) {
	dir := regionDir(t)
	path := filepath.Join(dir, "plain")
	content := []byte(strings.Repeat("precious data\n", 1000))
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	r := want(t, 1, "rm", "plain")
	if !strings.HasPrefix(r.stderr, "mmipc: rm: plain: not an mmipc region, left alone") {
		t.Errorf("rm plain: stderr %q", r.stderr)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, content) {
		t.Errorf("rm touched the file that is not a region: %v", err)
	}
}

func TestRmSeveral(t *testing.T) {
	dir := regionDir(t)
	createClosed(t, "a", 1)
	create(t, "b", 1, 0) // attached: rm removes the name all the same
	createClosed(t, "c", 1)
	createClosed(t, "d", 1)
	if r := want(t, 0, "rm", "a", "b"); r.stdout != "" || r.stderr != "" {
		t.Errorf("rm a b printed %q %q", r.stdout, r.stderr)
	}
	// A failure in the middle: the names after it are still removed, and the status says so.
	r := want(t, 1, "rm", "c", "nosuch", "d")
	if !strings.HasPrefix(r.stderr, "mmipc: rm: ") || !strings.Contains(r.stderr, `"nosuch"`) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("rm c nosuch d: stderr %q", r.stderr)
	}
	for _, name := range []string{"a", "b", "c", "d"} {
		if exists(filepath.Join(dir, name)) {
			t.Errorf("%s still exists", name)
		}
	}
}

// deadPID is the pid of a process that has exited (and been reaped).
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestGc(t *testing.T) {
	dir := regionDir(t)
	createClosed(t, "x", 10)
	createClosed(t, "y", 10)
	create(t, "z", 10, 0) // held open: gc must keep it
	tmp := ".mmipc-" + strconv.Itoa(deadPID(t)) + "-00000000deadbeef.tmp"
	os.WriteFile(filepath.Join(dir, tmp), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "plain"), []byte("x"), 0o600)

	r := want(t, 0, "gc", "--dry-run")
	wantOut := "would remove " + tmp + "\nwould remove x\nwould remove y\n2 regions and 1 temp file would be removed (dry run: nothing removed)\n"
	if r.stdout != wantOut {
		t.Errorf("gc --dry-run:\n%s\nwant:\n%s", r.stdout, wantOut)
	}
	for _, name := range []string{"x", "y", "z", tmp, "plain"} {
		if !exists(filepath.Join(dir, name)) {
			t.Errorf("gc --dry-run removed %s", name)
		}
	}

	r = want(t, 0, "gc")
	if wantOut := "removed " + tmp + "\nremoved x\nremoved y\n2 regions and 1 temp file removed\n"; r.stdout != wantOut {
		t.Errorf("gc:\n%s\nwant:\n%s", r.stdout, wantOut)
	}
	for name, keep := range map[string]bool{"x": false, "y": false, tmp: false, "z": true, "plain": true} {
		if exists(filepath.Join(dir, name)) != keep {
			t.Errorf("after gc, %s exists: %v, want %v", name, !keep, keep)
		}
	}
	if r := want(t, 0, "gc"); r.stdout != "0 regions removed\n" {
		t.Errorf("second gc: %q", r.stdout)
	}
}

// catRegion makes a 70-byte region: "hello", zeros (two identical lines to collapse), a line of
// bytes around the printable range's end, and a partial last line.
func catRegion(t *testing.T) []byte {
	t.Helper()
	r := create(t, "bytes", 70, 0)
	b := r.Bytes()
	copy(b, "hello")
	for i := 0; i < 16; i++ {
		b[48+i] = byte(0x78 + i)
	}
	copy(b[64:], "world!")
	return append([]byte(nil), b...)
}

const catWant = `00000000  68 65 6c 6c 6f 00 00 00  00 00 00 00 00 00 00 00  |hello...........|
00000010  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|
*
00000030  78 79 7a 7b 7c 7d 7e 7f  80 81 82 83 84 85 86 87  |xyz{|}~.........|
00000040  77 6f 72 6c 64 21                                 |world!|
00000046
`

func TestCatHexdump(t *testing.T) {
	regionDir(t)
	data := catRegion(t)
	r := want(t, 0, "cat", "bytes")
	if r.stdout != catWant {
		t.Errorf("cat bytes:\n%s\nwant:\n%s", r.stdout, catWant)
	}
	// The format is hexdump -C's: compare with the real one when the system has it.
	if hd, err := exec.LookPath("hexdump"); err == nil {
		cmd := exec.Command(hd, "-C")
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != r.stdout {
			t.Errorf("cat differs from hexdump -C:\n%s\nhexdump -C:\n%s", r.stdout, out)
		}
	}
	// A window, numbered from its real offset; flags may follow the name.
	r = want(t, 0, "cat", "bytes", "--offset", "60", "--length", "8")
	if w := "0000003c  84 85 86 87 77 6f 72 6c                           |....worl|\n00000044\n"; r.stdout != w {
		t.Errorf("cat --offset 60 --length 8:\n%q\nwant\n%q", r.stdout, w)
	}
	// A length past the end stops at the end; an offset at the end dumps nothing.
	if r = want(t, 0, "cat", "--offset", "64", "--length", "1000", "bytes"); !strings.HasSuffix(r.stdout, "|world!|\n00000046\n") {
		t.Errorf("cat --offset 64 --length 1000: %q", r.stdout)
	}
	if r = want(t, 0, "cat", "--offset", "70", "bytes"); r.stdout != "00000046\n" {
		t.Errorf("cat --offset 70: %q", r.stdout)
	}
	if r = want(t, 1, "cat", "--offset", "71", "bytes"); !strings.Contains(r.stderr, "past the end") {
		t.Errorf("cat --offset 71: %q", r.stderr)
	}
	want(t, 2, "cat", "--offset", "-1", "bytes")
	want(t, 2, "cat", "--length", "-5", "bytes")
	if r = want(t, 1, "cat", "nosuch"); !strings.HasPrefix(r.stderr, "mmipc: cat: ") {
		t.Errorf("cat nosuch: %q", r.stderr)
	}
}

func TestCatRaw(t *testing.T) {
	regionDir(t)
	data := catRegion(t)
	if r := want(t, 0, "cat", "--raw", "bytes"); r.stdout != string(data) {
		t.Errorf("cat --raw: %q, want %q", r.stdout, data)
	}
	if r := want(t, 0, "cat", "--raw", "--offset", "1", "--length", "4", "bytes"); r.stdout != "ello" {
		t.Errorf("cat --raw --offset 1 --length 4: %q", r.stdout)
	}
}

// truncatingWriter truncates a file at its first write, the way a hostile or buggy peer can under
// a reader's mapping.
type truncatingWriter struct {
	path string
	done bool
	buf  bytes.Buffer
}

func (w *truncatingWriter) Write(p []byte) (int, error) {
	if !w.done {
		w.done = true
		if err := os.Truncate(w.path, 0); err != nil {
			return 0, err
		}
	}
	return w.buf.Write(p)
}

func TestCatTruncated(t *testing.T) {
	dir := regionDir(t)
	for _, raw := range []bool{false, true} {
		name := "victim" + strconv.FormatBool(raw)
		b := create(t, name, 1<<20, 0).Bytes()
		for i := range b {
			b[i] = byte(i * 7 / 3) // no two lines alike: the dump writes a lot
		}
		args := []string{"cat", name}
		if raw {
			args = []string{"cat", "--raw", name}
		}
		// The first write happens with most of the region still to read (64 KiB of output
		// buffered for the dump; for --raw the whole slice of the mapping goes to Write, which
		// reads it after the truncation).
		w := &truncatingWriter{path: filepath.Join(dir, name)}
		var errOut bytes.Buffer
		code := run(args, w, &errOut)
		if code != 1 || !strings.HasPrefix(errOut.String(), "mmipc: cat: ") || !strings.Contains(errOut.String(), "truncated") {
			t.Errorf("%v of a region truncated under it: exit %d, stderr %q", args, code, errOut.String())
		}
	}
}

// TestCatRawTruncatedFile is --raw into a real file: write(2) reads the truncated mapping itself and
// fails with EFAULT instead of faulting; the error still says what happened.
func TestCatRawTruncatedFile(t *testing.T) {
	dir := regionDir(t)
	create(t, "victim", 1<<20, 0)
	beforeDump = func() { os.Truncate(filepath.Join(dir, "victim"), 0) }
	defer func() { beforeDump = nil }()
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var errOut bytes.Buffer
	code := run([]string{"cat", "--raw", "victim"}, out, &errOut)
	if code != 1 || !strings.HasPrefix(errOut.String(), "mmipc: cat: victim: the region's file was truncated to 0 bytes") {
		t.Errorf("cat --raw of a region truncated under it, into a file: exit %d, stderr %q", code, errOut.String())
	}
}

func TestCp(t *testing.T) {
	regionDir(t)
	tmp := t.TempDir()
	src, dst := filepath.Join(tmp, "src"), filepath.Join(tmp, "dst")
	content := make([]byte, 300<<10+17)
	for i := range content {
		content[i] = byte(i*31 + i>>9)
	}
	if err := os.WriteFile(src, content, 0o640); err != nil {
		t.Fatal(err)
	}
	os.Chmod(src, 0o640) // exactly, whatever the umask
	// Not a terminal and a small file: no bar at all.
	if r := want(t, 0, "cp", src, dst); r.stdout != "" || r.stderr != "" {
		t.Errorf("cp printed %q %q", r.stdout, r.stderr)
	}
	checkCopy(t, dst, content, 0o640)

	// Into a directory: under the source's name.
	sub := filepath.Join(tmp, "sub")
	os.Mkdir(sub, 0o755)
	want(t, 0, "cp", src, sub)
	checkCopy(t, filepath.Join(sub, "src"), content, 0o640)

	// Forced bar, into a buffer.
	r := want(t, 0, "cp", "--progress", src, filepath.Join(tmp, "dst2"))
	checkCopy(t, filepath.Join(tmp, "dst2"), content, 0o640)
	if !strings.HasPrefix(r.stderr, "\r[") || !strings.Contains(r.stderr, "100%") || !strings.HasSuffix(r.stderr, "\n") ||
		!strings.Contains(r.stderr, "300.0 KiB / 300.0 KiB") || r.stdout != "" {
		t.Errorf("cp --progress: stderr %q", r.stderr)
	}
	if r := want(t, 0, "cp", "--no-progress", src, dst); r.stderr != "" {
		t.Errorf("cp --no-progress: stderr %q", r.stderr)
	}

	want(t, 2, "cp", "--progress", "--no-progress", src, dst)
	want(t, 2, "cp", src)
	want(t, 2, "cp", src, dst, dst)
	r = want(t, 1, "cp", filepath.Join(tmp, "nosuch"), dst)
	if !strings.HasPrefix(r.stderr, "mmipc: cp: ") || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("cp of a missing file: %q", r.stderr)
	}
	// A failed copy with the bar on ends the bar's line before the error (here: nothing was drawn).
	if r = want(t, 1, "cp", "--progress", src, src); !strings.HasPrefix(r.stderr, "mmipc: cp: ") {
		t.Errorf("cp onto itself: %q", r.stderr)
	}
}

func checkCopy(t *testing.T, path string, content []byte, mode os.FileMode) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, content) {
		t.Errorf("%s: content differs (%d bytes, want %d): %v", path, len(got), len(content), err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != mode {
		t.Errorf("%s: mode %v, want %v (%v)", path, st.Mode().Perm(), mode, err)
	}
}

func TestProgressBar(t *testing.T) {
	if got, w := barLine(45, 100, time.Second), "[=============>                ]  45%  45 B / 100 B  45 B/s"; got != w {
		t.Errorf("barLine:\n%q\nwant\n%q", got, w)
	}
	if got := barLine(0, 0, 0); got != "[==============================] 100%  0 B / 0 B" {
		t.Errorf("barLine of an empty file: %q", got)
	}
	if got := barLine(1<<40-1, 1<<40, time.Second); !strings.Contains(got, " 99%") {
		t.Errorf("barLine one byte short: %q", got)
	}
	// Redraws are throttled to one per redrawEvery, except the last; a shorter line blanks the rest.
	now := time.Unix(1000, 0)
	var out bytes.Buffer
	p := &progressBar{w: &out, on: true, start: now, now: func() time.Time { return now }}
	p.update(1<<20, 10<<20)
	p.update(2<<20, 10<<20) // same instant: skipped
	now = now.Add(redrawEvery)
	p.update(3<<20, 10<<20)
	now = now.Add(time.Millisecond)
	p.update(10<<20, 10<<20) // final: always drawn, then the newline
	s := out.String()
	if n := strings.Count(s, "\r"); n != 3 {
		t.Errorf("%d redraws, want 3: %q", n, s)
	}
	if strings.Contains(s, " 20%") || !strings.Contains(s, " 30%") || !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
		t.Errorf("bar output %q", s)
	}
	p.finish() // again: no second newline
	if strings.Count(out.String(), "\n") != 1 {
		t.Errorf("finish after the end added a newline: %q", out.String())
	}

	for _, c := range []struct {
		force, never, term bool
		total              int64
		want               bool
	}{
		{false, false, true, autoProgressMin, true},
		{false, false, true, autoProgressMin - 1, false},
		{false, false, false, 1 << 40, false},
		{true, false, false, 0, true},
		{false, true, true, 1 << 40, false},
	} {
		if got := barWanted(c.force, c.never, c.term, c.total); got != c.want {
			t.Errorf("barWanted(%+v) = %v", c, got)
		}
	}
	if isTerminal(&out) {
		t.Error("a buffer is a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file is a terminal")
	}
	if pt, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0); err == nil {
		defer pt.Close()
		if !isTerminal(pt) {
			t.Error("a pseudo-terminal is not a terminal")
		}
	}
}

func TestRingStat(t *testing.T) {
	dir := regionDir(t)
	q, err := mmipc.CreateRing("q", 1024, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	pid := strconv.Itoa(os.Getpid())
	r := want(t, 0, "ring", "stat", "q")
	if f := statFields(t, r.stdout); f["senders"] != "none yet" || f["receivers"] != "none yet" || f["messages"] != "0" {
		t.Errorf("ring stat of a new ring:\n%s", r.stdout)
	}
	// Records: an 8-byte header plus the message padded to 8 bytes: 16 + 16 + 24.
	for _, m := range []string{"a", "hello", "twelve bytes"} {
		if err := q.Send([]byte(m), time.Second); err != nil {
			t.Fatal(err)
		}
	}
	r = want(t, 0, "ring", "stat", "q")
	check := func(r result, fields map[string]string) {
		t.Helper()
		f := statFields(t, r.stdout)
		for k, v := range fields {
			if f[k] != v {
				t.Errorf("ring stat: %q is %q, want %q\n%s", k, f[k], v, r.stdout)
			}
		}
	}
	check(r, map[string]string{
		"name":               "q",
		"capacity":           "1024 (1.0 KiB)",
		"max message":        "504 (504 B)",
		"used":               "56 bytes (5.5%)",
		"messages":           "3",
		"head":               "0",
		"tail":               "56",
		"senders":            "1 (exclusive, pid " + pid + ", alive)",
		"receivers":          "none yet",
		"sleeping senders":   "0",
		"sleeping receivers": "0",
	})

	rq, err := mmipc.OpenRing("q")
	if err != nil {
		t.Fatal(err)
	}
	defer rq.Close()
	buf := make([]byte, 100)
	if n, err := rq.Recv(buf, time.Second); err != nil || string(buf[:n]) != "a" {
		t.Fatalf("recv: %q, %v", buf[:n], err)
	}
	check(want(t, 0, "ring", "stat", filepath.Join(dir, "q")), map[string]string{
		"used":      "40 bytes (3.9%)",
		"messages":  "2",
		"head":      "16",
		"tail":      "56",
		"receivers": "1 (exclusive, pid " + pid + ", alive)",
	})

	// A second sender makes the side shared for good.
	q2, err := mmipc.OpenRing("q")
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	if err := q2.Send([]byte("x"), time.Second); err != nil {
		t.Fatal(err)
	}
	check(want(t, 0, "ring", "stat", "q"), map[string]string{
		"messages": "3",
		"senders":  "shared (several processes; lock free)",
	})

	// A receiver blocked on an empty ring shows as a sleeper (after its spin), and leaves when a
	// message comes.
	w, err := mmipc.CreateRing("w", 1024, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	wr, err := mmipc.OpenRing("w")
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	got := make(chan error, 1)
	go func() {
		_, err := wr.Recv(make([]byte, 16), 10*time.Second)
		got <- err
	}()
	sleeping := ""
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if sleeping = statFields(t, want(t, 0, "ring", "stat", "w").stdout)["sleeping receivers"]; sleeping == "1" {
			break
		}
	}
	if sleeping != "1" {
		t.Errorf("a blocked receiver: sleeping receivers %q, want 1", sleeping)
	}
	if err := w.Send([]byte("wake"), time.Second); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Errorf("the blocked receiver: %v", err)
	}
	check(want(t, 0, "ring", "stat", "w"), map[string]string{"sleeping receivers": "0", "messages": "0"})

	// Not a ring, not there.
	createClosed(t, "plain", 100)
	if r := want(t, 1, "ring", "stat", "plain"); !strings.HasPrefix(r.stderr, "mmipc: ring stat: ") || !strings.Contains(r.stderr, "protocol error") {
		t.Errorf("ring stat of a plain region: %q", r.stderr)
	}
	if r := want(t, 1, "ring", "stat", "nosuch"); !strings.HasPrefix(r.stderr, "mmipc: ring stat: ") {
		t.Errorf("ring stat nosuch: %q", r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	regionDir(t)
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"--bogus"},
		{"ls", "extra"},
		{"ls", "--bogus"},
		{"stat"},
		{"stat", "a", "b"},
		{"rm"},
		{"gc", "name"},
		{"cat"},
		{"cat", "--offset", "x", "n"},
		{"cp", "a"},
		{"ring"},
		{"ring", "bogus"},
		{"ring", "stat"},
		{"version", "x"},
		{"help", "bogus"},
		{"help", "ring", "bogus"},
	} {
		r := mmipcRun(args...)
		if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, "mmipc: ") && !strings.HasPrefix(r.stderr, "usage: ") {
			t.Errorf("mmipc %q: exit %d, stdout %q, stderr %q; want exit 2 and a message on stderr", args, r.code, r.stdout, r.stderr)
		}
	}
	r := mmipcRun("ls", "--bogus")
	if w := "mmipc: ls: flag provided but not defined: -bogus\nRun 'mmipc help ls' for usage.\n"; r.stderr != w {
		t.Errorf("ls --bogus: %q, want %q", r.stderr, w)
	}
	if r := mmipcRun("frobnicate"); r.stderr != "mmipc: unknown command \"frobnicate\"\nRun 'mmipc help' for usage.\n" {
		t.Errorf("unknown command: %q", r.stderr)
	}
	// A name that begins with '-' goes after "--".
	if r := mmipcRun("stat", "--", "-odd"); r.code != 1 || !strings.Contains(r.stderr, `"-odd"`) {
		t.Errorf("stat -- -odd: exit %d %q", r.code, r.stderr)
	}
}

func TestHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "usage: mmipc COMMAND"},
		{[]string{"-h"}, "usage: mmipc COMMAND"},
		{[]string{"help"}, "usage: mmipc COMMAND"},
		{[]string{"help", "ls"}, "usage: mmipc ls"},
		{[]string{"ls", "--help"}, "usage: mmipc ls"},
		{[]string{"stat", "-h"}, "usage: mmipc stat"},
		{[]string{"rm", "--help"}, "usage: mmipc rm"},
		{[]string{"gc", "--help"}, "usage: mmipc gc"},
		{[]string{"cat", "x", "--help"}, "usage: mmipc cat"},
		{[]string{"cp", "--help"}, "usage: mmipc cp"},
		{[]string{"ring", "--help"}, "usage: mmipc ring stat"},
		{[]string{"ring", "stat", "--help"}, "usage: mmipc ring stat"},
		{[]string{"help", "ring", "stat"}, "usage: mmipc ring stat"},
		{[]string{"version", "--help"}, "usage: mmipc version"},
	} {
		r := mmipcRun(c.args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, c.want) || r.stderr != "" {
			t.Errorf("mmipc %q: exit %d, stdout %q..., stderr %q", c.args, r.code, firstLine(r.stdout), r.stderr)
		}
	}
	usage := mmipcRun("--help").stdout
	for _, s := range []string{"0  success", "1  an operation failed", "2  usage error", "$MMIPC_DIR"} {
		if !strings.Contains(usage, s) {
			t.Errorf("the usage lacks %q", s)
		}
	}
	for name := range commands {
		if !strings.Contains(usage, "mmipc "+name) {
			t.Errorf("the usage does not list %s", name)
		}
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := mmipcRun(args...)
		if r.code != 0 || r.stdout != "mmipc "+mmipc.Version+" (region protocol "+strconv.Itoa(mmipc.ProtocolVersion)+")\n" {
			t.Errorf("mmipc %q: exit %d, %q", args, r.code, r.stdout)
		}
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func TestFormat(t *testing.T) {
	for n, w := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 4096: "4.0 KiB", 1<<20 - 1: "1.0 MiB",
		3 << 29: "1.5 GiB", 1 << 62: "4.0 EiB"} {
		if got := humanSize(n); got != w {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, w)
		}
	}
	for d, w := range map[time.Duration]string{-time.Second: "0s", 0: "0s", 59 * time.Second: "59s",
		3*time.Minute + 12*time.Second: "3m12s", time.Hour: "1h", 2*time.Hour + 5*time.Minute + 3*time.Second: "2h5m",
		5 * 24 * time.Hour: "5d", 50 * time.Hour: "2d2h"} {
		if got := humanAge(d); got != w {
			t.Errorf("humanAge(%v) = %q, want %q", d, got, w)
		}
	}
	if !pidAlive(os.Getpid()) || pidAlive(deadPID(t)) || pidAlive(0) {
		t.Error("pidAlive is wrong about this process, a dead one or pid 0")
	}
	if got := creatorString(deadPID(t)); !strings.HasSuffix(got, " (dead)") {
		t.Errorf("creatorString of a dead pid: %q", got)
	}
}

// TestBinary builds the command and runs it as a real process: exit codes and streams as a shell
// sees them.
func TestBinary(t *testing.T) {
	dir := regionDir(t)
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	bin := filepath.Join(t.TempDir(), "mmipc")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	exe := func(args ...string) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "MMIPC_DIR="+dir)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatalf("%s %q: %v", bin, args, err)
		}
		return result{out.String(), errOut.String(), code}
	}
	if r := exe("ls"); r.code != 0 || r.stdout != "NAME  KIND  SIZE  AGE  CREATOR  ATTACHED\n" || r.stderr != "" {
		t.Errorf("mmipc ls: %+v", r)
	}
	if r := exe("stat", "nosuch"); r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.stderr, "mmipc: stat: ") {
		t.Errorf("mmipc stat nosuch: %+v", r)
	}
	if r := exe("frobnicate"); r.code != 2 || !strings.Contains(r.stderr, "unknown command") {
		t.Errorf("mmipc frobnicate: %+v", r)
	}
	if r := exe("--help"); r.code != 0 || !strings.HasPrefix(r.stdout, "usage: mmipc") {
		t.Errorf("mmipc --help: %+v", r)
	}
	// A region made by this process, seen by the other one as attached.
	create(t, "seen", 10, 0)
	if r := exe("ls"); r.code != 0 || !strings.Contains(r.stdout, "seen  region  10 B") || !strings.HasSuffix(r.stdout, "yes\n") {
		t.Errorf("mmipc ls with a region: %+v", r)
	}
}

// Names planted in a shared directory cannot break "ls --all": a tab, a newline, tabwriter's
// escape byte and a terminal escape are shown quoted, one row each, and the table stays aligned.
func TestLsHostileNames(t *testing.T) {
	dir := regionDir(t)
	createClosed(t, "reg", 10)
	for _, name := range []string{"tab\tname", "nl\nname", "bad\xffname", "esc\x1b[31mRED"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	table := want(t, 0, "ls", "--all").stdout
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("ls --all printed %d lines, want a header and 5 rows:\n%s", len(lines), table)
	}
	kindCol := strings.Index(lines[0], "KIND")
	for _, line := range lines[1:] {
		if strings.ContainsAny(line, "\t\x1b\xff") || len(line) < kindCol || line[kindCol-1] != ' ' {
			t.Errorf("row %q is not a clean, aligned row", line)
		}
	}
	for _, quoted := range []string{`"tab\tname"`, `"nl\nname"`, `"bad\xffname"`, `"esc\x1b[31mRED"`} {
		if !strings.Contains(table, quoted) {
			t.Errorf("ls --all does not show %s:\n%s", quoted, table)
		}
	}
}

// failingWriter fails every write, as a full disk or a closed pipe does.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

// Output that cannot be written fails the command, for every command that prints.
func TestOutputErrors(t *testing.T) {
	regionDir(t)
	createClosed(t, "reg", 10)
	q, err := mmipc.CreateRing("q", 1024, 0)
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	for _, args := range [][]string{{"ls"}, {"ls", "--json"}, {"stat", "reg"}, {"ring", "stat", "q"}, {"cat", "reg"},
		{"gc", "--dry-run"}, {"version"}, {"help"}, {"--help"}, {"cp", "--help"}} {
		var errOut bytes.Buffer
		if code := run(args, failingWriter{}, &errOut); code != exitFail || !strings.Contains(errOut.String(), "no space left") {
			t.Errorf("mmipc %s into a full disk: exit %d, stderr %q; want 1 and the error", strings.Join(args, " "), code, errOut.String())
		}
	}
}

// rm of a symlink says what it is and leaves it.
func TestRmSymlink(t *testing.T) {
	dir := regionDir(t)
	createClosed(t, "target", 10)
	os.Symlink("target", filepath.Join(dir, "link"))
	r := want(t, 1, "rm", "link")
	if !strings.Contains(r.stderr, "a symlink, not a region: left alone") {
		t.Errorf("rm link: %q", r.stderr)
	}
	if _, err := os.Lstat(filepath.Join(dir, "link")); err != nil {
		t.Errorf("the symlink is gone: %v", err)
	}
}

// An interrupted cp (SIGINT to the real command) stops, leaves DST as it was and no temporary
// file, and exits 130. A copy that finishes before the signal proves nothing and is tried again
// with a bigger file.
func TestCpInterrupted(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	bin := filepath.Join(t.TempDir(), "mmipc")
	build := exec.Command(goTool, "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := regionDir(t)
	src, dst := filepath.Join(dir, "src.bin"), filepath.Join(dir, "dst.bin")
	tries := 0
	for size := int64(256 << 20); ; size *= 2 {
		os.WriteFile(dst, []byte("old"), 0o600)
		f, _ := os.Create(src)
		f.Truncate(size) // sparse: reads as zeros, copies as data
		f.Close()
		cmd := exec.Command(bin, "cp", "--no-progress", src, dst)
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGINT)
		err := cmd.Wait()
		os.Remove(src)
		if err == nil {
			if size >= 2<<30 {
				t.Skip("the copies finished before the signal: too fast a machine to interrupt one")
			}
			continue
		}
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled() && tries < 5 {
			tries++ // the signal came before the command was listening (a loaded machine): again
			size /= 2
			continue
		}
		if !errors.As(err, &exit) || exit.ExitCode() != 130 || !strings.Contains(errOut.String(), "interrupted") {
			t.Fatalf("interrupted cp: %v, stderr %q; want exit 130 and 'interrupted'", err, errOut.String())
		}
		if b, _ := os.ReadFile(dst); string(b) != "old" {
			t.Errorf("an interrupted cp changed DST")
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("left behind: %v", entries)
		}
		return
	}
}
