package tests

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/mmipc/mmipc/mmipc"
)

// The attacks of issue 7's hardening suite on the Go API in this process and on the Go, Python (and
// for some, C) peers of tests/hostilepeer/main.go: a symlink planted at a region's name, a region
// of another user, and a region's file truncated under a process attached to it. The C API's side
// is tests/c/test_attacks.c (TestCAttacks).

// TestCAttacks runs tests/c/test_attacks.c: symlinks at a region's name (ELOOP everywhere, gc
// follows nothing) and truncated regions (EPROTO by name; a C reader of the lost pages dies of
// SIGBUS, as mmipc.h documents).
func TestCAttacks(t *testing.T) { runCTest(t, "tests/c/test_attacks.c") }

// attackWantErrno fails the test unless err is an *mmipc.Error with errno want.
func attackWantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	var e *mmipc.Error
	if !errors.As(err, &e) || e.Errno != want {
		t.Errorf("%s: %v, want an *mmipc.Error with %v (%d)", what, err, want, int(want))
	}
}

// runHostile runs one command of a hostile peer of lang in dir (MMIPC_DIR), optionally as another
// user, and fails the test unless it succeeds; it returns its last line.
func runHostile(t *testing.T, dir, lang string, cred *syscall.Credential, args ...string) string {
	t.Helper()
	p := startHostile(t, dir, lang, 60*time.Second, cred, args...)
	p.stdin.Close()
	if status := p.problem(); status != "" {
		t.Fatalf("%s: %s:\n%s", p.label, status, p.out.String())
	}
	return lastLine(p.out.String())
}

