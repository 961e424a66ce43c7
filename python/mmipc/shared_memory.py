"""A drop-in for multiprocessing.shared_memory.SharedMemory over mmipc regions.

    from mmipc import SharedMemory      # instead of: from multiprocessing.shared_memory import ...

The constructor, attributes and methods are the standard class's. What differs, on purpose:

- No resource tracker: a segment is removed only by unlink(), never behind the user's back when
  the creating process exits (the standard class registers every segment it creates or, before
  Python 3.13, attaches, and its tracker unlinks them at exit; `track` is accepted and ignored).
- C and Go peers open the same segment by its name with mmipc_open / mmipc.Open.
- The bytes live after an mmipc header page: the standard class and mmipc cannot attach each
  other's segments (mmipc refuses a foreign file with OSError EPROTO; it never misreads one).
- size is exactly the size asked at creation on every platform, never rounded up to a page.
- Names follow mmipc's rule, [A-Za-z0-9_-][A-Za-z0-9._-]{0,199}; one leading '/' (shm_open
  style) is accepted and dropped. A bad name is OSError(EINVAL), not ValueError.
- close() while views of buf are alive (slices, numpy arrays) keeps the memory mapped until they
  are gone instead of raising BufferError.
"""
import secrets

from . import _region

__all__ = ["SharedMemory"]


class SharedMemory:
    """Creates a new shared memory block or attaches to an existing one, by name."""

    def __init__(self, name=None, create=False, size=0, *, track=True):
        del track  # mmipc never tracks: nothing is unlinked behind the user's back
        if not size >= 0:
            raise ValueError("'size' must be a positive integer")
        if create and size == 0:
            raise ValueError("'size' must be a positive number different from zero")
        if name is None and not create:
            raise ValueError("'name' can only be None if create=True")
        if isinstance(name, str) and name.startswith("/") and "/" not in name[1:]:
            name = name[1:]
        if not create:
            self._region = _region.open(name)
        elif name is not None:
            self._region = _region.create(name, size)
        else:
            while True:  # a fresh random name, as the standard class makes them
                try:
                    self._region = _region.create("psm_" + secrets.token_hex(4), size)
                    break
                except FileExistsError:
                    continue
        self._name = self._region.name

    @property
    def buf(self):
        """A memoryview of the block's contents; None after close(), as in the standard class."""
        return None if self._region.closed else self._region.buf

    @property
    def name(self):
        """Unique name that identifies the block (no leading '/')."""
        return self._name

    @property
    def size(self):
        """Size in bytes: exactly the size asked at creation."""
        return self._region.size

    def close(self):
        """Closes this process's access to the block; the block itself stays (see unlink)."""
        self._region.close()

    def unlink(self):
        """Removes the block's name, once, from any one process. Attached processes keep their
        memory; it is freed when the last one closes."""
        _region.unlink(self._name)

    def __del__(self):
        try:
            self.close()
        except (AttributeError, OSError):
            pass  # __init__ failed before the region existed

    def __reduce__(self):
        return (self.__class__, (self.name, False, self.size))

    def __repr__(self):
        return f"{self.__class__.__name__}({self.name!r}, size={self.size})"
