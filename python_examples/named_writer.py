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
import struct
import sys
import time

import mmipc

# struct greeting (c_examples/greeting.h): native-endian uint32s at fixed offsets, then the text.
READY = 0  # 1 once text and len are written
ACK = 4  # 1 once the reader has read them
LEN = 8  # bytes of text
TEXT = 12  # up to region.size - TEXT bytes
U32 = "@I"  # native byte order, size and alignment: C's uint32_t, read or written with one memcpy

DEFAULT_NAME = "mmipc-greeting"  # GREETING_DEFAULT_NAME
REGION_SIZE = 4096  # GREETING_REGION_SIZE
TIMEOUT_S = 10.0  # GREETING_TIMEOUT_MS
POLL_S = 0.001

# Python has no atomics: C publishes with a release store of `ready` and reads it with an acquire
# load, Go uses sync/atomic, and here the flags are plain struct loads and stores. No memory model
# promises that this is enough, but for this example it is sound in practice on x86-64 and arm64:
# - a flag is an aligned uint32 (the region starts on a page boundary) that only ever goes from 0
#   to 1, so a peer can never see a torn value, however the store is split;
# - the text and its length are written before the flag, and a peer reads them only after it has
#   seen the flag. x86-64 keeps stores in program order and loads in program order (TSO), so that
#   is all it takes there. arm64 may reorder both, but only within a window of a few hundred
#   instructions, and between the two stores (and between a reader's two loads, after a branch on
#   the flag) CPython runs thousands of instructions of bytecode dispatch. The C and Go peers use
#   real acquire/release on their side.
# The real fix is mmipc's wait/notify layer, coming later: fork-safe C functions on a 32-bit word
# with the barriers built in (callable through ctypes like the rest), which also ends the polling.


def load_u32(buf, offset):
    return struct.unpack_from(U32, buf, offset)[0]


def store_u32(buf, offset, value):
    struct.pack_into(U32, buf, offset, value)


def say(line):
    """Prints bytes as C's printf would, and flushes: a peer's lines come in between."""
    sys.stdout.buffer.write(line + b"\n")
    sys.stdout.buffer.flush()


def main(argv):
    name = argv[1] if len(argv) > 1 else DEFAULT_NAME
    message = os.fsencode(argv[2]) if len(argv) > 2 else b"hello from the writer"

    try:
        region = mmipc.create(name, REGION_SIZE, 0o600)
    except OSError as e:
        print(f"named_writer: {e.strerror}", file=sys.stderr)  # mmipc_last_error()'s message
        if e.errno == errno.EEXIST:
            print(f"named_writer: a stale region? remove it with mmipc.unlink({name!r})", file=sys.stderr)
        return 1
    try:
        buf = region.buf
        text = message[: region.size - TEXT]  # at most the room there is, as the C writer clamps
        buf[TEXT:TEXT + len(text)] = text
        store_u32(buf, LEN, len(text))
        store_u32(buf, READY, 1)  # last: publishes text and len (see the comment at the top)
        say(b"writer sent: " + text)

        # Raw shared memory cannot block, so poll for the reader's acknowledgement, with a deadline.
        deadline = time.monotonic() + TIMEOUT_S
        acked = load_u32(buf, ACK) == 1
        while not acked and time.monotonic() < deadline:
            time.sleep(POLL_S)
            acked = load_u32(buf, ACK) == 1
    finally:
        try:
            mmipc.unlink(name)  # peers that are still attached keep working
        except OSError:
            pass
        region.close()
    if not acked:
        print(f"named_writer: no reader acknowledged within {int(TIMEOUT_S * 1000)} ms", file=sys.stderr)
        return 1
    say(b"writer: reader acknowledged")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
