#!/usr/bin/env python3
"""fd_child.py - the Python twin of c_examples/fd_child.c, the program anon_parent (Python, C or Go)
starts: it finds the parent's anonymous region at fd 3, attaches it with mmipc.from_fd, prints the
parent's message and writes a reply in the layout of c_examples/handoff.h.

From the checkout, after ./build.sh (the library is found in build/, or at $MMIPC_LIB):

    PYTHONPATH=python python3 python_examples/anon_parent.py "$(command -v python3)" python_examples/fd_child.py [REPLY]
    PYTHONPATH=python ./build/examples/anon_parent "$(command -v python3)" python_examples/fd_child.py [REPLY]

REPLY defaults to "nihao father!!". Run without a region at fd 3 it fails: EBADF if fd 3 is closed,
EPROTO for a file that is not a region, EACCES for a read-only one. (The Go runtime inside
libmmipc opens files of its own when the package loads, which take fd 3 when nothing holds it.)
"""
import os
import struct
import sys

import mmipc

# struct handoff (c_examples/handoff.h): native-endian uint32s at 0, 4, 8 and 12, then the texts.
SENT = 0  # 1 once msg and msg_len are written (before the child starts)
REPLIED = 4  # 1 once the child has written reply and reply_len
MSG_LEN = 8  # bytes of msg, at most TEXT_MAX
REPLY_LEN = 12  # bytes of reply, at most TEXT_MAX
TEXT_MAX = 1024  # HANDOFF_TEXT_MAX
MSG = 16
REPLY = MSG + TEXT_MAX
HANDOFF_SIZE = REPLY + TEXT_MAX  # sizeof(struct handoff)
U32 = "@I"  # native byte order, size and alignment: C's uint32_t, read or written with one memcpy

HANDOFF_FD = 3  # where the parent put the region's descriptor
DEFAULT_REPLY = b"nihao father!!"  # HANDOFF_DEFAULT_REPLY

# The flags are plain loads and stores here, Python having no atomics: sound in practice for this
# example (aligned uint32 flags that only go from 0 to 1; each text is written before its flag and
# read only after it), though no memory model promises it. named_writer.py says why at length; the
# real fix is mmipc's wait/notify layer, coming later.


def load_u32(buf, offset):
    return struct.unpack_from(U32, buf, offset)[0]


def store_u32(buf, offset, value):
    struct.pack_into(U32, buf, offset, value)


def say(line):
    """Prints bytes as C's printf would, and flushes: the parent's lines share the terminal."""
    sys.stdout.buffer.write(line + b"\n")
    sys.stdout.buffer.flush()


def main(argv):
    reply = os.fsencode(argv[1]) if len(argv) > 1 else DEFAULT_REPLY

    try:
        region = mmipc.from_fd(HANDOFF_FD)
    except OSError as e:
        print(f"fd_child: {e.strerror}", file=sys.stderr)  # mmipc_last_error()'s message
        return 1
    os.close(HANDOFF_FD)  # the region keeps its own duplicate
    with region:
        # The parent chose the region's size: make sure the layout fits before touching it.
        if region.size < HANDOFF_SIZE:
            print(f"fd_child: the region has {region.size} bytes, the handoff needs {HANDOFF_SIZE}", file=sys.stderr)
            return 1
        buf = region.buf
        if load_u32(buf, SENT) != 1:
            print("fd_child: the parent sent no message", file=sys.stderr)
            return 1
        # msg_len comes from another process: read it once, never trust it past the message's room.
        n = load_u32(buf, MSG_LEN)
        if n > TEXT_MAX:
            print(f"fd_child: corrupt message length {n} (room for {TEXT_MAX})", file=sys.stderr)
            return 1
        say(b"child got: " + bytes(buf[MSG:MSG + n]).split(b"\0", 1)[0])  # %.*s stops at a NUL

        text = reply[:TEXT_MAX]
        buf[REPLY:REPLY + len(text)] = text
        store_u32(buf, REPLY_LEN, len(text))
        # Printed before the reply is published, so that on a shared terminal these lines come
        # before the parent's "parent got".
        say(b"child replied: " + text)
        store_u32(buf, REPLIED, 1)  # last: publishes reply and reply_len
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
