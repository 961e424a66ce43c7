"""The Python peer of the load test (tests/hardening_load_test.go), the twin of
tests/loadpeer/main.go, whose comment specifies the command line, the behaviour and the output:

    python_load_peer.py send RING SECONDS MINLEN MAXLEN SEED ID
    python_load_peer.py recv RING SECONDS MINLEN MAXLEN SEED NSENDERS

Run with PYTHONPATH=<checkout>/python (and MMIPC_LIB for the library under test).
"""
import sys
import time

import mmipc

import python_hmsg as hmsg

CALL_LIMIT = 1.0
END_LIMIT = 15.0
RECV_GRACE = 12.0
M64 = (1 << 64) - 1

command = ""


class Failed(Exception):
    pass


def splitmix64(x):
    """The length generator every language's sender uses: yields the next value forever."""
    while True:
        x = (x + 0x9E3779B97F4A7C15) & M64
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        yield z ^ (z >> 31)


def send(q, seconds, min_len, max_len, seed, ident):
    rng = splitmix64(seed)
    span = max_len - min_len + 1
    deadline = time.monotonic() + seconds
    seq = nbytes = 0
    while time.monotonic() < deadline:
        r = next(rng)
        n = min_len + r % span
        msg = hmsg.build(seq, ident, n)
        while True:
            try:
                if (r >> 32) & 1:
                    view = q.reserve(n, CALL_LIMIT)
                    view[:] = msg
                    q.commit(n)
                else:
                    q.send(msg, CALL_LIMIT)
                seq += 1
                nbytes += n
                break
            except (TimeoutError, BlockingIOError):
                if time.monotonic() >= deadline:
                    break  # the ring stayed full to the end: this message is not sent
    end = hmsg.build(seq, ident, hmsg.HEADER, hmsg.END)
    end_by = time.monotonic() + END_LIMIT
    while True:
        try:
            q.send(end, CALL_LIMIT)
            break
        except (TimeoutError, BlockingIOError):
            if time.monotonic() > end_by:
                raise Failed("end marker: timed out")
    print(f"ok send ring={q.name} id={ident} sent={seq} bytes={nbytes}")


def recv(q, seconds, max_len, nsenders):
    give_up = time.monotonic() + seconds + RECV_GRACE
    counts, ended = {}, set()  # counts keeps the order senders were first seen
    total = got = 0
    while len(ended) < nsenders:
        peeked = got % 2 == 1
        try:
            msg = q.peek(CALL_LIMIT) if peeked else q.recv(CALL_LIMIT)
        except (TimeoutError, BlockingIOError):
            if time.monotonic() > give_up:
                raise Failed(f"{len(ended)} of {nsenders} senders ended after {seconds + RECV_GRACE} s")
            continue
        got += 1
        try:
            seq, ident, flags = hmsg.verify(msg)
        except ValueError as e:
            raise Failed(str(e))
        if ident not in counts:
            if len(counts) == nsenders:
                raise Failed(f"a message from sender {ident}, after {nsenders} senders already")
            counts[ident] = 0
        count = counts[ident]
        if ident in ended:
            raise Failed(f"sender {ident}: seq {seq} after its end marker")
        if flags == hmsg.END:
            if seq != count:
                raise Failed(f"sender {ident}: end marker says {seq} sent, {count} received")
            ended.add(ident)
        elif seq != count:
            raise Failed(f"sender {ident}: seq {seq} after {count} messages (lost, repeated or reordered)")
        elif len(msg) > max_len:
            raise Failed(f"sender {ident}: seq {seq} has {len(msg)} bytes, more than {max_len}")
        else:
            counts[ident] = count + 1
            total += 1
        if peeked:
            q.release()
    try:
        q.recv(0)
        raise Failed("after every end marker the ring is not empty")
    except BlockingIOError:
        pass
    for ident, count in counts.items():
        print(f"from id={ident} count={count} last={count - 1}")
    print(f"ok recv ring={q.name} total={total}")


def main():
    global command
    if len(sys.argv) != 8 or sys.argv[1] not in ("send", "recv"):
        print("usage: python_load_peer.py send|recv RING SECONDS MINLEN MAXLEN SEED ID|NSENDERS", file=sys.stderr)
        sys.exit(2)
    command = sys.argv[1]
    ring = sys.argv[2]
    seconds, min_len, max_len, seed, last = (int(a) for a in sys.argv[3:])
    if min_len < hmsg.HEADER or max_len < min_len or max_len > hmsg.MAX:
        print(f"bad length range {min_len}..{max_len}", file=sys.stderr)
        sys.exit(2)
    try:
        with mmipc.open_ring(ring) as q:
            if max_len > q.max_message:
                raise Failed(f"MAXLEN {max_len}: the ring carries at most {q.max_message}")
            if command == "send":
                send(q, seconds, min_len, max_len, seed, last)
            else:
                recv(q, seconds, max_len, last)
    except (Failed, OSError) as e:
        print(f"FAIL {command}: {e}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
