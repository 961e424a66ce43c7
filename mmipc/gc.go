package mmipc

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Info describes a named region, read from its header and its file without attaching to it.
type Info struct {
	Name       string      // the name as given to Stat, or as found by List
	Path       string      // the file behind the name
	Size       int         // usable bytes, as asked at creation
	FileSize   int64       // the file's size: header page, data, padding to a page
	HeaderSize int         // bytes before the data
	Mode       fs.FileMode // permission bits
	UID, GID   uint32      // the file's owner
	CreatorPID int         // the creating process (it may be gone, or its pid reused)
	Created    time.Time   // when it was created
	Ring       bool        // the region holds a message ring (see RingStat)
	Attached   bool        // some process holds the region now (docs/PROTOCOL.md, "Liveness")
}

// Stat describes the named region without attaching to it. It fails as Open does: ENOENT, ELOOP for
// a symlink, EACCES, EPROTO for a file that is not a region.
func Stat(name string) (Info, error) { return EnvDir().Stat(name) }

// List describes every region in the directory of $MMIPC_DIR (default /dev/shm). See Dir.List.
func List() ([]Info, error) { return EnvDir().List() }

// GC removes the regions in the directory of $MMIPC_DIR (default /dev/shm) that no live process is
// attached to, and returns how many it removed. See Dir.Collect.
func GC() (int, error) { return EnvDir().GC() }

// Stat is the package-level Stat with names resolved in d.
func (d Dir) Stat(name string) (Info, error) {
	path, bad := d.resolve(name)
	if bad != "" {
		return Info{}, &Error{Op: "stat", Name: name, Errno: syscall.EINVAL, Detail: bad}
	}
	info, err := statPath(name, path)
	if err != nil {
		return Info{}, &Error{Op: "stat", Name: name, Path: path, Errno: errnoOf(err), Detail: detailOf(err)}
	}
	return info, nil
}

func statPath(name, path string) (Info, error) {
	fd, st, h, err := openRegionFile(path, true)
	if err != nil {
		return Info{}, err
	}
	defer unix.Close(fd)
	attached, _ := isAttached(fd) // unknown counts as not attached: nothing holds it that we know of
	return Info{
		Name:       name,
		Path:       path,
		Size:       int(h.DataSize),
		FileSize:   st.Size,
		HeaderSize: int(h.HeaderSize),
		Mode:       fs.FileMode(st.Mode & 0o777),
		UID:        st.Uid,
		GID:        st.Gid,
		CreatorPID: int(h.CreatorPID),
		Created:    time.Unix(0, h.Created),
		Ring:       h.Flags&FlagRing != 0,
		Attached:   attached,
	}, nil
}

// List describes every region in the directory d (DefaultDir for the empty Dir), sorted by name.
// Files that are not regions, temporary files of the creation protocol, symlinks and regions this
// process may not read are left out: List reports what it can vouch for, and fails only when the
// directory itself cannot be read.
func (d Dir) List() ([]Info, error) {
	dir := d.dirPath()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, &Error{Op: "list", Name: dir, Errno: errnoOf(err)}
	}
	var infos []Info
	for _, e := range entries {
		name := e.Name()
		if _, bad := d.resolve(name); bad != "" || !e.Type().IsRegular() {
			continue
		}
		if info, err := statPath(name, filepath.Join(dir, name)); err == nil {
			infos = append(infos, info)
		}
	}
	return infos, nil // os.ReadDir sorts by name
}

// GC is Collect(false), counting.
func (d Dir) GC() (int, error) {
	names, err := d.Collect(false)
	return len(names), err
}

// Collect removes, from the directory d, every region no live process is attached to, and the
// temporary files that creators killed mid-creation left behind; it returns their names (the
// temporary files under their dot-names), sorted. With dryRun it removes nothing and returns what
// it would remove now.
//
// It never removes a region some process holds, a file that is not a region, or a symlink, and it
// never follows one. A region counts as unattached when Collect gets the exclusive liveness lock;
// it removes the name while holding that lock, so an opener racing with it either attached first
// (and the region stays) or finds the name gone (ENOENT): nobody is left attached to a region that
// Collect unlinked. Regions this process may not open for writing, or whose names it may not
// remove, are left alone without an error. Only an unreadable directory is an error.
func (d Dir) Collect(dryRun bool) ([]string, error) {
	dir := d.dirPath()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, &Error{Op: "gc", Name: dir, Errno: errnoOf(err)}
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, name)
		var ok bool
		if pid, tmp := creationTempPID(name); tmp {
			ok = collectTemp(path, pid, dryRun)
		} else if _, bad := d.resolve(name); bad == "" {
			ok = collectRegion(path, dryRun)
		}
		if ok {
			removed = append(removed, name)
		}
	}
	sort.Strings(removed)
	return removed, nil
}

