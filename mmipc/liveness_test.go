package mmipc

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// attached reports Stat's Attached for name in d, failing the test on an error.
func attached(t *testing.T, d Dir, name string) bool {
	t.Helper()
	info, err := d.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return info.Attached
}

// TestStatInfo: Stat reports the header's and the file's facts without attaching.
func TestStatInfo(t *testing.T) {
	d := testDir(t)
	before := time.Now()
	r := mustAttach(t, "Create", func() (*Region, error) { return d.Create("info", 5000, 0o640) })
	defer r.Close()
	info, err := d.Stat("info")
	if err != nil {
		t.Fatal(err)
	}
	page := os.Getpagesize()
	want := Info{
		Name: "info", Path: d.path("info"), Size: 5000, FileSize: int64(page + (5000+page-1)/page*page),
		HeaderSize: page, Mode: 0o640, UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()),
		CreatorPID: os.Getpid(), Created: info.Created, Attached: true,
	}
	if info != want {
		t.Errorf("Stat = %+v\nwant   %+v", info, want)
	}
	if info.Created.Before(before.Add(-time.Second)) || info.Created.After(time.Now().Add(time.Second)) {
		t.Errorf("Created %v, not around %v", info.Created, before)
	}
	q, err := d.CreateRing("ring", 4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if info, err := d.Stat("ring"); err != nil || !info.Ring || info.Size != RingControlSize+4096 {
		t.Errorf("Stat(ring) = %+v, %v; want Ring with %d bytes", info, err, RingControlSize+4096)
	}
	// Stat attaches nothing: a region nobody holds stays unattached after it.
	r.Close()
	for range 2 {
		if attached(t, d, "info") {
			t.Fatal("attached after Close (or Stat attached it)")
		}
	}
}

func TestStatErrors(t *testing.T) {
	d := testDir(t)
	os.WriteFile(d.path("plain"), []byte("just a file, not a region"), 0o600)
	os.Symlink("plain", d.path("link"))
	os.Mkdir(d.path("dir"), 0o700)
	for _, c := range []struct {
		name  string
		errno syscall.Errno
	}{
		{"missing", syscall.ENOENT},
		{"plain", syscall.EPROTO},
		{"link", syscall.ELOOP},
		{"dir", syscall.EPROTO},
		{"", syscall.EINVAL},
		{".hidden", syscall.EINVAL},
	} {
		_, err := d.Stat(c.name)
		wantErr(t, err, "stat", c.name, c.errno)
	}
}

// TestAttachedLifecycle: every way of attaching a named region holds it, and only until the last
// descriptor of the attachment closes.
func TestAttachedLifecycle(t *testing.T) {
	d := testDir(t)
	r := mustAttach(t, "Create", func() (*Region, error) { return d.Create("life", 100, 0) })
	if !attached(t, d, "life") {
		t.Fatal("the creator is not attached")
	}
	for _, open := range []struct {
		how    string
		attach func() (*Region, error)
	}{
		{"Open", func() (*Region, error) { return d.Open("life") }},
		{"OpenReadOnly", func() (*Region, error) { return d.OpenReadOnly("life") }},
		{"FromFd of an unlocked descriptor", func() (*Region, error) {
			fd, err := unix.Open(d.path("life"), unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, err
			}
			defer unix.Close(fd) // the Region's duplicate carries the lock on
			return FromFd(fd, false)
		}},
	} {
		r.Close()
		if attached(t, d, "life") {
			t.Fatalf("before %s: still attached", open.how)
		}
		r = mustAttach(t, open.how, open.attach)
		if !attached(t, d, "life") {
			t.Errorf("%s does not attach", open.how)
		}
	}
	// A duplicate handed on keeps the attachment after the original closes.
	dup := mustAttach(t, "FromFile", func() (*Region, error) { return FromFile(r.File()) })
	r.Close()
	if !attached(t, d, "life") {
		t.Error("a region received by descriptor is not attached once the sender closed")
	}
	dup.Close()
	if attached(t, d, "life") {
		t.Error("attached after every handle closed")
	}
	q, err := d.CreateRing("ring", 1024, 0)
	if err != nil {
		t.Fatal(err)
	}
	q2, err := d.OpenRing("ring")
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	if !attached(t, d, "ring") {
		t.Error("OpenRing does not attach")
	}
	q2.Close()
	if attached(t, d, "ring") {
		t.Error("ring attached after both closed")
	}
}

