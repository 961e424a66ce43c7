#!/usr/bin/env python3
"""ring_sender.py - the Python twin of c_examples/ring_sender.c: it sends COUNT numbered,
checksummed messages (ringmsg.py) through the ring a receiver in Python, C or Go created. Same
arguments, output and timeouts as the C program.

    PYTHONPATH=python python3 python_examples/ring_receiver.py [NAME [COUNT [SENDERS]]] &
    PYTHONPATH=python python3 python_examples/ring_sender.py [NAME [COUNT [ID]]]
"""
import sys
import time

import mmipc

import ringmsg


def main(argv):
    name = argv[1] if len(argv) > 1 else ringmsg.DEFAULT_NAME
    count = int(argv[2]) if len(argv) > 2 else 1000
    sender = int(argv[3]) if len(argv) > 3 else 0

    # The receiver creates the ring; wait up to 10 s for it to appear.
    deadline = time.monotonic() + 10
    while True:
        try:
            ring = mmipc.open_ring(name)
            break
        except FileNotFoundError as e:
            if time.monotonic() > deadline:
                print(f"ring_sender: {e.strerror}", file=sys.stderr)
                return 1
            time.sleep(0.01)
        except OSError as e:
            print(f"ring_sender: {e.strerror}", file=sys.stderr)
            return 1
    with ring:
        for seq in range(count):
            try:
                ring.send(ringmsg.build(seq, sender), timeout=ringmsg.TIMEOUT)
            except TimeoutError:
                print(f"ring_sender {sender}: message {seq}: timed out: is the receiver running?", file=sys.stderr)
                return 1
            except OSError as e:
                print(f"ring_sender {sender}: message {seq}: {e.strerror}", file=sys.stderr)
                return 1
    print(f"ring_sender {sender}: sent {count} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
