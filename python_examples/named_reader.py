#!/usr/bin/env python3
"""named_reader.py - the Python twin of c_examples/named_reader.c: it opens the region a writer
(Python, C or Go) created, waiting for it to appear, waits for the message in the layout of
c_examples/greeting.h, prints it and acknowledges. Same arguments, output and timeout as the C
program.

From the checkout, after ./build.sh (the library is found in build/, or at $MMIPC_LIB):

    PYTHONPATH=python python3 python_examples/named_writer.py [NAME [MESSAGE]] &
    PYTHONPATH=python python3 python_examples/named_reader.py [NAME]
"""
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
TIMEOUT_S = 10.0  # GREETING_TIMEOUT_MS
POLL_S = 0.001

# The flags are plain loads and stores here, Python having no atomics: sound in practice for this
# example (aligned uint32 flags that only go from 0 to 1; the text is read only after the flag is
# seen), though no memory model promises it. named_writer.py says why at length; the real fix is
# mmipc's wait/notify layer, coming later.


def load_u32(buf, offset):
    return struct.unpack_from(U32, buf, offset)[0]


def store_u32(buf, offset, value):
    struct.pack_into(U32, buf, offset, value)


def main(argv):
    name = argv[1] if len(argv) > 1 else DEFAULT_NAME

    # The writer may not have created the region yet: FileNotFoundError means "not yet", any other
    # error is an error. open never sees a half-made region, so no other state needs handling.
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            region = mmipc.open(name)
            break
        except FileNotFoundError as e:
            if time.monotonic() >= deadline:
                print(f"named_reader: {e.strerror}", file=sys.stderr)
                return 1
            time.sleep(POLL_S)
        except OSError as e:
            print(f"named_reader: {e.strerror}", file=sys.stderr)  # mmipc_last_error()'s message
            return 1

    with region:
        buf = region.buf
        # The writer chose the size: the fields must fit before they are touched.
        if region.size < TEXT:
            print(f"named_reader: the region has {region.size} bytes, the greeting needs {TEXT}", file=sys.stderr)
            return 1
        deadline = time.monotonic() + TIMEOUT_S
        ready = load_u32(buf, READY) == 1
        while not ready and time.monotonic() < deadline:
            time.sleep(POLL_S)
            ready = load_u32(buf, READY) == 1
        if not ready:
            print(f"named_reader: no message within {int(TIMEOUT_S * 1000)} ms", file=sys.stderr)
            return 1
        # len comes from another process: read it once, and never trust it past the region's end.
        n, room = load_u32(buf, LEN), region.size - TEXT
        if n > room:
            print(f"named_reader: corrupt message length {n} (room for {room})", file=sys.stderr)
            return 1
        text = bytes(buf[TEXT:TEXT + n]).split(b"\0", 1)[0]  # the C reader's %.*s stops at a NUL too
        sys.stdout.buffer.write(b"reader got: " + text + b"\n")
        sys.stdout.buffer.flush()
        store_u32(buf, ACK, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