// TestAttachedDiesWithProcess: a process killed with SIGKILL holds nothing, even as an unreaped
// zombie, and GC then removes its region; a living holder's region stays.
func TestAttachedDiesWithProcess(t *testing.T) {
	if os.Getenv(syncHelperEnv) != "" {
		t.Skip("in the child")
	}
	d := testDir(t)
	for _, name := range []string{"dies", "lives"} {
		r := mustAttach(t, "Create", func() (*Region, error) { return d.Create(name, 64, 0) })
		r.Close()
	}
	dies := startSyncChild(t, "region-hold", d.path("dies"))
	lives := startSyncChild(t, "region-hold", d.path("lives"))
	waitFor(t, "both children to attach", func() bool { return attached(t, d, "dies") && attached(t, d, "lives") })
	if n, err := d.GC(); err != nil || n != 0 {
		t.Fatalf("GC with both holders alive = %d, %v; want 0", n, err)
	}
	dies.kill(t)
	waitFor(t, "the killed child's lock to go", func() bool { return !attached(t, d, "dies") })
	removed, err := d.Collect(false)
	if err != nil || !slices.Equal(removed, []string{"dies"}) {
		t.Fatalf("Collect = %q, %v; want [dies]", removed, err)
	}
	if _, err := d.Stat("dies"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the dead child's region is still there: %v", err)
	}
	if !attached(t, d, "lives") {
		t.Error("the living child's region lost its holder")
	}
	lives.kill(t)
}

