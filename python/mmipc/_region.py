"""Regions: the Pythonic layer over the C handle (see __init__ for the API overview)."""
import ctypes
import errno
import operator
import weakref

from ._lib import RDONLY, encode, lib, raise_last


class Region:
    """One attachment to shared memory: a named region, an anonymous region, or a mapped file.

    Make one with create, open, anon, map_file or from_fd. `buf` is a memoryview on the shared
    bytes (read-only when attached read-only): writes are seen by every peer, in any language.

    close() detaches. `buf` itself is released then (as the standard SharedMemory's is), but views
    taken from it that are still alive (slices, numpy arrays, ...) stay valid: the mapping goes
    when the last of them is gone, never under them.
    """

    def __init__(self, handle, name, readonly):
        # Private: the module functions make Regions from a fresh handle they own.
        self._handle = handle
        self._name = name
        self._readonly = readonly
        self._size = lib.mmipc_size(handle)
        mem = (ctypes.c_ubyte * self._size).from_address(lib.mmipc_data(handle))
        # The handle is detached when `mem` dies: after close() and after every view of it is gone.
        # Each memoryview taken from `buf` keeps `mem` alive, so no view can outlive the mapping.
        self._detach = weakref.finalize(mem, lib.mmipc_detach, handle)
        # Not at interpreter exit: views may still be used then (a __del__, a daemon thread), and
        # the OS unmaps everything when the process ends anyway.
        self._detach.atexit = False
        view = memoryview(mem).cast("B")
        self._buf = view.toreadonly() if readonly else view
        self._view = view

    @property
    def buf(self):
        """The shared bytes as a memoryview of unsigned bytes ('B'). ValueError after close()."""
        self._check_open()
        return self._buf

    @property
    def size(self):
        """The number of usable bytes: exactly the size asked at creation."""
        return self._size

    @property
    def name(self):
        """The name or path given to create or open; None for anonymous and received regions."""
        return self._name

    @property
    def readonly(self):
        """True when attached read-only: `buf` is then a read-only memoryview."""
        return self._readonly

    @property
    def closed(self):
        return self._handle is None

    @property
    def fd(self):
        """The descriptor behind the region (a memfd for anonymous ones). It belongs to the
        region: do not close it. Hand it to a child with subprocess's pass_fds; the child
        attaches it with from_fd."""
        self._check_open()
        return lib.mmipc_fd(self._handle)

    def sync(self):
        """Writes changed pages to the region's file (msync), for disk-backed regions."""
        self._check_open()
        if lib.mmipc_sync(self._handle) != 0:
            raise_last()

    def close(self):
        """Detaches the region; calling it again does nothing. The region's name stays (see
        unlink). Views of `buf` still alive keep the memory mapped until they go."""
        if self._handle is None:
            return
        self._handle = None
        for view in (self._buf, self._view):
            try:
                view.release()
            except BufferError:
                pass  # exported, e.g. to numpy: the export keeps the mapping until it is gone
        self._buf = self._view = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self.closed else f"size={self._size}"
        mode = ", readonly" if self._readonly else ""
        return f"<mmipc.Region {self._name!r} {state}{mode}>"

    def _check_open(self):
        if self._handle is None:
            raise ValueError("mmipc: operation on a closed region")


# ctypes masks a Python int to the C type's width without a word (2**64 + 10 would pass as 10), so
# every integer argument is range-checked here first.
def _c_int_arg(value, ctype, err, what):
    value = operator.index(value)
    bits = 8 * ctypes.sizeof(ctype)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if ctype(-1).value < 0 else (0, (1 << bits) - 1)
    if value < lo:
        raise OSError(err, f"mmipc: {what} {value} is negative" if lo == 0 else f"mmipc: {what} {value} is below {lo}")
    if value > hi:
        raise OSError(err, f"mmipc: {what} {value} is larger than the C argument holds ({hi})")
    return value


def _size_arg(size):
    return _c_int_arg(size, ctypes.c_size_t, errno.EINVAL, "invalid argument: size")


def _mode_arg(mode):
    return _c_int_arg(mode, ctypes.c_uint, errno.EINVAL, "invalid argument: mode")


def _fd_arg(fd):
    return _c_int_arg(fd, ctypes.c_int, errno.EBADF, "bad file descriptor:")


def _made(handle, name, readonly=False):
    if not handle:
        raise_last()
    return Region(handle, name, readonly)


def create(name, size, mode=0o600):
    """Creates the named region `name` of `size` usable bytes (zeros) and attaches it.

    name: a region name ("jobs", a file under $MMIPC_DIR, default /dev/shm) or, when it contains
    '/', a file-system path. mode is applied exactly (0 means 0600). FileExistsError when the
    name is taken; OSError(EINVAL) for a bad name, size 0 or mode."""
    return _made(lib.mmipc_create(encode(name, "name"), _size_arg(size), _mode_arg(mode)), name)


def open(name, readonly=False):  # noqa: A001 - mirrors mmipc_open, as os.open mirrors open(2)
    """Attaches the existing named region `name`; its size comes from the region.

    FileNotFoundError when there is none; OSError(EPROTO) when the file is not a valid region;
    PermissionError when refused. readonly=True maps it read-only (buf is then read-only)."""
    flags = RDONLY if readonly else 0
    return _made(lib.mmipc_open(encode(name, "name"), flags), name, readonly)


def anon(size):
    """Makes an anonymous region of `size` bytes (a sealed memfd), for a child made with
    os.fork() (it inherits the mapping) or started with subprocess (pass region.fd in pass_fds;
    the child calls from_fd)."""
    return _made(lib.mmipc_anon(_size_arg(size)), None)


def map_file(path, writable=True):
    """Maps the whole existing regular file at `path`, raw (no header), as open + mmap would."""
    return _made(lib.mmipc_map_file(encode(path, "path"), 1 if writable else 0), path, not writable)


def from_fd(fd, readonly=False):
    """Attaches the region behind descriptor `fd`, received from another process (pass_fds,
    SCM_RIGHTS): a named region (validated as open validates it) or an anonymous region's memfd.
    fd stays the caller's; the region keeps its own duplicate."""
    flags = RDONLY if readonly else 0
    return _made(lib.mmipc_attach_fd(_fd_arg(fd), flags), None, readonly)


def unlink(name):
    """Removes the named region's name; attached peers keep working. Refuses (OSError EPROTO) a
    file that is not a region: it never deletes an ordinary file."""
    if lib.mmipc_unlink(encode(name, "name")) != 0:
        raise_last()


def copy_file(src, dst):
    """Copies the regular file src to dst through memory mappings, like cp."""
    if lib.mmipc_copy_file(encode(src, "src"), encode(dst, "dst")) != 0:
        raise_last()
