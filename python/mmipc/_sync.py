"""The sync layer: wait/notify on a shared word, a lock that survives a dead owner, and the message
ring (docs/PROTOCOL.md, "The sync layer"), over the C functions of libmmipc.so.

Timeouts are in seconds, as in the threading and queue modules: None waits forever, 0 tries once
(BlockingIOError when nothing is ready), a positive number raises TimeoutError when it expires.
Every call here is plain C in the library, so all of them work in a child made with os.fork(),
except create_ring and open_ring.
"""
import ctypes
import errno
import math
import operator
import weakref

from ._lib import encode, lib, raise_last, ring_recv_fast, ring_send_fast
from ._region import _c_int_arg, _mode_arg, _size_arg

_INT64_MAX = (1 << 63) - 1
_FOREVER = ctypes.c_int64(-1)
_TRY_ONCE = ctypes.c_int64(0)
_sizes = {}  # message length -> c_size_t, for the fast ring calls (bounded: lengths below 64 KiB)


def _size_obj(n):
    """n as a c_size_t for the argtypes-free ring calls, cached for the usual small lengths."""
    obj = _sizes.get(n)
    if obj is None:
        obj = ctypes.c_size_t(n)
        if n < 65536:
            _sizes[n] = obj
    return obj


def _timeout_obj(timeout):
    """A timeout in seconds as the c_int64 nanoseconds the argtypes-free ring calls take."""
    if timeout is None:
        return _FOREVER
    return _TRY_ONCE if timeout == 0 and not isinstance(timeout, bool) else ctypes.c_int64(_timeout_ns(timeout))


def _timeout_ns(timeout):
    """Seconds (None: forever) as the C library's int64 nanoseconds (-1: forever)."""
    if timeout is None:
        return -1
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"mmipc: timeout must be a number of seconds or None, not {type(timeout).__name__}")
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"mmipc: timeout {timeout!r} must be None or >= 0 seconds")
    if timeout == 0:
        return 0
    # At least 1 ns (0 would mean "try once"); a huge timeout is as good as forever.
    return min(max(int(timeout * 1e9), 1), _INT64_MAX)


def _address(buf, offset, size, align, what):
    """The address of buf[offset:offset+size] for C, checking bounds and alignment. buf is a
    writable buffer on shared memory (a Region's buf, or a slice of it)."""
    offset = operator.index(offset)
    view = memoryview(buf)
    if view.readonly:
        raise OSError(errno.EINVAL, f"mmipc: {what}: the buffer is read-only")
    if offset < 0 or offset + size > view.nbytes:
        raise OSError(errno.EINVAL, f"mmipc: {what}: offset {offset} + {size} bytes is outside the buffer of {view.nbytes} bytes")
    addr = ctypes.addressof(ctypes.c_char.from_buffer(view.cast("B"), offset))
    if addr % align:
        raise OSError(errno.EINVAL, f"mmipc: {what}: offset {offset} is not {align}-aligned in memory")
    return addr


def wait(buf, offset, expected, timeout=None):
    """Sleeps while the 32-bit word at buf[offset:offset+4] equals `expected` (a shared futex wait).

    Returns when woken by notify, at once when the word already differs, or spuriously: re-check
    your condition and wait again. TimeoutError, BlockingIOError (timeout 0), InterruptedError
    (a signal; Python has then run its handler)."""
    addr = _address(buf, offset, 4, 4, "wait")
    value = _c_int_arg(expected, ctypes.c_uint32, errno.EINVAL, "invalid argument: expected")
    if lib.mmipc_wait(addr, value, _timeout_ns(timeout)) != 0:
        raise_last()


def notify(buf, offset, count=1):
    """Wakes up to `count` waiters (None: all) sleeping on the word at buf[offset:offset+4].
    Returns how many were woken."""
    addr = _address(buf, offset, 4, 4, "notify")
    n = 0x7FFFFFFF if count is None else _c_int_arg(count, ctypes.c_int, errno.EINVAL, "invalid argument: count")
    woken = lib.mmipc_notify(addr, n)
    if woken < 0:
        raise_last()
    return woken


class OwnerDeadError(OSError):
    """Lock.acquire took the lock over from a process that died holding it. The lock IS held now;
    the data it guards may be half-updated: repair it, call consistent(), then release()."""


