"""handoff.py - the Python form of c_examples/handoff.h: the layout anon_parent and fd_child
(Python, C or Go) agree on inside an anonymous region. The parent writes its message, publishes it
by setting SENT and starts the child with the region's descriptor as fd FD; the child reads the
message, writes its reply and publishes it by setting REPLIED. Both lengths come from another
process: each reader checks them against TEXT_MAX before use. The flags go through shm.py, which
says why plain loads and stores do here.
"""
from shm import LayoutError, read_text, write_text

# struct handoff: native-endian uint32s at 0, 4, 8 and 12, then the two texts, with no padding.
SENT = 0  # 1 once msg and msg_len are written (before the child starts)
REPLIED = 4  # 1 once the child has written reply and reply_len
MSG_LEN = 8  # bytes of msg, at most TEXT_MAX
REPLY_LEN = 12  # bytes of reply, at most TEXT_MAX
TEXT_MAX = 1024  # HANDOFF_TEXT_MAX
MSG = 16
REPLY = MSG + TEXT_MAX
SIZE = REPLY + TEXT_MAX  # sizeof(struct handoff)

FD = 3  # HANDOFF_FD: where the child finds the region's descriptor
REGION_SIZE = 4096  # HANDOFF_REGION_SIZE
TIMEOUT_MS = 10000  # HANDOFF_TIMEOUT_MS
MESSAGE = b"nihao child!!"  # HANDOFF_MESSAGE
DEFAULT_REPLY = b"nihao father!!"  # HANDOFF_DEFAULT_REPLY


def check_size(buf):
    """Whoever made the region chose its size: the layout must fit before it is touched."""
    if len(buf) < SIZE:
        raise LayoutError(f"the region has {len(buf)} bytes, the handoff needs {SIZE}")


def write_msg(buf, text):
    """Writes msg, cut to TEXT_MAX, and msg_len; returns what was written."""
    return write_text(buf, MSG_LEN, MSG, TEXT_MAX, text)


def write_reply(buf, text):
    """Writes reply, cut to TEXT_MAX, and reply_len; returns what was written."""
    return write_text(buf, REPLY_LEN, REPLY, TEXT_MAX, text)


def read_msg(buf):
    """msg, its msg_len checked against TEXT_MAX (LayoutError)."""
    return read_text(buf, MSG_LEN, MSG, TEXT_MAX, "message")


def read_reply(buf):
    """reply, its reply_len checked against TEXT_MAX (LayoutError)."""
    return read_text(buf, REPLY_LEN, REPLY, TEXT_MAX, "reply")
