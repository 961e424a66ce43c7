"""ringmsg - the Python form of c_examples/ringmsg.h: the message format ring_sender and
ring_receiver (Python, C or Go) agree on. Each message says who sent it and its place in that
sender's sequence, and carries a checksum of its payload, so that a receiver can prove nothing was
lost, repeated, reordered or torn:

    offset 0   u64 seq       0, 1, 2, ... per sender (native byte order)
           8   u32 sender    the sender's id
          12   u32 checksum  FNV-1a (32-bit) of the payload
          16   payload       seq % 97 bytes, byte i = (seq + 31*i + sender) & 0xff
"""
import struct

DEFAULT_NAME = "mmipc-ring-example"
HEADER = 16
MAX = HEADER + 96
CAPACITY = 64 * 1024
TIMEOUT = 10.0  # seconds

_head = struct.Struct("=QII")
_payloads = {}


def fnv1a(data):
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def _payload(seq, sender):
    # Payloads repeat with seq % 97 and shifts of (seq + sender) % 256: cache them, so that the
    # example measures the ring rather than this loop.
    key = (seq % 97, (seq + sender) & 0xFF)
    p = _payloads.get(key)
    if p is None:
        n, base = key
        p = bytes((base + 31 * i) & 0xFF for i in range(n))
        _payloads[key] = p = (p, fnv1a(p))
    return p


def build(seq, sender):
    """Message seq of sender, as bytes."""
    payload, checksum = _payload(seq, sender)
    return _head.pack(seq, sender, checksum) + payload


def parse(msg):
    """(seq, sender) of a message; ValueError when it is too short to carry them."""
    if len(msg) < HEADER:
        raise ValueError(f"a {len(msg)}-byte message is too short")
    seq, sender, _ = _head.unpack_from(msg)
    return seq, sender