// collectRegion removes the region at path if nobody holds it; true if it did (or, with dryRun,
// would).
func collectRegion(path string, dryRun bool) bool {
	// Read-write even for a dry run: the real run needs it for the exclusive lock, and a dry run
	// must not promise what the real one cannot do.
	fd, st, _, err := openRegionFile(path, false)
	if err != nil {
		return false // not a region, gone, or not ours to judge
	}
	defer unix.Close(fd)
	return collectOpen(fd, path, &st, dryRun)
}

// collectOpen removes the file path, open as fd, if nobody holds it (unlinkUnheld); a dry run says
// whether it would. Where no lock can be taken (no OFD locks on this file system) the real run
// removes nothing, so the dry run promises nothing either.
func collectOpen(fd int, path string, st *unix.Stat_t, dryRun bool) bool {
	if !dryRun {
		return unlinkUnheld(fd, path, st)
	}
	attached, known := isAttached(fd)
	return known && !attached
}

// collectTemp removes a creation temporary file whose creator is dead. Both tests are needed: the
// creator takes its lock a moment after creating the file, and a pid alone may have been reused.
func collectTemp(path string, pid int, dryRun bool) bool {
	if pidAlive(pid) {
		return false
	}
	fd, st, err := openRegular(path, unix.O_RDWR|unix.O_NOFOLLOW)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return collectOpen(fd, path, &st, dryRun)
}

// unlinkUnheld removes path, which fd has open, if the exclusive liveness lock can be had and the
// name still leads to fd's file. The lock is released when the caller closes fd.
func unlinkUnheld(fd int, path string, st *unix.Stat_t) bool {
	if res, err := tryLiveLock(fd, unix.F_WRLCK); err != nil || res != lockTaken {
		return false // held (or no locks here, so nobody can tell: leave it)
	}
	if same, err := sameFile(path, st); err != nil || !same {
		return false
	}
	if beforeCollectUnlink != nil {
		beforeCollectUnlink(path)
	}
	// The name is moved aside first and the file it took checked: should someone have removed the
	// name and created a new region under it since the check above, it is the new region that
	// moved, and it goes back. Removing the name directly could remove that new region.
	aside := filepath.Join(filepath.Dir(path), fmt.Sprintf(".mmipc-gc-%d-%016x.tmp", os.Getpid(), rand.Uint64()))
	switch err := unix.Renameat2(unix.AT_FDCWD, path, unix.AT_FDCWD, aside, unix.RENAME_NOREPLACE); err {
	case nil:
	case unix.EINVAL, unix.ENOSYS: // no renameat2 here: the direct removal, with its small window
		return unix.Unlink(path) == nil
	default:
		return false
	}
	if same, err := sameFile(aside, st); err == nil && !same {
		unix.Renameat2(unix.AT_FDCWD, aside, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
		return false
	}
	return unix.Unlink(aside) == nil
}

// beforeCollectUnlink, when set (by tests only), runs between the cleaner's check that the name
// leads to the file it locked and the removal.
var beforeCollectUnlink func(path string)

// creationTempPID recognises a temporary file of the creation protocol, ".mmipc-<pid>-<16 hex>.tmp",
// or a region a cleaner moved aside and died before removing, ".mmipc-gc-<pid>-<16 hex>.tmp", and
// returns the pid of the process that made it.
func creationTempPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, ".mmipc-")
	if !ok {
		return 0, false
	}
	rest = strings.TrimPrefix(rest, "gc-")
	rest, ok = strings.CutSuffix(rest, ".tmp")
	if !ok {
		return 0, false
	}
	pidText, hex, ok := strings.Cut(rest, "-")
	if !ok || len(hex) != 16 || strings.Trim(hex, "0123456789abcdef") != "" {
		return 0, false
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 || pid >= pidMaxLimit {
		return 0, false
	}
	return pid, true
}

// pidAlive reports whether a process with this pid exists (a zombie counts as dead). When /proc
// cannot tell, it answers alive: a cleaner must err on the side of keeping files.
func pidAlive(pid int) bool {
	_, state, st := procStatOf(pid)
	return st == procUnknown || st == procFound && running(state)
}

// dirPath is the directory d names.
func (d Dir) dirPath() string {
	if d == "" {
		return DefaultDir
	}
	return string(d)
}