// TestCollect: what a cleaner removes, and what it must never touch.
func TestCollect(t *testing.T) {
	if os.Getenv(syncHelperEnv) != "" {
		t.Skip("in the child")
	}
	d := testDir(t)
	mk := func(name string) *Region {
		return mustAttach(t, "Create "+name, func() (*Region, error) { return d.Create(name, 10, 0) })
	}
	mk("unused-1").Close()
	mk("unused-2").Close()
	held := mk("held")
	defer held.Close()
	q, err := d.CreateRing("ring-unused", 1024, 0)
	if err != nil {
		t.Fatal(err)
	}
	q.Close()

	// Things that are not regions, or not to be judged.
	os.WriteFile(d.path("notes.txt"), []byte("a user's file"), 0o600)
	os.WriteFile(d.path("empty"), nil, 0o600)
	mk("target").Close()
	os.Symlink("target", d.path("link-to-region"))
	os.Symlink("nowhere", d.path("dangling"))
	os.Mkdir(d.path("subdir"), 0o700)
	// A file with a region's bytes under a name no region can have.
	regionBytes, _ := os.ReadFile(d.path("target"))
	os.WriteFile(d.path(".hidden"), regionBytes, 0o600)

	// Creation temporary files: a dead creator's is garbage; a live creator's, or one held, is not.
	dead := deadPID(t)
	tmpDead := fmt.Sprintf(".mmipc-%d-%016x.tmp", dead, 0xdead)
	tmpAlive := fmt.Sprintf(".mmipc-%d-%016x.tmp", os.Getpid(), 0xa11e)
	tmpHeld := fmt.Sprintf(".mmipc-%d-%016x.tmp", dead, 0x4e1d)
	tmpBadName := fmt.Sprintf(".mmipc-%d-xyz.tmp", dead)
	for _, n := range []string{tmpDead, tmpAlive, tmpHeld, tmpBadName} {
		os.WriteFile(d.path(n), []byte("half made"), 0o600)
	}
	holdFd, err := unix.Open(d.path(tmpHeld), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(holdFd)
	if res, err := tryLiveLock(holdFd, unix.F_RDLCK); res != lockTaken || err != nil {
		t.Fatalf("locking %s: %v %v", tmpHeld, res, err)
	}

	listing := func() []string {
		var names []string
		entries, _ := os.ReadDir(string(d))
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	before := listing()
	want := []string{tmpDead, "ring-unused", "target", "unused-1", "unused-2"}
	slices.Sort(want)
	dry, err := d.Collect(true)
	if err != nil || !slices.Equal(dry, want) {
		t.Fatalf("Collect(dry run) = %q, %v\nwant %q", dry, err, want)
	}
	if after := listing(); !slices.Equal(after, before) {
		t.Fatalf("a dry run removed files: %q -> %q", before, after)
	}
	removed, err := d.Collect(false)
	if err != nil || !slices.Equal(removed, want) {
		t.Fatalf("Collect = %q, %v\nwant %q", removed, err, want)
	}
	left := listing()
	wantLeft := slices.DeleteFunc(slices.Clone(before), func(n string) bool { return slices.Contains(want, n) })
	if !slices.Equal(left, wantLeft) {
		t.Errorf("left %q\nwant %q", left, wantLeft)
	}
	// Everything kept is intact: the user's file, the symlink (now dangling: its target was an
	// unused region), the held region.
	if b, _ := os.ReadFile(d.path("notes.txt")); string(b) != "a user's file" {
		t.Errorf("notes.txt changed: %q", b)
	}
	if l, err := os.Readlink(d.path("link-to-region")); err != nil || l != "target" {
		t.Errorf("the symlink was touched: %q %v", l, err)
	}
	if n, err := d.GC(); err != nil || n != 0 {
		t.Errorf("a second GC = %d, %v; want 0", n, err)
	}
	if _, err := Dir(d.path("missing")).GC(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("GC of a missing directory: %v; want ENOENT", err)
	}
}

// deadPID returns the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	p.Wait()
	return p.Pid
}

// TestOpenerCollectorRace: an opener and a cleaner race on an unused region, thousands of times.
// Whatever the interleaving, an opener that succeeds holds a region that still has its name (the
// cleaner kept it), and one that fails got ENOENT because the cleaner removed it. Nobody is ever left
// attached to an unlinked region, and the cleaner never removes a region someone attached.
func TestOpenerCollectorRace(t *testing.T) {
	d := testDir(t)
	rounds := 3000
	if testing.Short() {
		rounds = 300
	}
	var opened, collected int
	for i := range rounds {
		name := fmt.Sprintf("race-%d", i%8)
		r := mustAttach(t, "Create", func() (*Region, error) { return d.Create(name, 64, 0) })
		r.Close()
		var wg sync.WaitGroup
		var peer *Region
		var openErr error
		var removed []string
		wg.Add(2)
		go func() { defer wg.Done(); peer, openErr = d.Open(name) }()
		go func() { defer wg.Done(); removed, _ = d.Collect(false) }()
		wg.Wait()
		gone := slices.Contains(removed, name)
		switch {
		case openErr == nil && gone:
			t.Fatalf("round %d: the opener attached and the cleaner removed the region", i)
		case openErr == nil:
			opened++
			var st, lst unix.Stat_t
			unix.Fstat(peer.Fd(), &st)
			if err := unix.Lstat(d.path(name), &lst); err != nil || lst.Ino != st.Ino {
				t.Fatalf("round %d: the opener's region no longer has its name (%v)", i, err)
			}
			peer.Close()
			d.Unlink(name)
		case !errors.Is(openErr, fs.ErrNotExist) || !gone:
			t.Fatalf("round %d: open failed with %v (collected: %v); want ENOENT after a collection", i, openErr, gone)
		default:
			collected++
		}
	}
	t.Logf("%d rounds: the opener won %d, the cleaner %d", rounds, opened, collected)
	if opened == 0 || collected == 0 {
		t.Logf("only one side ever won: the race was not exercised both ways on this machine")
	}
}

// TestOpenRetriesWhileCollecting: an opener that meets a cleaner's exclusive lock retries, and
// reports EBUSY (not a hang, not an attachment) when the lock stays; once the cleaner lets go
// without removing, the open succeeds.
func TestOpenRetriesWhileCollecting(t *testing.T) {
	d := testDir(t)
	mustAttach(t, "Create", func() (*Region, error) { return d.Create("busy", 64, 0) }).Close()
	fd, err := unix.Open(d.path("busy"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := tryLiveLock(fd, unix.F_WRLCK); res != lockTaken || err != nil {
		t.Fatalf("exclusive lock: %v %v", res, err)
	}
	start := time.Now()
	_, err = d.Open("busy")
	wantErr(t, err, "open", "busy", syscall.EBUSY)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("the opener gave up after %v; the retries are bounded at about 100 ms", el)
	}
	unix.Close(fd)
	// Released while the opener retries: it gets in. Unlinked while it retries: ENOENT, as the
	// cleaner's removal means. The cleaner lets go 5 ms into the open; on a machine so loaded that
	// it lets go only after the opener gave up (about 100 ms), the round proves nothing and is
	// tried again.
	for _, c := range []struct {
		what   string
		unlink bool
		errno  syscall.Errno // 0: the open succeeds
	}{{"released", false, 0}, {"removed", true, syscall.ENOENT}} {
		for try := 0; ; try++ {
			if c.unlink {
				d.Unlink("busy") // the last round's, if the cleaner did not remove it
				mustAttach(t, "Create", func() (*Region, error) { return d.Create("busy", 64, 0) }).Close()
			}
			fd, _ := unix.Open(d.path("busy"), unix.O_RDWR|unix.O_CLOEXEC, 0)
			tryLiveLock(fd, unix.F_WRLCK)
			letGo := make(chan time.Time, 1)
			go func() {
				time.Sleep(5 * time.Millisecond)
				if c.unlink {
					unix.Unlink(d.path("busy"))
				}
				letGo <- time.Now()
				unix.Close(fd)
			}()
			r, err := d.Open("busy")
			returned := time.Now()
			if r != nil {
				r.Close()
			}
			if at := <-letGo; errors.Is(err, syscall.EBUSY) && at.After(returned.Add(-time.Millisecond)) && try < 5 {
				t.Logf("%s: the cleaner let go only after the opener gave up; again", c.what)
				continue
			}
			if c.errno == 0 && err != nil {
				t.Fatalf("open after the cleaner let go: %v", err)
			}
			if c.errno != 0 {
				wantErr(t, err, "open", "busy", c.errno)
			}
			break
		}
	}
}

// TestCreateWhileCleanerTakesTemp: a cleaner that cannot tell the creator is alive (another pid
// namespace) takes the temporary file between its creation and its lock, and removes it, or just
// holds it. The creator starts again with a new temporary file and ends up attached; it never
// returns a region it does not hold.
func TestCreateWhileCleanerTakesTemp(t *testing.T) {
	d := testDir(t)
	for _, unlink := range []bool{true, false} {
		took := 0
		afterTempCreate = func(tmp string) {
			if took == 2 {
				return
			}
			took++
			fd, err := unix.Open(tmp, unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Error(err)
				return
			}
			tryLiveLock(fd, unix.F_WRLCK)
			if unlink {
				unix.Unlink(tmp)
				unix.Close(fd)
			} else {
				t.Cleanup(func() { unix.Close(fd) }) // holds it to the end
			}
		}
		name := fmt.Sprintf("taken-%v", unlink)
		r, err := d.Create(name, 64, 0)
		afterTempCreate = nil
		if err != nil {
			t.Fatalf("unlink %v: Create: %v", unlink, err)
		}
		if took != 2 || !attached(t, d, name) {
			t.Errorf("unlink %v: the cleaner took %d temporary files; attached %v", unlink, took, attached(t, d, name))
		}
		r.Close()
		if n, _ := d.GC(); n != 1 {
			t.Errorf("unlink %v: GC removed %d once the creator closed; want the region", unlink, n)
		}
	}
}

func TestList(t *testing.T) {
	d := testDir(t)
	if infos, err := d.List(); err != nil || len(infos) != 0 {
		t.Fatalf("List of an empty directory = %v, %v", infos, err)
	}
	b := mustAttach(t, "Create", func() (*Region, error) { return d.Create("b", 10, 0) })
	defer b.Close()
	mustAttach(t, "Create", func() (*Region, error) { return d.Create("a", 20, 0) }).Close()
	q, _ := d.CreateRing("c", 1024, 0)
	defer q.Close()
	os.WriteFile(d.path("not-a-region"), []byte("x"), 0o600)
	os.Symlink("a", d.path("link"))
	infos, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range infos {
		got = append(got, fmt.Sprintf("%s:%d:%v:%v", in.Name, in.Size, in.Attached, in.Ring))
	}
	want := []string{"a:20:false:false", "b:10:true:false", fmt.Sprintf("c:%d:true:true", RingControlSize+1024)}
	if !slices.Equal(got, want) {
		t.Errorf("List = %q\nwant %q", got, want)
	}
	if _, err := Dir(d.path("missing")).List(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List of a missing directory: %v", err)
	}
}

// TestGuardTruncated: a region whose file another process truncates faults on access; Guard and
// the ring's calls turn that into EPROTO instead of a crash, and the handle stays closable.
func TestGuardTruncated(t *testing.T) {
	d := testDir(t)
	r := mustAttach(t, "Create", func() (*Region, error) { return d.Create("trunc", 3*os.Getpagesize(), 0) })
	defer r.Close()
	var sum int
	if err := r.Guard(func(b []byte) { b[0] = 7; sum = int(b[0]) }); err != nil || sum != 7 {
		t.Fatalf("Guard on a healthy region: %v, %d", err, sum)
	}
	if err := os.Truncate(d.path("trunc"), int64(os.Getpagesize())); err != nil {
		t.Fatal(err)
	}
	err := r.Guard(func(b []byte) { sum += int(b[len(b)-1]) })
	e := wantErr(t, err, "guard", "trunc", syscall.EPROTO)
	if !strings.Contains(e.Detail, "truncated") {
		t.Errorf("detail %q does not say truncated", e.Detail)
	}
	// A panic that is not a fault is not swallowed.
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v; want the guarded function's own panic", p)
			}
		}()
		r.Guard(func([]byte) { panic("boom") })
	}()
	r.Close()
	wantErr(t, r.Guard(func([]byte) { t.Error("called on a closed region") }), "guard", "trunc", syscall.EBADF)

	for _, op := range []string{"send", "recv", "reserve", "peek", "stat"} {
		t.Run(op, func(t *testing.T) {
			q, err := d.CreateRing("ring-"+op, 4096, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			if err := q.Send([]byte("before"), TryOnce); err != nil {
				t.Fatal(err)
			}
			os.Truncate(d.path("ring-"+op), 0)
			buf := make([]byte, 64)
			var opErr error
			switch op {
			case "send":
				opErr = q.Send(bytes.Repeat([]byte{1}, 100), TryOnce)
			case "recv":
				_, opErr = q.Recv(buf, TryOnce)
			case "reserve":
				_, opErr = q.Reserve(10, TryOnce)
			case "peek":
				_, opErr = q.Peek(TryOnce)
			case "stat":
				_, opErr = q.Stat()
			}
			wantErr(t, opErr, "ring_"+op, "ring-"+op, syscall.EPROTO)
			// Faulted for good: later calls fail at once without touching the memory.
			wantErr(t, q.Send(nil, TryOnce), "ring_send", "ring-"+op, syscall.EPROTO)
			if err := q.Close(); err != nil {
				t.Errorf("Close after a fault: %v", err)
			}
		})
	}
}