class Lock:
    """A process-shared lock on the 64 bytes at buf[offset:offset+64] (64-aligned), shared with C
    and Go peers (mmipc_lock). All-zero bytes are an unlocked lock.

    Ownership is per process (any thread of it may release; not recursive).

        with mmipc.Lock(region.buf, 0) as owner_died:
            if owner_died:          # the previous holder died mid-update
                repair()
                lock.consistent()
            ...

    The lock keeps a reference to `buf`, so the memory stays mapped while the Lock lives.
    """

    SIZE = 64

    def __init__(self, buf, offset=0):
        self._addr = _address(buf, offset, self.SIZE, 64, "lock")
        self._buf = buf  # keeps the mapping alive

    def init(self):
        """Resets the lock to unlocked (zeros). Never while someone may hold it."""
        if lib.mmipc_lock_init(self._addr) != 0:
            raise_last()

    def acquire(self, timeout=None):
        """Takes the lock. Returns True; raises OwnerDeadError (holding the lock), TimeoutError,
        BlockingIOError (timeout 0), or OSError ENOTRECOVERABLE / EPROTO."""
        if lib.mmipc_lock_acquire(self._addr, _timeout_ns(timeout)) != 0:
            raise_last(OwnerDeadError if ctypes.get_errno() == errno.EOWNERDEAD else OSError)
        return True

    def consistent(self):
        """Marks the guarded data repaired after an OwnerDeadError."""
        if lib.mmipc_lock_consistent(self._addr) != 0:
            raise_last()

    def release(self):
        """Releases the lock (PermissionError if this process does not hold it)."""
        if lib.mmipc_lock_release(self._addr) != 0:
            raise_last()

    def __enter__(self):
        """Acquires; returns True when the previous owner had died (repair, then consistent())."""
        try:
            self.acquire()
        except OwnerDeadError:
            return True
        return False

    def __exit__(self, *exc):
        self.release()


def _closed():
    return ValueError("mmipc: operation on a closed ring")


