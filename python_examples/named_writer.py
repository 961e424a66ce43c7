#!/usr/bin/env python3
"""named_writer.py - the Python twin of c_examples/named_writer.c: it creates a named region, writes
a message in the layout of c_examples/greeting.h, publishes it, waits for a reader (Python, C or
Go) to acknowledge, then removes the name. Same arguments, output and timeout as the C program.

From the checkout, after ./build.sh (the library is found in build/, or at $MMIPC_LIB):

    PYTHONPATH=python python3 python_examples/named_writer.py [NAME [MESSAGE]] &
    PYTHONPATH=python python3 python_examples/named_reader.py [NAME]

(or ./build/examples/named_reader, or the Go named_reader, on the other side). The region lives at
$MMIPC_DIR/NAME (default /dev/shm/NAME) while the two run.
"""
import errno
import os
import sys

import mmipc

import greeting
from shm import store_u32, wait_u32, say


def main(argv):
    name = argv[1] if len(argv) > 1 else greeting.DEFAULT_NAME
    message = os.fsencode(argv[2]) if len(argv) > 2 else b"hello from the writer"

    try:
        region = mmipc.create(name, greeting.REGION_SIZE, 0o600)
    except OSError as e:
        print(f"named_writer: {e.strerror}", file=sys.stderr)  # mmipc_last_error()'s message
        if e.errno == errno.EEXIST:
            print(f"named_writer: a stale region? remove it with mmipc.unlink({name!r})", file=sys.stderr)
        return 1
    try:
        buf = region.buf
        text = greeting.write_message(buf, message)  # at most the room there is, as the C writer clamps
        store_u32(buf, greeting.READY, 1)  # last: publishes text and len (shm.py says why plain stores do)
        say(b"writer sent: " + text)
        acked = wait_u32(buf, greeting.ACK, greeting.TIMEOUT_MS)
    finally:
        try:
            mmipc.unlink(name)  # peers that are still attached keep working
        except OSError:
            pass
        region.close()
    if not acked:
        print(f"named_writer: no reader acknowledged within {greeting.TIMEOUT_MS} ms", file=sys.stderr)
        return 1
    say(b"writer: reader acknowledged")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
