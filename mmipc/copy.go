package mmipc

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"

	"golang.org/x/sys/unix"
)

// copyWindow is how much of each file CopyFile maps at a time, so that files larger than the
// address space allows (or than is wise) copy in bounded memory. A multiple of any page size.
var copyWindow int64 = 64 << 20

// CopyFile copies the regular file src to dst through memory mappings, like cp: dst is created or
// replaced with src's bytes and permission bits; an empty src gives an empty dst. The copy is
// written under a temporary name beside dst and renamed over it, so dst is never seen half-written
// and a failed copy leaves the old dst intact (a dst that is a symlink is replaced, not followed).
// Copying a file onto itself is EINVAL.
func CopyFile(src, dst string) error { return CopyFileProgress(src, dst, nil) }

// copyChunk is how much CopyFileProgress copies between two progress reports.
const copyChunk = 4 << 20

// CopyFileProgress is CopyFile reporting its progress: unless nil, progress is called after every
// chunk of at most 4 MiB with the bytes copied so far and the total, and last with copied == total
// (once, with 0 and 0, for an empty file). It is called on the copying goroutine; a slow progress
// slows the copy. A progress that returns an error stops the copy: the temporary file is removed,
// dst is left as it was, and the error is ECANCELED with progress's error as its detail.
func CopyFileProgress(src, dst string, progress func(copied, total int64) error) error {
	fail := func(err error, detail string) error {
		return &Error{Op: "copy_file", Name: src, Path: dst, Errno: errnoOf(err), Detail: detail}
	}
	if src == "" || dst == "" {
		return fail(syscall.EINVAL, "empty path")
	}
	in, sst, err := openRegular(src, unix.O_RDONLY)
	if err != nil {
		return fail(err, detailOf(err))
	}
	defer unix.Close(in)
	size := sst.Size
	var dst2 unix.Stat_t
	if unix.Stat(dst, &dst2) == nil && dst2.Dev == sst.Dev && dst2.Ino == sst.Ino {
		return fail(syscall.EINVAL, "source and destination are the same file")
	}

	// The temporary name carries (the start of) dst's name, for whoever finds it after a crash,
	// but never so much of it that a long valid dst makes the temporary name too long.
	base := filepath.Base(dst)
	if len(base) > 64 {
		base = base[:64]
	}
	tmp := filepath.Join(filepath.Dir(dst), fmt.Sprintf(".%s.mmipc-%d-%016x.tmp", base, os.Getpid(), rand.Uint64()))
	fd, err := unix.Open(tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fail(err, "creating the temporary file beside the destination")
	}
	renamed := false
	defer func() {
		unix.Close(fd)
		if !renamed {
			unix.Unlink(tmp)
		}
	}()
	if err := unix.Fchmod(fd, sst.Mode&0o777); err != nil {
		return fail(err, "fchmod")
	}
	if size > 0 {
		if err := reserve(fd, size); err != nil {
			return fail(err, fmt.Sprintf("reserving %d bytes", size))
		}
		for off := int64(0); off < size; off += copyWindow {
			if err := copyWindowAt(in, fd, off, min(copyWindow, size-off), size, progress); err != nil {
				where := fmt.Sprintf("at offset %d", off)
				if d := detailOf(err); d != "" {
					where = d + " (" + where + ")"
				}
				return fail(err, where)
			}
		}
	} else if progress != nil {
		if err := progress(0, 0); err != nil {
			return fail(syscall.ECANCELED, err.Error())
		}
	}
	if err := unix.Rename(tmp, dst); err != nil {
		return fail(err, "renaming the copy into place")
	}
	renamed = true
	return nil
}

// copyWindowAt copies n bytes at offset off from one file to the other through two mappings,
// reporting progress (towards total) per chunk.
func copyWindowAt(srcFd, dstFd int, off, n, total int64, progress func(copied, total int64) error) error {
	src, err := unix.Mmap(srcFd, off, int(n), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	defer unix.Munmap(src)
	dst, err := unix.Mmap(dstFd, off, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	defer unix.Munmap(dst)
	_ = unix.Madvise(src, unix.MADV_SEQUENTIAL)
	if progress == nil {
		return copyFaultSafe(dst, src)
	}
	for done := int64(0); done < n; {
		k := min(copyChunk, n-done)
		if err := copyFaultSafe(dst[done:done+k], src[done:done+k]); err != nil {
			return err
		}
		done += k
		if err := progress(off+done, total); err != nil {
			return reason{syscall.ECANCELED, err.Error()}
		}
	}
	return nil
}

// copyFaultSafe copies between mappings, turning a fault (the source was truncated under us, and
// reading past its new end raises SIGBUS) into EIO instead of a crash.
func copyFaultSafe(dst, src []byte) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if _, fault := r.(interface{ Addr() uintptr }); !fault {
				panic(r)
			}
			err = reason{syscall.EIO, "the file changed size during the copy"}
		}
	}()
	copy(dst, src)
	return nil
}