// TestRingStat: depth, message count and who is on each side.
func TestRingStat(t *testing.T) {
	d := testDir(t)
	q, err := d.CreateRing("stat", 4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	info, err := d.RingStat("stat")
	if err != nil {
		t.Fatal(err)
	}
	if info != (RingInfo{Capacity: 4096, MaxMessage: 2040}) {
		t.Errorf("a new ring: %+v", info)
	}
	for _, m := range []string{"one", "two two", "three three three"} {
		if err := q.Send([]byte(m), TryOnce); err != nil {
			t.Fatal(err)
		}
	}
	info, _ = d.RingStat("stat")
	used := int(recordLen(3) + recordLen(7) + recordLen(17))
	me := os.Getpid()
	if info.Messages != 3 || info.Used != used || info.Tail != uint64(used) || info.Head != 0 ||
		info.Send != (SideInfo{Owner: me, OwnerAlive: true}) || info.Recv != (SideInfo{}) {
		t.Errorf("after 3 sends: %+v", info)
	}
	if _, err := q.Recv(make([]byte, 64), TryOnce); err != nil {
		t.Fatal(err)
	}
	info, _ = q.Stat()
	if info.Messages != 2 || info.Head != recordLen(3) || info.Recv.Owner != me {
		t.Errorf("after a receive: %+v", info)
	}
	// A second handle using the receive side at the same time makes it shared; a receiver blocked
	// on the empty ring shows as a sleeper.
	q.Recv(make([]byte, 64), TryOnce)
	q.Recv(make([]byte, 64), TryOnce)
	q2, err := d.OpenRing("stat")
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	done := make(chan error)
	go func() { _, err := q2.Recv(make([]byte, 64), 10*time.Second); done <- err }()
	waitFor(t, "a sleeping receiver", func() bool { i, _ := q.Stat(); return i.Recv.Sleepers == 1 })
	info, _ = q.Stat()
	if !info.Recv.Shared || info.Messages != 0 || info.Used != 0 {
		t.Errorf("with a second receiver asleep: %+v", info)
	}
	q.Send([]byte("wake"), TryOnce)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Not a ring, and damage the walk cannot get through.
	mustAttach(t, "Create", func() (*Region, error) { return d.Create("plain", 4096, 0) }).Close()
	_, err = d.RingStat("plain")
	wantErr(t, err, "ring_stat", "plain", syscall.EPROTO)
	info, _ = q.Stat()
	q.Send([]byte("x"), TryOnce)
	raw, _ := d.Open("stat")
	defer raw.Close()
	raw.Bytes()[RingControlSize+int(q.mask&info.Tail)+4] ^= 0xFF // the record's tag
	if info, err := d.RingStat("stat"); err != nil || info.Messages != -1 {
		t.Errorf("a damaged record: Messages %d, %v; want -1", info.Messages, err)
	}
}

func TestCopyFileProgress(t *testing.T) {
	dir := t.TempDir()
	src, dst := dir+"/src", dir+"/dst"
	data := bytes.Repeat([]byte("0123456789abcdef"), (10<<20)/16+3)
	os.WriteFile(src, data, 0o640)
	var calls [][2]int64
	if err := CopyFileProgress(src, dst, func(c, total int64) error { calls = append(calls, [2]int64{c, total}); return nil }); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
		t.Fatal("the copy differs")
	}
	n := int64(len(data))
	if len(calls) != 3 || calls[len(calls)-1] != [2]int64{n, n} {
		t.Fatalf("progress calls %v; want 3 chunks (4 MiB, 8 MiB, all) ending at %d", calls, n)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i][0] <= calls[i-1][0] || calls[i][1] != n {
			t.Fatalf("progress not increasing: %v", calls)
		}
	}
	os.WriteFile(src, nil, 0o600)
	calls = nil
	if err := CopyFileProgress(src, dst, func(c, total int64) error { calls = append(calls, [2]int64{c, total}); return nil }); err != nil || len(calls) != 1 || calls[0] != [2]int64{} {
		t.Fatalf("empty file: %v, calls %v; want one (0, 0)", err, calls)
	}

	// A progress that returns an error cancels: ECANCELED, the old dst intact, no temporary file.
	os.WriteFile(src, data, 0o640)
	os.WriteFile(dst, []byte("old"), 0o600)
	err := CopyFileProgress(src, dst, func(c, total int64) error {
		if c >= 4<<20 {
			return errors.New("interrupted")
		}
		return nil
	})
	if e := wantErr(t, err, "copy_file", src, syscall.ECANCELED); !strings.Contains(e.Detail, "interrupted") {
		t.Errorf("detail %q does not carry progress's error", e.Detail)
	}
	if b, _ := os.ReadFile(dst); string(b) != "old" {
		t.Errorf("a cancelled copy changed dst")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("a cancelled copy left files: %v", entries)
	}

	// A destination name of the longest length a file system takes still has room for the
	// temporary name.
	long := dir + "/" + strings.Repeat("x", 255)
	if err := CopyFile(src, long); err != nil {
		t.Fatalf("copy to a 255-byte name: %v", err)
	}
}

