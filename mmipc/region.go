package mmipc

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Region is one attachment to shared memory: a named region, an anonymous region, or a raw file
// mapping. Its bytes stay mapped until Close; a slice from Bytes must not be used after that.
// A Region's methods are safe for concurrent use; the shared bytes themselves are not synchronised.
type Region struct {
	name     string
	fd       int  // the descriptor behind the mapping, owned by the Region
	readOnly bool // mapped without write permission

	mu         sync.RWMutex // guards everything below against Close
	file       *os.File     // made on the first File call; then it owns fd
	mem        []byte       // the whole mapping: header page (named regions only), then data
	data       []byte       // the usable bytes
	closed     bool
	closeError error
}

// Bytes returns the region's usable bytes (after the header, for a named region). The slice aliases
// the shared mapping: writes are seen by every peer. It is nil after Close.
func (r *Region) Bytes() []byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.data
}

// Size returns the number of usable bytes: exactly the size asked at creation (0 after Close).
func (r *Region) Size() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.data)
}

// Name returns the name or path the region was created or opened with ("" when anonymous).
func (r *Region) Name() string { return r.name }

// File returns the open file behind the region (a memfd for anonymous regions). It belongs to the
// Region: Close closes it. It is nil after Close.
//
// Hand it to a child process to share the region: put it in exec.Cmd's ExtraFiles and the child
// attaches it with FromFile (or mmipc_attach_fd in C).
func (r *Region) File() *os.File {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Made on demand: os.NewFile costs system calls (and would start Go's network poller in a C
	// program) that most users, and the C library, never need.
	if r.file == nil && !r.closed {
		name := r.name
		if name == "" {
			name = "mmipc-anon"
		}
		r.file = os.NewFile(uintptr(r.fd), name)
	}
	return r.file
}

// Fd returns the descriptor behind the region (a memfd for anonymous regions). It belongs to the
// Region and is valid until Close.
func (r *Region) Fd() int { return r.fd }

// Mapping returns the whole mapping: for a named region the header page followed by the data, for
// the others the data itself. It is for code that must unmap without Go, such as the C library's
// fork-safe detach; ordinary users want Bytes.
func (r *Region) Mapping() []byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.mem
}

// Sync flushes the mapping to its file with msync(MS_SYNC). It is a cheap no-op for memory-backed
// regions.
func (r *Region) Sync() error {
	r.mu.RLock() // held so that Close cannot unmap under msync
	defer r.mu.RUnlock()
	if r.closed {
		return &Error{Op: "sync", Name: r.name, Errno: syscall.EBADF, Detail: "region is closed"}
	}
	if err := unix.Msync(r.mem, unix.MS_SYNC); err != nil {
		return &Error{Op: "sync", Name: r.name, Errno: errnoOf(err)}
	}
	return nil
}

// Close unmaps the region and closes its file. Peers are unaffected, and a named region keeps its
// name (see Unlink). Calling Close again returns the first call's result.
func (r *Region) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return r.closeError
	}
	r.closed = true
	err := unix.Munmap(r.mem)
	var cerr error
	if r.file != nil {
		cerr = r.file.Close()
	} else {
		cerr = unix.Close(r.fd)
	}
	if err == nil {
		err = cerr
	}
	r.mem, r.data, r.file = nil, nil, nil
	if err != nil {
		r.closeError = &Error{Op: "close", Name: r.name, Errno: errnoOf(err)}
	}
	return r.closeError
}

// Create makes a new named region of size usable bytes in the directory from $MMIPC_DIR (default
// /dev/shm), or at a file-system path when name contains '/'. perm is applied exactly (the umask
// does not filter it); 0 means 0600. The bytes read as zeros. It fails with fs.ErrExist (EEXIST)
// if the name is taken, ELOOP if the name is a symlink.
func Create(name string, size int, perm fs.FileMode) (*Region, error) {
	return EnvDir().Create(name, size, perm)
}

// Open attaches an existing named region for reading and writing. See Dir.Open.
func Open(name string) (*Region, error) { return EnvDir().Open(name) }

// OpenReadOnly attaches an existing named region read-only: its bytes are mapped without write
// permission, so a write faults.
func OpenReadOnly(name string) (*Region, error) { return EnvDir().OpenReadOnly(name) }

// Unlink removes a named region's name. Attached peers keep their mappings; the memory is freed
// when the last one detaches. It refuses (EPROTO) a file that is not a valid region.
func Unlink(name string) error { return EnvDir().Unlink(name) }

