"""Private: finds and loads libmmipc.so and declares the C signature of every symbol.

The rest of the package calls the C functions only through `lib` and turns failures into
OSError with `raise_last`. Nothing here is public API.
"""
import ctypes
import ctypes.util
import os

_HERE = os.path.dirname(os.path.abspath(__file__))

# Where the library is looked for, in order. $MMIPC_LIB, when set, is the only place tried: a
# wrong explicit path is an error, not a reason to pick up some other build silently.
_CANDIDATES = [
    os.path.join(_HERE, "libmmipc.so"),  # installed next to the package
    # ./build.sh install PREFIX: the package is in PREFIX/lib/pythonX.Y/site-packages/mmipc and the
    # library, by its SONAME, in PREFIX/lib.
    os.path.normpath(os.path.join(_HERE, "..", "..", "..", "libmmipc.so.0")),
    os.path.join(os.path.dirname(os.path.dirname(_HERE)), "build", "libmmipc.so"),  # the checkout's build/
]

# The oldest library this package works with: it has liveness (mmipc_stat, mmipc_gc).
_MIN_VERSION = (0, 3, 0)

_region_p = ctypes.c_void_p  # mmipc_region *, opaque
_ring_p = ctypes.c_void_p  # mmipc_ring *, opaque
_i64 = ctypes.c_int64


class MMIPCInfo(ctypes.Structure):
    """struct mmipc_info of mmipc.h, field for field."""

    _fields_ = [
        ("size", ctypes.c_uint64),
        ("file_size", ctypes.c_uint64),
        ("created_ns", ctypes.c_int64),
        ("creator_pid", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("mode", ctypes.c_uint32),
        ("uid", ctypes.c_uint32),
        ("attached", ctypes.c_int32),
        ("reserved_", ctypes.c_uint32 * 7),
    ]


# name: (restype, argtypes), for every function of mmipc.h.
_SIGNATURES = {
    "mmipc_create": (_region_p, [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint]),
    "mmipc_open": (_region_p, [ctypes.c_char_p, ctypes.c_int]),
    "mmipc_anon": (_region_p, [ctypes.c_size_t]),
    "mmipc_map_file": (_region_p, [ctypes.c_char_p, ctypes.c_int]),
    "mmipc_attach_fd": (_region_p, [ctypes.c_int, ctypes.c_int]),
    "mmipc_fd": (ctypes.c_int, [_region_p]),
    "mmipc_detach": (ctypes.c_int, [_region_p]),
    "mmipc_unlink": (ctypes.c_int, [ctypes.c_char_p]),
    "mmipc_data": (ctypes.c_void_p, [_region_p]),
    "mmipc_size": (ctypes.c_size_t, [_region_p]),
    "mmipc_sync": (ctypes.c_int, [_region_p]),
    "mmipc_copy_file": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p]),
    "mmipc_stat": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(MMIPCInfo)]),
    "mmipc_gc": (ctypes.c_int, []),
    "mmipc_last_error": (ctypes.c_char_p, []),
    "mmipc_version": (ctypes.c_char_p, []),
    # The sync layer. Pointers into shared memory travel as c_void_p (plain addresses).
    "mmipc_wait": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint32, _i64]),
    "mmipc_notify": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]),
    "mmipc_lock_init": (ctypes.c_int, [ctypes.c_void_p]),
    "mmipc_lock_acquire": (ctypes.c_int, [ctypes.c_void_p, _i64]),
    "mmipc_lock_consistent": (ctypes.c_int, [ctypes.c_void_p]),
    "mmipc_lock_release": (ctypes.c_int, [ctypes.c_void_p]),
    "mmipc_ring_create": (_ring_p, [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint]),
    "mmipc_ring_open": (_ring_p, [ctypes.c_char_p]),
    "mmipc_ring_send": (ctypes.c_int, [_ring_p, ctypes.c_void_p, ctypes.c_size_t, _i64]),
    "mmipc_ring_recv": (ctypes.c_ssize_t, [_ring_p, ctypes.c_void_p, ctypes.c_size_t, _i64]),
    "mmipc_ring_reserve": (ctypes.c_void_p, [_ring_p, ctypes.c_size_t, _i64]),
    "mmipc_ring_commit": (ctypes.c_int, [_ring_p, ctypes.c_size_t]),
    "mmipc_ring_peek": (ctypes.c_void_p, [_ring_p, ctypes.POINTER(ctypes.c_size_t), _i64]),
    "mmipc_ring_release": (ctypes.c_int, [_ring_p]),
    "mmipc_ring_capacity": (ctypes.c_size_t, [_ring_p]),
    "mmipc_ring_max_message": (ctypes.c_size_t, [_ring_p]),
    "mmipc_ring_close": (ctypes.c_int, [_ring_p]),
}