// TestRingFaultReleasesSide: a ring operation that faults on a lost page of the buffer while it
// holds the send side gives the side back, so that once the file is whole again another sender is
// not locked out by a handle that survived its fault. Close of the faulted handle detaches it.
func TestRingFaultReleasesSide(t *testing.T) {
	d := testDir(t)
	const capacity = 16384
	q, err := d.CreateRing("side", capacity, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	// Move the positions past the buffer's first page, so that the next send writes beyond it.
	msg := make([]byte, 1000)
	buf := make([]byte, 1000)
	for range 5 {
		if err := q.Send(msg, TryOnce); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Recv(buf, TryOnce); err != nil {
			t.Fatal(err)
		}
	}
	path := d.path("side")
	info, _ := d.Stat("side")
	page := int64(os.Getpagesize())
	// Keep the header page, the control block and the buffer's first bytes; lose the rest.
	if err := os.Truncate(path, 2*page); err != nil {
		t.Fatal(err)
	}
	wantErr(t, q.Send(msg, TryOnce), "ring_send", "side", syscall.EPROTO)
	if err := os.Truncate(path, info.FileSize); err != nil {
		t.Fatal(err)
	}
	other, err := d.OpenRing("side")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Send(msg, 2*time.Second); err != nil {
		t.Fatalf("another sender after the fault: %v (the faulted handle kept the send side)", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if unix.Fstat(q.Region().Fd(), &st) == nil {
		t.Error("the faulted ring's descriptor is still open after Close")
	}
}

// TestOpenRingWhileTruncated: OpenRing and RingStat read the control block after validating the
// header; a file truncated in between gives EPROTO, not SIGBUS. A goroutine truncates and restores
// the file while the other opens, many times.
func TestOpenRingWhileTruncated(t *testing.T) {
	d := testDir(t)
	q, err := d.CreateRing("flaky", 4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	info, _ := d.Stat("flaky")
	path := d.path("flaky")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				os.Truncate(path, info.FileSize)
				return
			default:
			}
			os.Truncate(path, int64(os.Getpagesize())) // the header stays, the control block goes
			os.Truncate(path, info.FileSize)
		}
	}()
	var ok, refused int
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); {
		r, err := d.OpenRing("flaky")
		if err == nil {
			r.Close()
			ok++
		} else if errors.Is(err, syscall.EPROTO) {
			refused++
		} else {
			t.Fatalf("OpenRing: %v; want success or EPROTO", err)
		}
		if _, err := d.RingStat("flaky"); err != nil && !errors.Is(err, syscall.EPROTO) {
			t.Fatalf("RingStat: %v; want success or EPROTO", err)
		}
	}
	close(stop)
	<-done
	t.Logf("%d opens succeeded, %d refused with EPROTO", ok, refused)
}