// TestAttackSymlinks: symlinks planted at region names in the directory, pointing at an unattached
// region outside it, at an ordinary (passwd-like) file, at nothing, and (relative) at a region in
// the directory that this process holds. Go (this process) and Python (a peer): every call that
// takes a name gives ELOOP, as a name and as a path: Create, CreateRing, Open, OpenReadOnly,
// OpenRing, Unlink, Stat, RingStat (Python: create, open, open_ring, unlink, stat). No file appears
// at the dangling link's target, List shows only the held region, Collect(dryRun) and GC (Go and
// Python) remove nothing: every link and target stays, with its bytes. Released, the held region is
// then collected, and only it: GC does remove what it may.
func TestAttackSymlinks(t *testing.T) {
	hostilePeers(t)
	dir, outside := regionDir(t), regionDir(t)
	d := mmipc.Dir(dir)
	real := filepath.Join(outside, "real")
	r, err := mmipc.Create(real, 100, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	copy(r.Bytes(), "outside")
	r.Close()
	passwd := filepath.Join(outside, "passwd")
	passwdText := []byte("root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n")
	if err := os.WriteFile(passwd, passwdText, 0o644); err != nil {
		t.Fatal(err)
	}
	held, err := d.Create("held", 100, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	nowhere := filepath.Join(outside, "nowhere")
	links := map[string]string{"link-region": real, "link-passwd": passwd, "link-dangling": nowhere, "link-held": "held"}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}

	calls := map[string]func(d mmipc.Dir, name string) error{
		"Create": func(d mmipc.Dir, n string) error { return closeIfOpened(d.Create(n, 100, 0o600)) },
		"CreateRing": func(d mmipc.Dir, n string) error {
			q, err := d.CreateRing(n, 1024, 0o600)
			if err == nil {
				q.Close()
			}
			return err
		},
		"Open":         func(d mmipc.Dir, n string) error { return closeIfOpened(d.Open(n)) },
		"OpenReadOnly": func(d mmipc.Dir, n string) error { return closeIfOpened(d.OpenReadOnly(n)) },
		"OpenRing": func(d mmipc.Dir, n string) error {
			q, err := d.OpenRing(n)
			if err == nil {
				q.Close()
			}
			return err
		},
		"Unlink":   func(d mmipc.Dir, n string) error { return d.Unlink(n) },
		"Stat":     func(d mmipc.Dir, n string) error { _, err := d.Stat(n); return err },
		"RingStat": func(d mmipc.Dir, n string) error { _, err := d.RingStat(n); return err },
	}
	cases := 0
	var python []string // the Python peer's expectations, checked in one process
	for name := range links {
		for call, f := range calls {
			attackWantErrno(t, call+" "+name, f(d, name), syscall.ELOOP)
			attackWantErrno(t, call+" "+name+" as a path", f("", filepath.Join(dir, name)), syscall.ELOOP)
			cases += 2
		}
		for _, op := range []string{"create", "open", "open_ro", "ring_open", "unlink", "stat"} {
			python = append(python, op, name, "ELOOP")
			cases++
		}
	}
	runHostile(t, dir, "Python", nil, append([]string{"expect"}, python...)...)
	if _, err := os.Lstat(nowhere); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file appeared at the dangling link's target: %v", err)
	}
	infos, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, info := range infos {
		names = append(names, info.Name)
	}
	if !slices.Equal(names, []string{"held"}) {
		t.Errorf("List: %q, want only [held] (symlinks skipped)", names)
	}
	if would, err := d.Collect(true); err != nil || len(would) != 0 {
		t.Errorf("Collect(dryRun): %q, %v; want nothing", would, err)
	}
	checkIntact := func(when string) {
		t.Helper()
		for name, target := range links {
			if got, err := os.Readlink(filepath.Join(dir, name)); err != nil || got != target {
				t.Errorf("%s: %s: readlink %q, %v; want the link to %q, intact", when, name, got, err, target)
			}
		}
		r, err := mmipc.OpenReadOnly(real)
		if err != nil || !bytes.HasPrefix(r.Bytes(), []byte("outside")) {
			t.Errorf("%s: the region behind link-region: %v", when, err)
		} else {
			r.Close()
		}
		if got, err := os.ReadFile(passwd); err != nil || !bytes.Equal(got, passwdText) {
			t.Errorf("%s: the passwd-like file behind link-passwd changed: %q, %v", when, got, err)
		}
	}
	if n, err := d.GC(); err != nil || n != 0 {
		t.Errorf("GC: removed %d, %v; want 0", n, err)
	}
	checkIntact("after Go's GC")
	if line := runHostile(t, dir, "Python", nil, "gc"); line != "ok gc removed=0" {
		t.Errorf("Python gc: %q, want removed=0", line)
	}
	checkIntact("after Python's gc")

	// Released, the held region is garbage, and GC removes it: only it.
	held.Close()
	if n, err := d.GC(); err != nil || n != 1 {
		t.Errorf("GC after the holder closed: removed %d, %v; want 1 (held)", n, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "held")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("held after GC: %v, want gone", err)
	}
	checkIntact("after the second GC")
	t.Logf("%d symlink cases (%d links x Go calls as name and path, and Python calls), 3 GCs", cases, len(links))
}

func closeIfOpened(r *mmipc.Region, err error) error {
	if err == nil {
		r.Close()
	}
	return err
}

// attackNobody is the other user of TestAttackOtherUser.
var attackNobody = &syscall.Credential{Uid: 65534, Gid: 65534}