RDONLY = 1  # MMIPC_RDONLY


def _find():
    explicit = os.environ.get("MMIPC_LIB")
    if explicit:
        if not os.path.exists(explicit):
            raise ImportError(f"mmipc: $MMIPC_LIB is {explicit!r}, which does not exist")
        return explicit
    for path in _CANDIDATES:
        if os.path.exists(path):
            return path
    # Installed system-wide (./build.sh install): let the dynamic linker search its paths.
    found = ctypes.util.find_library("mmipc")
    if found:
        return found
    raise ImportError(
        "mmipc: cannot find libmmipc.so; looked in $MMIPC_LIB (unset), "
        + ", ".join(_CANDIDATES)
        + " and the system library path. Build it with ./build.sh in the mmipc checkout, "
        "or set MMIPC_LIB to its path."
    )


def _load():
    path = _find()
    try:
        dll = ctypes.CDLL(path, use_errno=True)
    except OSError as e:
        raise ImportError(f"mmipc: cannot load {path}: {e}") from e
    try:
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(dll, name)
            fn.restype, fn.argtypes = restype, argtypes
    except AttributeError as e:
        raise ImportError(f"mmipc: {path} is too old for this package (missing {e}); rebuild it with ./build.sh") from e
    version = dll.mmipc_version().decode()
    if tuple(int(x) for x in version.split(".")[:3]) < _MIN_VERSION:
        raise ImportError(f"mmipc: {path} is version {version}; this package needs {'.'.join(map(str, _MIN_VERSION))} or later")
    return dll, path


lib, path = _load()

# The ring's send and receive again, without argtypes: ctypes' per-argument conversion costs about
# 0.4 µs a call, as much as the call itself. _sync.Ring calls these with arguments already made
# into ctypes objects (the handle as c_void_p, sizes as c_size_t, timeouts as c_int64), which is
# what argtypes would have produced. A second CDLL object keeps lib's declared functions intact.
_fast = ctypes.CDLL(path, use_errno=True)
ring_send_fast = _fast.mmipc_ring_send
ring_send_fast.restype = ctypes.c_int
ring_recv_fast = _fast.mmipc_ring_recv
ring_recv_fast.restype = ctypes.c_ssize_t


def raise_last(cls=OSError):
    """Raises the OSError (or subclass cls) for the C call that just failed: errno and
    mmipc_last_error().

    OSError(errno, msg) becomes FileExistsError, FileNotFoundError, PermissionError, ... as for
    the os module."""
    err = ctypes.get_errno()
    msg = lib.mmipc_last_error().decode(errors="replace")
    raise cls(err, msg or os.strerror(err))


def encode(arg, what):
    """A name or path as the bytes C gets: str, bytes or os.PathLike; a NUL inside is refused
    here, since C would silently cut the name short."""
    if arg is None:
        raise TypeError(f"mmipc: {what} must be str, bytes or os.PathLike, not None")
    b = os.fsencode(arg)
    if b"\0" in b:
        raise ValueError(f"mmipc: {what} contains a NUL byte")
    return b