// Create is the package-level Create with names resolved in d.
//
// The creation protocol (docs/PROTOCOL.md): the file is created under a temporary dot-name in the
// same directory, sized, given its header, and only then linked to its name. An opener therefore
// never sees a half-made region, and of two racing creators exactly one wins; the other gets EEXIST.
func (d Dir) Create(name string, size int, perm fs.FileMode) (*Region, error) {
	return d.create("create", name, size, perm, 0, nil)
}

// create is the creation protocol. flags goes into the header; init, if not nil, fills the data
// before the region gets its name (a ring's control block), so openers never see it half-made.
func (d Dir) create(op, name string, size int, perm fs.FileMode, flags uint32, init func(data []byte)) (*Region, error) {
	path, bad := d.resolve(name)
	fail := func(errno syscall.Errno, detail string) (*Region, error) {
		return nil, &Error{Op: op, Name: name, Path: path, Errno: errno, Detail: detail}
	}
	switch {
	case bad != "":
		return fail(syscall.EINVAL, bad)
	case size <= 0:
		return fail(syscall.EINVAL, fmt.Sprintf("size %d: a region needs at least one byte", size))
	case perm&^fs.ModePerm != 0:
		return fail(syscall.EINVAL, fmt.Sprintf("mode %#o has bits outside 0777", uint32(perm)))
	}
	if perm == 0 {
		perm = 0o600
	}
	pageSize := os.Getpagesize()
	fileSize, ok := regionFileSize(uint64(pageSize), uint64(size))
	if !ok {
		return fail(syscall.EINVAL, fmt.Sprintf("size %d overflows", size))
	}

	pid := os.Getpid() // a system call: once for the temporary name and the header
	fd, tmp, err := createTemp(filepath.Dir(path), pid)
	if err != nil {
		return fail(errnoOf(err), detailOf(err))
	}
	// Whatever happens next, the temporary name goes: on success the region lives on under its name.
	defer unix.Unlink(tmp)
	linked := false
	defer closeUnless(&linked, fd)
	if err := unix.Fchmod(fd, uint32(perm)); err != nil {
		return fail(errnoOf(err), "fchmod")
	}
	if err := reserve(fd, fileSize); err != nil {
		return fail(errnoOf(err), fmt.Sprintf("reserving %d bytes", fileSize))
	}
	mem, err := unix.Mmap(fd, 0, int(fileSize), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail(errnoOf(err), "mmap")
	}
	Header{
		Version:    ProtocolVersion,
		HeaderSize: uint32(pageSize),
		DataSize:   uint64(size),
		CreatorPID: uint32(pid),
		Flags:      flags,
		Created:    time.Now().UnixNano(),
	}.Encode(mem)
	if init != nil {
		init(mem[pageSize : pageSize+size])
	}
	if err := unix.Link(tmp, path); err != nil {
		unix.Munmap(mem)
		errno := errnoOf(err)
		if errno == syscall.EEXIST && isSymlink(path) {
			return fail(syscall.ELOOP, "the name is a symlink")
		}
		return fail(errno, "")
	}
	linked = true
	return &Region{name: name, fd: fd, mem: mem, data: mem[pageSize : pageSize+size : pageSize+size]}, nil
}

// createTemp creates the creation protocol's temporary file in dir and takes its liveness lock at
// once, so that the creator is attached before the region has its name (docs/PROTOCOL.md,
// "Liveness"). A cleaner that judged the temporary file abandoned (it cannot tell a live creator
// in another pid namespace) may take it in the moment between the creation and the lock: then
// the lock is busy or the name is gone, and a new temporary file is made.
func createTemp(dir string, pid int) (fd int, tmp string, err error) {
	if retrying(func() bool {
		tmp = filepath.Join(dir, fmt.Sprintf(".mmipc-%d-%016x.tmp", pid, rand.Uint64()))
		fd, err = unix.Open(tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			err = reason{errnoOf(err), "creating the temporary file in " + dir}
			return true
		}
		if afterTempCreate != nil {
			afterTempCreate(tmp)
		}
		res, lerr := tryLiveLock(fd, unix.F_RDLCK)
		if lerr != nil {
			unix.Close(fd)
			unix.Unlink(tmp)
			err = reason{errnoOf(lerr), "taking the liveness lock"}
			return true
		}
		var st unix.Stat_t
		if res != lockBusy && unix.Fstat(fd, &st) == nil {
			if same, _ := sameFile(tmp, &st); same {
				return true
			}
		}
		unix.Close(fd) // a cleaner has it: leave the name to the cleaner
		return false
	}) {
		return -1, "", reason{syscall.EBUSY, "a cleaner kept taking the temporary files in " + dir}
	}
	if err != nil {
		return -1, "", err
	}
	return fd, tmp, nil
}

