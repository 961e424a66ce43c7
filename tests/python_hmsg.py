"""The message format of the hardening tests, the Python twin of tests/hmsg/hmsg.go (which
specifies it) and tests/c/hmsg.h: a 24-byte header (u64 seq, u32 sender, u32 len, u32 flags,
u32 crc) then a payload cut from PATTERN; crc is zlib's CRC-32 of bytes [0, 20) and [24, len)."""
import struct
import zlib

HEADER = 24
MAX = 64 << 10
END = 1

PATTERN = bytes(((k * 2654435761) & 0xFFFFFFFF) >> 13 & 0xFF for k in range(256 + MAX))
_head = struct.Struct("=QIII")  # seq, sender, len, flags
_crc = struct.Struct("=I")
_full = struct.Struct("=QIIII")


def _start(seq, sender):
    return (seq * 7 + sender * 13) & 255


def build(seq, sender, length, flags=0):
    """Message seq of sender, length bytes (HEADER..MAX), as bytes."""
    o = _start(seq, sender)
    payload = PATTERN[o:o + length - HEADER]
    head = _head.pack(seq, sender, length, flags)
    return head + _crc.pack(zlib.crc32(payload, zlib.crc32(head))) + payload


def verify(msg):
    """(seq, sender, flags) of a received message (bytes or a buffer); ValueError says what is wrong."""
    n = len(msg)
    if n < HEADER or n > MAX:
        raise ValueError(f"a message of {n} bytes (want {HEADER} to {MAX})")
    seq, sender, length, flags, crc = _full.unpack_from(msg)
    if length != n:
        raise ValueError(f"seq {seq} from {sender}: len field {length}, received {n} bytes (torn or truncated)")
    want = zlib.crc32(msg[HEADER:], zlib.crc32(msg[:20]))
    if crc != want:
        raise ValueError(f"seq {seq} from {sender} ({n} bytes): crc {crc:#x}, computed {want:#x} (torn)")
    if flags & ~END or (flags == END and n != HEADER):
        raise ValueError(f"seq {seq} from {sender}: flags {flags:#x} with {n} bytes")
    o = _start(seq, sender)
    if msg[HEADER:] != PATTERN[o:o + n - HEADER]:
        raise ValueError(f"seq {seq} from {sender}: the payload differs from the pattern")
    return seq, sender, flags