// TestAttackOtherUser: two users share a sticky, world-writable directory (as /dev/shm is). Run as
// root (the other user is uid/gid 65534), since only root can start a process as another user.
//   - nobody creates a region with mode 0666 and stays attached (a Go peer, "hold"); root sees it
//     attached, owned by 65534 with mode 0666 (Stat), opens it, reads nobody's bytes and writes its
//     own, which nobody reads back; GC as root (Go and Python) leaves it alone while it is attached.
//   - root's regions, unattached: one 0600, which nobody cannot open, open read-only, stat or unlink
//     (EACCES), and one 0666, which nobody may open but not unlink (EPERM: the sticky directory);
//     GC as nobody reports no error and removes neither.
//   - once nobody closed its region, GC as root removes all three.
func TestAttackOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: starting a process as another user (uid 65534) needs root")
	}
	hostilePeers(t)
	dir := regionDir(t)
	if err := os.Chmod(dir, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	d := mmipc.Dir(dir)
	holder := startHostile(t, dir, "Go", 90*time.Second, attackNobody, "hold", "shared", "4096", "666")
	holder.await(t, "holding\n", 30*time.Second)

	info, err := d.Stat("shared")
	if err != nil || info.UID != 65534 || info.Mode != 0o666 || !info.Attached || info.Size != 4096 {
		t.Fatalf("Stat(shared) as root: %+v, %v; want uid 65534, mode 0666, attached, 4096 bytes", info, err)
	}
	r, err := d.Open("shared")
	if err != nil {
		t.Fatalf("root opening nobody's 0666 region: %v", err)
	}
	if want := fmt.Sprintf("held by %d\x00", holder.pid); !bytes.HasPrefix(r.Bytes(), []byte(want)) {
		t.Errorf("root reads %q, want nobody's %q", r.Bytes()[:32], want)
	}
	copy(r.Bytes()[64:], "root was here\x00")
	holder.say(t, "read")
	holder.await(t, "data64=root was here\n", 10*time.Second)
	r.Close()
	if n, err := d.GC(); err != nil || n != 0 {
		t.Errorf("GC as root while nobody is attached: removed %d, %v; want 0", n, err)
	}
	if line := runHostile(t, dir, "Python", nil, "gc"); line != "ok gc removed=0" {
		t.Errorf("Python gc as root while nobody is attached: %q, want removed=0", line)
	}
	if info, err := d.Stat("shared"); err != nil || !info.Attached {
		t.Errorf("after root's GCs, nobody's region: %+v, %v; want it there, attached", info, err)
	}

	for name, mode := range map[string]fs.FileMode{"private": 0o600, "rootshared": 0o666} {
		r, err := d.Create(name, 4096, mode)
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	// The sticky directory refuses nobody's unlink of rootshared with EPERM (unlink(2)'s errno for
	// it, as mmipc.h says). The same answers in C and Go; Python's, as nobody, are checked by
	// python/tests/test_region.py (this checkout's python3 may not be one nobody can run).
	for _, lang := range []string{"C", "Go"} {
		runHostile(t, dir, lang, attackNobody, "expect",
			"open", "private", "EACCES", "open_ro", "private", "EACCES", "stat", "private", "EACCES", "unlink", "private", "EACCES",
			"open", "rootshared", "0", "unlink", "rootshared", "EPERM")
	}
	if line := runHostile(t, dir, "Go", attackNobody, "gc"); line != "ok gc removed=0" {
		t.Errorf("gc as nobody: %q, want removed=0", line)
	}
	for _, name := range []string{"private", "rootshared", "shared"} {
		if _, err := d.Stat(name); err != nil {
			t.Errorf("after nobody's gc: %s: %v, want it still there", name, err)
		}
	}

	holder.say(t, "close")
	if !finish(t, holder.pairProc) {
		t.FailNow()
	}
	if info, err := d.Stat("shared"); err != nil || info.Attached {
		t.Errorf("nobody's region after it closed: %+v, %v; want it there, unattached", info, err)
	}
	if names, err := d.Collect(false); err != nil || !slices.Equal(names, []string{"private", "rootshared", "shared"}) {
		t.Errorf("GC as root once nobody closed: removed %q, %v; want [private rootshared shared]", names, err)
	}
}

// TestAttackTruncate: another process (the C peer) truncates the files of regions and rings this
// process has attached. Region.Guard turns the reads of lost pages into EPROTO (a file truncated to
// 0; to half, where the first page still reads and the last does not) instead of a crash; a ring
// truncated to 0 gives EPROTO from Send, Recv, Reserve, Peek and Stat; one truncated to half
// delivers the message that survived and refuses the one that was cut with EPROTO. By name, Go
// (Open, OpenReadOnly, OpenRing, Stat, RingStat) and Python (open, open_ring, stat) get EPROTO; GC
// leaves the truncated files alone. (C: TestCAttacks.)
func TestAttackTruncate(t *testing.T) {
	hostilePeers(t)
	dir := regionDir(t)
	d := mmipc.Dir(dir)
	truncate := func(name string, size int64) {
		t.Helper()
		runHostile(t, dir, "C", nil, "truncate", filepath.Join(dir, name), fmt.Sprint(size))
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() != size {
			t.Fatalf("%s after the truncation: %v, %v", name, st, err)
		}
	}
	read := func(r *mmipc.Region, off func(n int) int) (byte, error) {
		var b byte
		err := r.Guard(func(data []byte) { b = data[off(len(data))] })
		return b, err
	}
	first := func(int) int { return 0 }
	last := func(n int) int { return n - 1 }

	const size = 4 * 4096
	regions := map[string]*mmipc.Region{}
	for _, name := range []string{"zero", "half"} {
		r, err := d.Create(name, size, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		r.Bytes()[0], r.Bytes()[size-1] = 'F', 'L'
		if b, err := read(r, last); err != nil || b != 'L' {
			t.Fatalf("Guard before any truncation: %q, %v", b, err)
		}
		regions[name] = r
	}
	truncate("zero", 0)
	truncate("half", (4096+size)/2)
	for name, r := range regions {
		for _, off := range []func(int) int{first, last} {
			b, err := read(r, off)
			if name == "half" && off(size) == 0 {
				if err != nil || b != 'F' {
					t.Errorf("half: the first byte, still in the file: %q, %v; want 'F'", b, err)
				}
				continue
			}
			attackWantErrno(t, fmt.Sprintf("%s: Guard reading byte %d", name, off(size)), err, syscall.EPROTO)
		}
	}

	// Rings: one truncated to 0 with a message in it, one to half with a message on each side of
	// the cut.
	q0, err := d.CreateRing("ring-zero", 4096, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer q0.Close()
	if err := q0.Send([]byte("before"), time.Second); err != nil {
		t.Fatal(err)
	}
	qh, err := d.CreateRing("ring-half", 64<<10, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer qh.Close()
	big := bytes.Repeat([]byte("m"), 20000)
	for range 2 {
		if err := qh.Send(big, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	truncate("ring-zero", 0)
	// Header page, control block and 32256 bytes of buffer: the first message (bytes 0-20007 of
	// the buffer) survives, the second (20008-40015) is cut.
	truncate("ring-half", 4096+32768)
	buf := make([]byte, 64<<10)
	_, err = q0.Recv(buf, mmipc.TryOnce)
	attackWantErrno(t, "ring-zero: Recv", err, syscall.EPROTO)
	attackWantErrno(t, "ring-zero: Send", q0.Send([]byte("x"), mmipc.TryOnce), syscall.EPROTO)
	_, err = q0.Reserve(8, mmipc.TryOnce)
	attackWantErrno(t, "ring-zero: Reserve", err, syscall.EPROTO)
	_, err = q0.Peek(mmipc.TryOnce)
	attackWantErrno(t, "ring-zero: Peek", err, syscall.EPROTO)
	_, err = q0.Stat()
	attackWantErrno(t, "ring-zero: Stat", err, syscall.EPROTO)
	if n, err := qh.Recv(buf, mmipc.TryOnce); err != nil || !bytes.Equal(buf[:n], big) {
		t.Errorf("ring-half: the first message, before the cut: %d bytes, %v", n, err)
	}
	_, err = qh.Recv(buf, mmipc.TryOnce)
	attackWantErrno(t, "ring-half: Recv of the message across the cut", err, syscall.EPROTO)
	for _, q := range []*mmipc.Ring{q0, qh} {
		if err := q.Close(); err != nil {
			t.Errorf("%s: Close after the faults: %v", q.Name(), err)
		}
	}

	// By name: EPROTO before any mapping.
	var python []string // the Python peer's expectations, checked in one process
	for _, name := range []string{"zero", "half", "ring-zero", "ring-half"} {
		attackWantErrno(t, "Open "+name, closeIfOpened(d.Open(name)), syscall.EPROTO)
		attackWantErrno(t, "OpenReadOnly "+name, closeIfOpened(d.OpenReadOnly(name)), syscall.EPROTO)
		_, err := d.Stat(name)
		attackWantErrno(t, "Stat "+name, err, syscall.EPROTO)
		python = append(python, "open", name, "EPROTO", "stat", name, "EPROTO")
	}
	for _, name := range []string{"ring-zero", "ring-half"} {
		_, err := d.OpenRing(name)
		attackWantErrno(t, "OpenRing "+name, err, syscall.EPROTO)
		_, err = d.RingStat(name)
		attackWantErrno(t, "RingStat "+name, err, syscall.EPROTO)
		python = append(python, "ring_open", name, "EPROTO")
	}
	runHostile(t, dir, "Python", nil, append([]string{"expect"}, python...)...)
	if n, err := d.GC(); err != nil || n != 0 {
		t.Errorf("GC with truncated files: removed %d, %v; want 0 (they are not regions)", n, err)
	}
	for _, name := range []string{"zero", "half", "ring-zero", "ring-half"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s after GC: %v, want it left alone", name, err)
		}
	}
}

// TestAttackLockHog: a hostile process (the C peer's lockhog) takes and keeps the exclusive
// liveness lock on a region and on a ring, as a cleaner does for an instant (docs/PROTOCOL.md
// "Liveness"). Openers in Go (this process), C and Python give up within a bound, with EBUSY
// (which mmipc.h does not list for mmipc_open and mmipc_ring_open), instead of waiting for it;
// Stat says attached; GC (Go, Python) removes nothing. Once the hog is killed (SIGKILL: the kernel
// drops its lock), every language opens both again.
func TestAttackLockHog(t *testing.T) {
	hostilePeers(t)
	dir := regionDir(t)
	d := mmipc.Dir(dir)
	r, err := d.Create("hogged", 4096, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	q, err := d.CreateRing("hogring", 4096, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	var hogs []*hostileProc
	for _, name := range []string{"hogged", "hogring"} {
		h := startHostile(t, dir, "C", 90*time.Second, nil, "lockhog", filepath.Join(dir, name))
		h.await(t, "hogging\n", 30*time.Second)
		hogs = append(hogs, h)
	}

	start := time.Now()
	attackWantErrno(t, "Open hogged", closeIfOpened(d.Open("hogged")), syscall.EBUSY)
	_, err = d.OpenRing("hogring")
	attackWantErrno(t, "OpenRing hogring", err, syscall.EBUSY)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the two opens of hogged regions took %v: they must give up within a bound", took)
	}
	if info, err := d.Stat("hogged"); err != nil || !info.Attached {
		t.Errorf("Stat hogged: %+v, %v; want attached", info, err)
	}
	if n, err := d.GC(); err != nil || n != 0 {
		t.Errorf("GC with the hogs: removed %d, %v; want 0", n, err)
	}
	busy := []string{"expect", "open", "hogged", "EBUSY", "ring_open", "hogring", "EBUSY"}
	runHostile(t, dir, "C", nil, busy...)
	runHostile(t, dir, "Python", nil, busy...)
	if line := runHostile(t, dir, "Python", nil, "gc"); line != "ok gc removed=0" {
		t.Errorf("Python gc with the hogs: %q, want removed=0", line)
	}

	for _, h := range hogs {
		if err := syscall.Kill(h.pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-h.done
	}
	if err := closeIfOpened(d.Open("hogged")); err != nil {
		t.Errorf("Open hogged after the hog died: %v", err)
	}
	if q, err := d.OpenRing("hogring"); err != nil {
		t.Errorf("OpenRing hogring after the hog died: %v", err)
	} else {
		q.Close()
	}
	free := []string{"expect", "open", "hogged", "0", "ring_open", "hogring", "0"}
	runHostile(t, dir, "C", nil, free...)
	runHostile(t, dir, "Python", nil, free...)
}