// afterTempCreate, when set (by tests only), runs between the creation of a temporary file and its
// lock: the moment a cleaner can take it.
var afterTempCreate func(tmp string)

// Open attaches the named region for reading and writing. The file must be a regular file, not a
// symlink (ELOOP), whose header validates against its real size (else EPROTO); opening never blocks.
// The process is attached until Close (docs/PROTOCOL.md, "Liveness"): GC leaves the region alone.
// A region GC removes during the open is ENOENT; one whose liveness lock another process keeps
// exclusively for more than about 100 ms is EBUSY.
func (d Dir) Open(name string) (*Region, error) { return d.open(name, false) }

// OpenReadOnly is Open with a read-only mapping.
func (d Dir) OpenReadOnly(name string) (*Region, error) { return d.open(name, true) }

func (d Dir) open(name string, readOnly bool) (*Region, error) {
	r, _, err := d.openRegion("open", name, readOnly)
	return r, err
}

// openRegion attaches a named region and also returns its validated header.
func (d Dir) openRegion(op, name string, readOnly bool) (*Region, Header, error) {
	path, bad := d.resolve(name)
	if bad != "" {
		return nil, Header{}, &Error{Op: op, Name: name, Errno: syscall.EINVAL, Detail: bad}
	}
	fd, _, h, err := openHeld(path, readOnly)
	if err != nil {
		return nil, Header{}, &Error{Op: op, Name: name, Path: path, Errno: errnoOf(err), Detail: detailOf(err)}
	}
	fileSize, _ := h.FileSize()
	prot := unix.PROT_READ | unix.PROT_WRITE
	if readOnly {
		prot = unix.PROT_READ
	}
	mem, err := unix.Mmap(fd, 0, int(fileSize), prot, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, Header{}, &Error{Op: op, Name: name, Path: path, Errno: errnoOf(err), Detail: "mmap"}
	}
	hs, n := int(h.HeaderSize), int(h.DataSize)
	return &Region{name: name, fd: fd, mem: mem, data: mem[hs : hs+n : hs+n], readOnly: readOnly}, h, nil
}

// Unlink is the package-level Unlink with names resolved in d.
func (d Dir) Unlink(name string) error {
	path, bad := d.resolve(name)
	if bad != "" {
		return &Error{Op: "unlink", Name: name, Errno: syscall.EINVAL, Detail: bad}
	}
	fd, st, _, err := openRegionFile(path, true)
	if err != nil {
		return &Error{Op: "unlink", Name: name, Path: path, Errno: errnoOf(err), Detail: detailOf(err)}
	}
	defer unix.Close(fd)
	// Remove the name only if it still names the file just validated: never an ordinary file that
	// replaced the region meanwhile.
	var lst unix.Stat_t
	if err := unix.Lstat(path, &lst); err != nil || lst.Dev != st.Dev || lst.Ino != st.Ino {
		return &Error{Op: "unlink", Name: name, Path: path, Errno: syscall.ENOENT, Detail: "the name changed while it was being removed"}
	}
	if err := unix.Unlink(path); err != nil {
		return &Error{Op: "unlink", Name: name, Path: path, Errno: errnoOf(err)}
	}
	return nil
}

// Anon makes an anonymous region of size bytes: a sealed memfd (it cannot be shrunk under a peer)
// mapped shared. It survives fork, and its File can be handed to a child process.
func Anon(size int) (*Region, error) {
	fail := func(errno syscall.Errno, detail string) (*Region, error) {
		return nil, &Error{Op: "anon", Errno: errno, Detail: detail}
	}
	if size <= 0 {
		return fail(syscall.EINVAL, fmt.Sprintf("size %d: a region needs at least one byte", size))
	}
	if _, ok := regionFileSize(uint64(os.Getpagesize()), uint64(size)); !ok {
		return fail(syscall.EINVAL, fmt.Sprintf("size %d overflows", size))
	}
	fd, err := unix.MemfdCreate("mmipc-anon", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return fail(errnoOf(err), "memfd_create")
	}
	mapped := false
	defer closeUnless(&mapped, fd)
	if err := reserve(fd, int64(size)); err != nil {
		return fail(errnoOf(err), fmt.Sprintf("reserving %d bytes", size))
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		return fail(errnoOf(err), "sealing the memfd")
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail(errnoOf(err), "mmap")
	}
	mapped = true
	return &Region{fd: fd, mem: mem, data: mem[:size:size]}, nil
}

