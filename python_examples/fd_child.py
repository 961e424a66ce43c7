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
import sys

import mmipc

import handoff
from shm import LayoutError, load_u32, store_u32, say


def main(argv):
    reply = os.fsencode(argv[1]) if len(argv) > 1 else handoff.DEFAULT_REPLY

    try:
        region = mmipc.from_fd(handoff.FD)
    except OSError as e:
        print(f"fd_child: {e.strerror}", file=sys.stderr)  # mmipc_last_error()'s message
        return 1
    os.close(handoff.FD)  # the region keeps its own duplicate
    with region:
        buf = region.buf
        try:
            handoff.check_size(buf)  # the parent chose the region's size
            if load_u32(buf, handoff.SENT) != 1:
                print("fd_child: the parent sent no message", file=sys.stderr)
                return 1
            msg = handoff.read_msg(buf)  # msg_len checked against TEXT_MAX
        except LayoutError as e:
            print(f"fd_child: {e}", file=sys.stderr)
            return 1
        say(b"child got: " + msg)

        text = handoff.write_reply(buf, reply)
        # Printed before the reply is published, so that on a shared terminal these lines come
        # before the parent's "parent got".
        say(b"child replied: " + text)
        store_u32(buf, handoff.REPLIED, 1)  # last: publishes reply and reply_len
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
