"""greeting.py - the Python form of c_examples/greeting.h: the layout named_writer and named_reader
(Python, C or Go) agree on inside their region. Two unrelated processes share only the region's
bytes, so this layout is their protocol: the writer writes the text and its length, then publishes
them by setting READY; the reader waits for READY, checks the length against the room there is (it
comes from another process), prints the text and sets ACK. The flags go through shm.py, which says
why plain loads and stores do here.
"""
from shm import LayoutError, read_text, write_text

# struct greeting: native-endian uint32s at fixed offsets, with no padding, then the text.
READY = 0  # 1 once text and len are written
ACK = 4  # 1 once the reader has read them
LEN = 8  # bytes of text
TEXT = 12  # sizeof(struct greeting): the text runs from here to the region's end

DEFAULT_NAME = "mmipc-greeting"  # GREETING_DEFAULT_NAME
REGION_SIZE = 4096  # GREETING_REGION_SIZE
TIMEOUT_MS = 10000  # GREETING_TIMEOUT_MS


def check_size(buf):
    """Whoever created the region chose its size: the fields must fit before they are touched."""
    if len(buf) < TEXT:
        raise LayoutError(f"the region has {len(buf)} bytes, the greeting needs {TEXT}")


def write_message(buf, message):
    """Writes the text, cut to the room there is, and len; returns what was written."""
    return write_text(buf, LEN, TEXT, len(buf) - TEXT, message)


def read_message(buf):
    """The text, its len checked against the room up to the region's end (LayoutError)."""
    return read_text(buf, LEN, TEXT, len(buf) - TEXT, "message")
