"""shm.py - what the layouts in greeting.py and handoff.py share: native uint32 fields in a region,
read and written without atomics (see below), a flag polled with a deadline, the error a layout
raises when the region's contents do not fit it, and printing bytes as C's printf does.
"""
import struct
import sys
import time

U32 = struct.Struct("@I")  # native byte order, size and alignment: C's uint32_t, one memcpy
POLL_S = 0.001

# Python has no atomics: C publishes with a release store of a flag and reads it with an acquire
# load, Go uses sync/atomic, and here the flags are plain struct loads and stores. No memory model
# promises that this is enough, but for these examples it is sound in practice on x86-64 and arm64:
# - a flag is an aligned uint32 (the region starts on a page boundary) that only ever goes from 0
#   to 1, so a peer can never see a torn value, however the store is split;
# - a text and its length are written before their flag, and a peer reads them only after it has
#   seen the flag. x86-64 keeps stores in program order and loads in program order (TSO), so that
#   is all it takes there. arm64 may reorder both, but only within a window of a few hundred
#   instructions, and between the two stores (and between a reader's two loads, after a branch on
#   the flag) CPython runs thousands of instructions of bytecode dispatch. The C and Go peers use
#   real acquire/release on their side.
# The real fix is mmipc's wait/notify layer, coming later: fork-safe C functions on a 32-bit word
# with the barriers built in (callable through ctypes like the rest), which also ends the polling.


def load_u32(buf, offset):
    return U32.unpack_from(buf, offset)[0]


def store_u32(buf, offset, value):
    U32.pack_into(buf, offset, value)


def wait_u32(buf, offset, timeout_ms):
    """Polls the flag at offset until it is 1 or timeout_ms have passed; True if it was set.
    Raw shared memory cannot block, hence the polling (wait/notify, above, will end it)."""
    deadline = time.monotonic() + timeout_ms / 1000
    flag = load_u32(buf, offset) == 1
    while not flag and time.monotonic() < deadline:
        time.sleep(POLL_S)
        flag = load_u32(buf, offset) == 1
    return flag


def read_text(buf, len_offset, text_offset, room, what):
    """The text at text_offset whose length is the uint32 at len_offset. The length comes from
    another process: it is read once and never trusted past room (LayoutError). The text is cut at
    its first NUL, as the C programs' %.*s cuts it."""
    n = load_u32(buf, len_offset)
    if n > room:
        raise LayoutError(f"corrupt {what} length {n} (room for {room})")
    return bytes(buf[text_offset:text_offset + n]).split(b"\0", 1)[0]


def write_text(buf, len_offset, text_offset, room, text):
    """Writes text, cut to room bytes as the C programs clamp it, and its length; returns what was
    written. The flag that publishes them is the caller's to set, after this."""
    text = text[:room]
    buf[text_offset:text_offset + len(text)] = text
    store_u32(buf, len_offset, len(text))
    return text


class LayoutError(ValueError):
    """The region's contents do not fit the layout; str() is the message the programs print."""


def say(line):
    """Prints bytes as C's printf would, and flushes: a peer's lines come in between."""
    sys.stdout.buffer.write(line + b"\n")
    sys.stdout.buffer.flush()