// MapFile maps a whole existing regular file, raw: no header, every byte of the file is data, as in
// the classic open + mmap(MAP_SHARED) recipe. Symlinks are followed (the path is the user's own
// file, not a shared name). An empty file is EINVAL: there is nothing to map.
func MapFile(path string, writable bool) (*Region, error) {
	fail := func(err error, detail string) (*Region, error) {
		return nil, &Error{Op: "map_file", Name: path, Errno: errnoOf(err), Detail: detail}
	}
	if path == "" {
		return fail(syscall.EINVAL, "empty path")
	}
	flags, prot := unix.O_RDONLY, unix.PROT_READ
	if writable {
		flags, prot = unix.O_RDWR, unix.PROT_READ|unix.PROT_WRITE
	}
	fd, st, err := openRegular(path, flags)
	if err != nil {
		return fail(err, detailOf(err))
	}
	mapped := false
	defer closeUnless(&mapped, fd)
	size := st.Size
	if size == 0 {
		return fail(syscall.EINVAL, "the file is empty: there is nothing to map (size it first)")
	}
	if size > int64(maxMapLen) {
		return fail(syscall.EFBIG, "file too large to map")
	}
	mem, err := unix.Mmap(fd, 0, int(size), prot, unix.MAP_SHARED)
	if err != nil {
		return fail(err, "mmap")
	}
	mapped = true
	return &Region{name: path, fd: fd, mem: mem, data: mem[:size:size], readOnly: !writable}, nil
}

// reason is an errno with the reason behind it, for failures the OS's errno alone does not explain
// (why a file is not a region, for instance). Error turns it into Errno plus Detail.
type reason struct {
	errno  syscall.Errno
	detail string
}

func (e reason) Error() string { return e.detail }
func (e reason) Unwrap() error { return e.errno }

func notRegion(detail string) error { return reason{syscall.EPROTO, detail} }

func detailOf(err error) string {
	if r, ok := err.(reason); ok {
		return r.detail
	}
	return ""
}

// openRegular opens path without blocking and without becoming a controlling terminal, and checks
// that it is a regular file. Anything else (directory, FIFO, device, socket) is EPROTO. It returns
// the descriptor and its fstat.
func openRegular(path string, flags int) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := unix.Open(path, flags|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		switch err {
		case unix.EISDIR, unix.ENXIO, unix.ENODEV, unix.EOPNOTSUPP:
			return -1, st, notRegion("not a regular file")
		}
		return -1, st, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, st, notRegion("not a regular file")
	}
	return fd, st, nil
}

// openRegionFile opens a named region's file (never through a symlink) and validates its header
// against the file's real size, reading it with pread so that a short file cannot fault.
func openRegionFile(path string, readOnly bool) (int, unix.Stat_t, Header, error) {
	flags := unix.O_RDWR
	if readOnly {
		flags = unix.O_RDONLY
	}
	fd, st, err := openRegular(path, flags|unix.O_NOFOLLOW)
	if err != nil {
		return -1, st, Header{}, err
	}
	buf := make([]byte, HeaderFixedLen)
	n, err := unix.Pread(fd, buf, 0)
	if err != nil {
		unix.Close(fd)
		return -1, st, Header{}, err
	}
	h, err := DecodeHeader(buf[:n], st.Size)
	if err != nil {
		unix.Close(fd)
		return -1, st, Header{}, notRegion(err.Error())
	}
	return fd, st, h, nil
}

// reserve gives the file its size with fallocate, so that a full /dev/shm is reported now as ENOSPC
// instead of later as SIGBUS in a peer; file systems without fallocate get ftruncate.
func reserve(fd int, size int64) error {
	err := unix.Fallocate(fd, 0, 0, size)
	for err == unix.EINTR { // a signal to the calling C thread; what was allocated stays allocated
		err = unix.Fallocate(fd, 0, 0, size)
	}
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
		err = unix.Ftruncate(fd, size)
	}
	return err
}

// closeUnless closes fd when a constructor returns early, that is unless *kept was set: on success
// the descriptor belongs to the new Region.
func closeUnless(kept *bool, fd int) {
	if !*kept {
		unix.Close(fd)
	}
}

func isSymlink(path string) bool {
	var st unix.Stat_t
	return unix.Lstat(path, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}
