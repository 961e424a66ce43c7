#!/usr/bin/env python3
"""named_reader.py - the Python twin of c_examples/named_reader.c: it opens the region a writer
(Python, C or Go) created, waiting for it to appear, waits for the message in the layout of
c_examples/greeting.h, prints it and acknowledges. Same arguments, output and timeout as the C
program.

From the checkout, after ./build.sh (the library is found in build/, or at $MMIPC_LIB):

    PYTHONPATH=python python3 python_examples/named_writer.py [NAME [MESSAGE]] &
    PYTHONPATH=python python3 python_examples/named_reader.py [NAME]
"""
import sys
import time

import mmipc

import greeting
from shm import POLL_S, LayoutError, store_u32, wait_u32, say


def main(argv):
    name = argv[1] if len(argv) > 1 else greeting.DEFAULT_NAME

    # The writer may not have created the region yet: FileNotFoundError means "not yet", any other
    # error is an error. open never sees a half-made region, so no other state needs handling.
    deadline = time.monotonic() + greeting.TIMEOUT_MS / 1000
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
        try:
            greeting.check_size(buf)  # the writer chose the size
            if not wait_u32(buf, greeting.READY, greeting.TIMEOUT_MS):
                print(f"named_reader: no message within {greeting.TIMEOUT_MS} ms", file=sys.stderr)
                return 1
            text = greeting.read_message(buf)  # len checked against the region's end
        except LayoutError as e:
            print(f"named_reader: {e}", file=sys.stderr)
            return 1
        say(b"reader got: " + text)
        store_u32(buf, greeting.ACK, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
