"""Liveness and cleanup: stat() describes a named region, gc() removes what crashed programs left.

Every process attached to a named region holds a lock on its file that the kernel drops when the
process dies (docs/PROTOCOL.md, "Liveness"), so "attached" is exact and gc() never removes a region
in use.
"""
import ctypes
import dataclasses

from ._lib import MMIPCInfo, encode, lib, raise_last

_INFO_RING = 1  # MMIPC_INFO_RING


@dataclasses.dataclass(frozen=True)
class RegionInfo:
    """What stat() reports: mmipc_info in C, mmipc.Info in Go."""

    name: str
    size: int  #: usable bytes, as asked at creation
    file_size: int  #: the file's size: header page, data, padding
    mode: int  #: permission bits
    uid: int  #: the file's owner
    creator_pid: int  #: the creating process (it may be gone)
    created: float  #: creation time, Unix seconds
    ring: bool  #: the region holds a message ring
    attached: bool  #: some process is attached now


def stat(name):
    """Describes the named region without attaching to it. Raises FileNotFoundError, PermissionError,
    or OSError (EPROTO: not a region; ELOOP: a symlink)."""
    info = MMIPCInfo()
    if lib.mmipc_stat(encode(name, "name"), ctypes.byref(info)) != 0:
        raise_last()
    return RegionInfo(
        name=name,
        size=info.size,
        file_size=info.file_size,
        mode=info.mode,
        uid=info.uid,
        creator_pid=info.creator_pid,
        created=info.created_ns / 1e9,
        ring=bool(info.flags & _INFO_RING),
        attached=bool(info.attached),
    )


def gc():
    """Removes the regions in $MMIPC_DIR (default /dev/shm) no live process is attached to, and
    returns how many files it removed. Never removes a region in use, a non-region or a symlink."""
    n = lib.mmipc_gc()
    if n < 0:
        raise_last()
    return n