class Ring:
    """A handle on a message ring (mmipc_ring): variable-length messages between any number of
    senders and receivers, in C, Go or Python. Make one with create_ring or open_ring.

    Not for two threads at once: open the ring once per thread."""

    def __init__(self, handle, name):
        self._q = handle
        self._h = ctypes.c_void_p(handle)  # for the argtypes-free calls; None once closed
        # Closes a forgotten ring when it is collected; close() runs it at once. Not at interpreter
        # exit: the OS unmaps everything then anyway.
        self._close = weakref.finalize(self, lib.mmipc_ring_close, handle)
        self._close.atexit = False
        self._lent = None  # the view reserve or peek handed out, invalidated when it ends
        self._name = name
        self._capacity = lib.mmipc_ring_capacity(handle)
        self._max = lib.mmipc_ring_max_message(handle)
        n = min(self._max, 64 << 10) or 1
        self._rbuf, self._rcap = ctypes.create_string_buffer(n), ctypes.c_size_t(n)
        self._peek_len = ctypes.c_size_t()

    name = property(lambda self: self._name, doc="The name given to create_ring or open_ring.")
    capacity = property(lambda self: self._capacity, doc="The buffer's size in bytes.")
    max_message = property(lambda self: self._max, doc="The largest message in bytes.")
    closed = property(lambda self: self._q is None)

    def _handle(self):
        if self._q is None:
            raise _closed()
        return self._q

    def send(self, data, timeout=None):
        """Sends one message: bytes, bytearray, memoryview or any contiguous buffer.
        BlockingIOError/TimeoutError when there is no space in time; OSError(EMSGSIZE) when it
        exceeds max_message."""
        h = self._h
        if h is None:
            raise _closed()
        if type(data) is bytes:  # the fast path: no conversion at all
            ptr, n = data, len(data)
        else:
            view = memoryview(data).cast("B")
            n = view.nbytes
            ptr = (ctypes.c_char * n).from_buffer_copy(view) if view.readonly else (ctypes.c_char * n).from_buffer(view)
        if ring_send_fast(h, ptr, _sizes.get(n) or _size_obj(n), _FOREVER if timeout is None else _timeout_obj(timeout)) != 0:
            raise_last()

    def recv(self, timeout=None):
        """Takes the next message and returns it as bytes."""
        h = self._h
        if h is None:
            raise _closed()
        t = _FOREVER if timeout is None else _timeout_obj(timeout)
        while True:
            n = ring_recv_fast(h, self._rbuf, self._rcap, t)
            if n >= 0:
                return self._rbuf[:n]  # copies n bytes (.raw would copy the whole buffer first)
            if ctypes.get_errno() != errno.EMSGSIZE:
                raise_last()
            # Larger than our buffer (the message stays): grow to fit it and take it again.
            self._rbuf = ctypes.create_string_buffer(self._max)
            self._rcap = ctypes.c_size_t(self._max)

    def recv_into(self, buffer, timeout=None):
        """Takes the next message into a writable buffer; returns its length. OSError(EMSGSIZE)
        when the buffer is too small (the message stays in the ring); TypeError for a read-only
        buffer."""
        q = self._handle()
        view = memoryview(buffer).cast("B")
        n = view.nbytes
        ptr = (ctypes.c_char * n).from_buffer(view) if n else None
        got = lib.mmipc_ring_recv(q, ptr, n, _timeout_ns(timeout))
        if got < 0:
            raise_last()
        return got

    def reserve(self, size, timeout=None):
        """Zero-copy send, step 1: a writable memoryview of `size` bytes inside the ring. Write the
        message, then commit(n). The view is invalid after commit."""
        q = self._handle()
        ptr = lib.mmipc_ring_reserve(q, _size_arg(size), _timeout_ns(timeout))
        if not ptr:
            raise_last()
        return self._lend(ptr, size, readonly=False)

    def _lend(self, ptr, size, readonly):
        self._take_back()  # a second peek: the earlier view goes, the new one takes its place
        view = memoryview((ctypes.c_char * max(size, 1)).from_address(ptr)).cast("B")[:size]
        self._lent = view.toreadonly() if readonly else view
        return self._lent

    def _take_back(self):
        # The ring memory behind a reserved or peeked view is reused after commit/release/close:
        # the view is released so that a later use raises ValueError instead of reading garbage.
        view, self._lent = self._lent, None
        if view is not None:
            try:
                view.release()
            except BufferError:
                pass  # exported (e.g. to numpy): its user keeps the responsibility

    def commit(self, size):
        """Zero-copy send, step 2: publishes the reserved message with its final size."""
        rc = lib.mmipc_ring_commit(self._handle(), _size_arg(size))
        if rc != 0:
            raise_last()
        self._take_back()

    def peek(self, timeout=None):
        """Zero-copy receive, step 1: a read-only memoryview of the next message, in place; valid
        until release()."""
        q = self._handle()
        ptr = lib.mmipc_ring_peek(q, ctypes.byref(self._peek_len), _timeout_ns(timeout))
        if not ptr:
            raise_last()
        return self._lend(ptr, self._peek_len.value, readonly=True)

    def release(self):
        """Zero-copy receive, step 2: consumes the peeked message."""
        if lib.mmipc_ring_release(self._handle()) != 0:
            raise_last()
        self._take_back()

    def close(self):
        """Detaches; a pending reservation is abandoned, a pending peek is not consumed."""
        if self._q is None:
            return
        self._q = self._h = None
        self._take_back()
        if self._close() != 0:
            raise_last()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self._q is None else f"capacity={self._capacity}"
        return f"<mmipc.Ring {self._name!r} {state}>"


def create_ring(name, capacity, mode=0o600):
    """Creates the ring `name` with a buffer of at least `capacity` bytes (rounded up to a power of
    two, 1 KiB to 1 GiB) and attaches it. FileExistsError when the name is taken."""
    q = lib.mmipc_ring_create(encode(name, "name"), _size_arg(capacity), _mode_arg(mode))
    if not q:
        raise_last()
    return Ring(q, name)


def open_ring(name):
    """Attaches the existing ring `name`. FileNotFoundError; OSError(EPROTO) when it is not a ring."""
    q = lib.mmipc_ring_open(encode(name, "name"))
    if not q:
        raise_last()
    return Ring(q, name)
