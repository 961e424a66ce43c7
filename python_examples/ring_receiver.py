#!/usr/bin/env python3
"""ring_receiver.py - the Python twin of c_examples/ring_receiver.c: it creates a message ring,
receives COUNT messages from each of SENDERS senders (Python, C or Go, any mix), and checks every
one: per-sender order, no loss, no repeat, payload checksum. Then it removes the ring's name.

    PYTHONPATH=python python3 python_examples/ring_receiver.py [NAME [COUNT [SENDERS]]] &
    PYTHONPATH=python python3 python_examples/ring_sender.py [NAME [COUNT [ID]]] ...
"""
import sys

import mmipc

import ringmsg

MAX_SENDERS = 64


def main(argv):
    name = argv[1] if len(argv) > 1 else ringmsg.DEFAULT_NAME
    count = int(argv[2]) if len(argv) > 2 else 1000
    senders = int(argv[3]) if len(argv) > 3 else 1
    if not 1 <= senders <= MAX_SENDERS:
        print(f"ring_receiver: SENDERS must be 1 to {MAX_SENDERS}", file=sys.stderr)
        return 2
    try:
        ring = mmipc.create_ring(name, ringmsg.CAPACITY, 0o600)
    except OSError as e:
        print(f"ring_receiver: {e.strerror}", file=sys.stderr)
        return 1
    expect = [0] * senders
    try:
        with ring:
            for got in range(count * senders):
                try:
                    msg = ring.recv(timeout=ringmsg.TIMEOUT)
                except TimeoutError:
                    print(f"ring_receiver: after {got} messages: timed out: are the senders running?", file=sys.stderr)
                    return 1
                except OSError as e:
                    print(f"ring_receiver: after {got} messages: {e.strerror}", file=sys.stderr)
                    return 1
                try:
                    seq, sender = ringmsg.parse(msg)
                except ValueError as e:
                    print(f"ring_receiver: {e}", file=sys.stderr)
                    return 1
                if sender >= senders or seq != expect[sender]:
                    print(f"ring_receiver: got message {seq} of sender {sender}, want sender < {senders} and the next seq in order",
                          file=sys.stderr)
                    return 1
                if msg != ringmsg.build(seq, sender):
                    print(f"ring_receiver: message {seq} of sender {sender} is damaged", file=sys.stderr)
                    return 1
                expect[sender] += 1
    finally:
        mmipc.unlink(name)
    print(f"ring_receiver: {count * senders} messages from {senders} sender(s): in order, none lost or repeated, checksums match")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
