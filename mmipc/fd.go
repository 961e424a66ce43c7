package mmipc

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// FromFile attaches the region behind f, a descriptor handed over by another process: inherited
// from a parent (exec.Cmd's ExtraFiles arrive as fd 3, 4, ...; wrap one with os.NewFile) or
// received over a Unix socket. The mapping is read-write, so f must be open for reading and
// writing (else EACCES); see FromFileReadOnly.
//
// What f holds decides how it is mapped (docs/PROTOCOL.md, "Descriptors"): an anonymous region's
// memfd, sealed against shrinking, is mapped raw, all of it data; any other file must be a named
// region and is validated as Open validates one (EPROTO if it is not a region, whatever it is).
//
// f stays the caller's: the Region keeps its own duplicate of the descriptor, so closing f does
// not affect the Region, and closing the Region does not close f. The Region has no name.
func FromFile(f *os.File) (*Region, error) { return fromFile(f, false) }

// FromFileReadOnly is FromFile with a read-only mapping: a write to its bytes faults. f may be
// open read-only.
func FromFileReadOnly(f *os.File) (*Region, error) { return fromFile(f, true) }

// FromFd is FromFile for a raw descriptor, such as one from unix.Recvmsg or a C caller. fd stays
// the caller's, as with FromFile.
func FromFd(fd int, readOnly bool) (*Region, error) {
	return attachFd(fd, readOnly, "", fmt.Sprintf("fd %d", fd))
}

func fromFile(f *os.File, readOnly bool) (*Region, error) {
	if f == nil {
		return nil, &Error{Op: "attach_fd", Errno: syscall.EBADF, Detail: "the file is nil"}
	}
	// SyscallConn, not Fd: Fd would switch a non-blocking descriptor to blocking mode, changing the
	// open file description that the sending process shares.
	conn, err := f.SyscallConn()
	if err != nil {
		return nil, &Error{Op: "attach_fd", Name: f.Name(), Errno: syscall.EBADF, Detail: err.Error()}
	}
	var r *Region
	if cerr := conn.Control(func(fd uintptr) {
		r, err = attachFd(int(fd), readOnly, f.Name(), fmt.Sprintf("fd %d", fd))
	}); cerr != nil {
		return nil, &Error{Op: "attach_fd", Name: f.Name(), Errno: syscall.EBADF, Detail: cerr.Error()}
	}
	return r, err
}

// attachFd maps the region behind fd through a duplicate of it. label and where name it in errors.
func attachFd(fd int, readOnly bool, label, where string) (*Region, error) {
	fail := func(err error, detail string) (*Region, error) {
		return nil, &Error{Op: "attach_fd", Name: label, Path: where, Errno: errnoOf(err), Detail: detail}
	}
	if fd < 0 {
		return fail(syscall.EBADF, "a negative descriptor")
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return fail(err, "")
	}
	switch acc := flags & unix.O_ACCMODE; {
	case acc == unix.O_WRONLY:
		return fail(syscall.EACCES, "the descriptor is open write-only; a mapping needs read access")
	case acc == unix.O_RDONLY && !readOnly:
		return fail(syscall.EACCES, "the descriptor is open read-only; attach it read-only")
	}
	// The Region owns a duplicate, so the caller's descriptor keeps its own life.
	own, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fail(err, "dup")
	}
	mapped := false
	defer closeUnless(&mapped, own)
	var st unix.Stat_t
	if err := unix.Fstat(own, &st); err != nil {
		return fail(err, "fstat")
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fail(syscall.EPROTO, "not a regular file: neither a region nor an anonymous region's memfd")
	}
	prot := unix.PROT_READ | unix.PROT_WRITE
	if readOnly {
		prot = unix.PROT_READ
	}

	var start, size, mapLen int64 // where the data starts in the file, its length, and what to map
	if isAnonMemfd(own) {
		// Sealed against shrinking, so its size is final from below: no peer can make the mapping
		// fault by truncating it. Growth beyond what is mapped now is not seen.
		start, size, mapLen = 0, st.Size, st.Size
		if size == 0 {
			return fail(syscall.EPROTO, "an empty memfd")
		}
	} else {
		buf := make([]byte, HeaderFixedLen)
		n, err := unix.Pread(own, buf, 0)
		if err != nil {
			return fail(err, "reading the header")
		}
		h, err := DecodeHeader(buf[:n], st.Size)
		if err != nil {
			return fail(syscall.EPROTO, err.Error()+" (a descriptor must be a named region, or an anonymous region's sealed memfd)")
		}
		// The whole file, padding included, exactly as Open maps it.
		start, size, mapLen = int64(h.HeaderSize), int64(h.DataSize), st.Size
		// Attached, like an opener: the lock goes on the open file description the descriptor
		// shares with its sender (a no-op when the sender holds it already). No name to re-check:
		// a region reached by descriptor stays usable even if a cleaner removed its name.
		if err := holdDescriptor(own); err != nil {
			return fail(err, detailOf(err))
		}
	}
	if mapLen > int64(maxMapLen) {
		return fail(syscall.EFBIG, fmt.Sprintf("%d bytes do not fit in this process's address space", mapLen))
	}
	mem, err := unix.Mmap(own, 0, int(mapLen), prot, unix.MAP_SHARED)
	if err != nil {
		return fail(err, "mmap")
	}
	mapped = true
	end := start + size
	return &Region{fd: own, mem: mem, data: mem[start:end:end], readOnly: readOnly}, nil
}

// maxMapLen is the longest mapping a slice can describe here.
const maxMapLen = int(^uint(0) >> 1)

// isAnonMemfd tells an anonymous region's descriptor from a named region's: Anon seals its memfd
// against shrinking, which no named region file ever is (tmpfs files report only F_SEAL_SEAL, other
// file systems fail F_GET_SEALS).
func isAnonMemfd(fd int) bool {
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	return err == nil && seals&unix.F_SEAL_SHRINK != 0
}
