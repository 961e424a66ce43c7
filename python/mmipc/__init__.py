"""mmipc: shared memory between Python, C and Go processes, over libmmipc.so (standard library only).

    import mmipc

    with mmipc.create("jobs", 4096) as r:       # C: mmipc_create("jobs", 4096, 0600)
        r.buf[:5] = b"hello"                    # any peer that opens "jobs" sees it
        ...
        mmipc.unlink("jobs")

    peer = mmipc.open("jobs")                   # in another process, any language
    bytes(peer.buf[:5])

Names across the languages: the C function mmipc_X is mmipc.X here, and a handle's function is a
method or property of Region:

    C (mmipc.h)                       Python                          Go (package mmipc)
    mmipc_create(name, size, mode)    create(name, size, mode=0o600)  Create
    mmipc_open(name, flags)           open(name, readonly=False)      Open, OpenReadOnly
    mmipc_anon(size)                  anon(size)                      Anon
    mmipc_map_file(path, writable)    map_file(path, writable=True)   MapFile
    mmipc_attach_fd(fd, flags)        from_fd(fd, readonly=False)     FromFile, FromFd
    mmipc_unlink(name)                unlink(name)                    Unlink
    mmipc_copy_file(src, dst)         copy_file(src, dst)             CopyFile
    mmipc_stat(name, &info)           stat(name) -> RegionInfo        Stat -> Info
    mmipc_gc()                        gc()                            GC
    mmipc_data / mmipc_size           Region.buf / Region.size        Bytes / Size
    mmipc_fd / mmipc_sync             Region.fd / Region.sync()       Fd, File / Sync
    mmipc_detach                      Region.close(), with-block      Close
    mmipc_version                     version()                       Version
    mmipc_wait / mmipc_notify         wait(buf, off, v) / notify(...)  Wait / Notify
    mmipc_lock_*                      Lock(buf, off): acquire, ...    LockAt(b): Acquire, ...
    mmipc_ring_create / _open         create_ring / open_ring         CreateRing / OpenRing
    mmipc_ring_send / _recv           Ring.send / recv, recv_into     Send / Recv
    mmipc_ring_reserve / _commit      Ring.reserve / commit           Reserve / Commit
    mmipc_ring_peek / _release        Ring.peek / release             Peek / Release

Errors are OSError(errno, message), the message being mmipc_last_error()'s, so the usual
subclasses appear: FileExistsError (EEXIST), FileNotFoundError (ENOENT), PermissionError
(EACCES); other errnos (EPROTO: not a region, ENOTSUP: see fork) are plain OSError with .errno.

Names live in $MMIPC_DIR (default /dev/shm), read by the library at each call, so setting
os.environ["MMIPC_DIR"] in Python takes effect at once. A name containing '/' is a file path.

Timeouts of the sync layer are in seconds: None waits forever, 0 tries once (BlockingIOError),
a positive number raises TimeoutError when it expires.

Fork: after os.fork() the child may use Region.buf, .size, .fd, .sync() and .close(), and the
whole sync layer (wait, notify, Lock, Ring methods); calls that need the library's Go runtime
(create, open, anon, create_ring, open_ring, ...) raise OSError(ENOTSUP) at once there.

SharedMemory is a drop-in for multiprocessing.shared_memory.SharedMemory; see its module for the
differences.

The library is found at $MMIPC_LIB, else next to this package, else in PREFIX/lib when the package
was installed by ./build.sh install PREFIX, else in the checkout's build/, else on the system
library path.

Liveness: every process attached to a named region holds a lock on its file that the kernel drops
when the process dies, so stat(name).attached is exact and gc() removes exactly the regions that
crashed programs left behind (docs/PROTOCOL.md, "Liveness").
"""
from ._admin import RegionInfo, gc, stat
from ._lib import lib as _clib
from ._region import Region, anon, copy_file, create, from_fd, map_file, open, unlink
from ._sync import Lock, OwnerDeadError, Ring, create_ring, notify, open_ring, wait
from .shared_memory import SharedMemory

__version__ = "0.3.0"

#: The shared-memory layout version (docs/PROTOCOL.md), MMIPC_PROTOCOL_VERSION in C.
PROTOCOL_VERSION = 1

__all__ = [
    "Lock",
    "OwnerDeadError",
    "Region",
    "RegionInfo",
    "Ring",
    "SharedMemory",
    "anon",
    "copy_file",
    "create",
    "create_ring",
    "from_fd",
    "gc",
    "map_file",
    "notify",
    "open",
    "open_ring",
    "stat",
    "unlink",
    "version",
    "wait",
    "PROTOCOL_VERSION",
]


def version():
    """The loaded libmmipc.so's version, "MAJOR.MINOR.PATCH"."""
    return _clib.mmipc_version().decode()
