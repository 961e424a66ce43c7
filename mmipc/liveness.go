package mmipc

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Liveness, as docs/PROTOCOL.md ("Liveness") defines it: every process attached to a named region
// holds a shared open-file-description lock on byte 0 of the region's file for as long as it is
// attached. The kernel drops the lock when the last descriptor of that open file goes, SIGKILL
// included, so "someone holds it" is exact, with no pid to go stale. A cleaner (GC) removes a
// region only while it holds the exclusive lock, which it gets only when nobody is attached.

// liveLock is the lock request for the liveness byte. Byte 0 only, not the whole file, so that
// later protocol revisions can lock other bytes for other purposes.
func liveLock(typ int16) unix.Flock_t {
	return unix.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 1}
}

// lockResult is what an attempt on the liveness lock found.
type lockResult int

const (
	lockTaken       lockResult = iota // the lock is ours now
	lockBusy                          // a conflicting lock is held
	lockUnsupported                   // the file system has no OFD locks: no liveness there
)

// tryLiveLock takes the liveness lock without waiting: F_RDLCK when attaching, F_WRLCK when
// collecting. Errors other than "held" and "unsupported" are returned.
func tryLiveLock(fd int, typ int16) (lockResult, error) {
	lk := liveLock(typ)
	for {
		err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
		switch err {
		case nil:
			return lockTaken, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.EACCES:
			return lockBusy, nil
		case unix.EINVAL, unix.ENOLCK, unix.EOPNOTSUPP, unix.ENOSYS:
			return lockUnsupported, nil
		}
		return lockBusy, err
	}
}

// isAttached reports whether some open file description other than fd's holds the liveness lock;
// known is false when the file system cannot tell (no OFD locks there). F_OFD_GETLK takes no lock,
// so it disturbs nobody, and it works on a read-only descriptor.
func isAttached(fd int) (attached, known bool) {
	lk := liveLock(unix.F_WRLCK)
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err != nil {
		return false, false
	}
	return lk.Type != unix.F_UNLCK, true
}

// sameFile reports whether path (not followed) still names the file st describes.
func sameFile(path string, st *unix.Stat_t) (bool, error) {
	var lst unix.Stat_t
	if err := unix.Lstat(path, &lst); err != nil {
		return false, err
	}
	return lst.Dev == st.Dev && lst.Ino == st.Ino, nil
}

// attachTries bounds how often an opener retries when a cleaner holds the region or the name moved
// under it; the pauses grow from 50 µs, so the whole loop waits at most about 100 ms.
const attachTries = 12

// holdOutcome is what holdNamed found.
type holdOutcome int

const (
	held  holdOutcome = iota // locked, and the name leads to the locked file
	busy                     // a cleaner holds the file exclusively (it is removing it)
	moved                    // the name is gone, or leads to another file now
)

// holdNamed takes the liveness lock on a named region's freshly opened, validated file and checks
// that the name still leads to it. Unless held, the caller closes fd and opens the name again.
func holdNamed(fd int, path string, st *unix.Stat_t) (holdOutcome, error) {
	res, err := tryLiveLock(fd, unix.F_RDLCK)
	if err != nil {
		return busy, err
	}
	if res == lockBusy {
		return busy, nil
	}
	// Locked (or no locks here). A cleaner may have unlinked the name between our open and our
	// lock: then we hold a file nobody can find, and must look again.
	same, err := sameFile(path, st)
	switch {
	case err == unix.ENOENT || err == nil && !same:
		return moved, nil
	case err != nil:
		return busy, err
	}
	return held, nil
}

// retrying runs try until it reports done, at most attachTries times, pausing before each retry
// (50 µs, doubling, about 100 ms in all); it reports whether the tries ran out.
func retrying(try func() (done bool)) (ranOut bool) {
	for i := range attachTries {
		if i > 0 {
			time.Sleep(50 * time.Microsecond << min(i-1, 10))
		}
		if try() {
			return false
		}
	}
	return true
}

// openHeld opens and validates the region file at path and attaches it: the liveness lock is held
// and the name is known to lead to the locked file. A name that disappears meanwhile is ENOENT;
// a region that stays held exclusively, or a name that keeps changing files, is EBUSY.
func openHeld(path string, readOnly bool) (fd int, st unix.Stat_t, h Header, err error) {
	var outcome holdOutcome
	raced := false
	ranOut := retrying(func() bool {
		fd, st, h, err = openRegionFile(path, readOnly)
		if err != nil {
			if err == syscall.ENOENT && raced {
				err = reason{syscall.ENOENT, "removed by a cleaner while being opened"}
			}
			return true
		}
		outcome, err = holdNamed(fd, path, &st)
		if err == nil && outcome == held {
			return true
		}
		unix.Close(fd)
		fd = -1
		if err != nil {
			err = reason{errnoOf(err), "taking the liveness lock"}
			return true
		}
		raced = true
		return false
	})
	switch {
	case !ranOut:
		return fd, st, h, err
	case outcome == busy:
		return -1, st, h, reason{syscall.EBUSY, "another process holds the region's liveness lock exclusively (a cleaner, or an fcntl lock on byte 0)"}
	}
	var lst unix.Stat_t
	if unix.Lstat(path, &lst) == unix.ENOENT {
		return -1, st, h, reason{syscall.ENOENT, "removed by a cleaner while being opened"}
	}
	return -1, st, h, reason{syscall.EBUSY, "the name kept leading to other files while being opened"}
}

// holdDescriptor takes the liveness lock through a received descriptor, waiting out a cleaner's
// exclusive lock as an opener does (the cleaner either removes the name, which leaves the region
// usable by descriptor, or lets go); EBUSY if the exclusive lock stays.
func holdDescriptor(fd int) error {
	var err error
	if retrying(func() bool {
		var res lockResult
		res, err = tryLiveLock(fd, unix.F_RDLCK)
		return err != nil || res != lockBusy
	}) {
		return reason{syscall.EBUSY, "another process holds the region's liveness lock exclusively"}
	}
	if err != nil {
		return reason{errnoOf(err), "taking the liveness lock"}
	}
	return nil
}