// TestCollectWhileNameReplaced: between the cleaner's check and its removal, someone removes the
// unused region's name and creates a new region under it. The cleaner must not remove the new
// region (it moves the name aside, sees another file, and puts it back).
func TestCollectWhileNameReplaced(t *testing.T) {
	d := testDir(t)
	mustAttach(t, "Create", func() (*Region, error) { return d.Create("churn", 64, 0) }).Close()
	var fresh *Region
	beforeCollectUnlink = func(path string) {
		beforeCollectUnlink = nil
		if err := d.Unlink("churn"); err != nil {
			t.Error(err)
		}
		fresh = mustAttach(t, "Create", func() (*Region, error) { return d.Create("churn", 128, 0) })
	}
	defer func() { beforeCollectUnlink = nil }()
	removed, err := d.Collect(false)
	if err != nil {
		t.Fatal(err)
	}
	if fresh == nil {
		t.Fatal("the hook did not run")
	}
	defer fresh.Close()
	if len(removed) != 0 {
		t.Errorf("Collect removed %q", removed)
	}
	info, err := d.Stat("churn")
	if err != nil || info.Size != 128 || !info.Attached {
		t.Fatalf("the new region: %+v, %v; want it in place, attached", info, err)
	}
	if entries, _ := os.ReadDir(string(d)); len(entries) != 1 {
		t.Errorf("the directory holds %v; want only the new region", entries)
	}
}
