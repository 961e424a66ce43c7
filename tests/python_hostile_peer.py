"""The Python side of the hardening tests (tests/hardening_scribble_test.go,
tests/hardening_attack_test.go).

Same command line and output as the Go peer, tests/hostilepeer/main.go, for the commands hostile,
expect and gc, which are specified there once. Run with PYTHONPATH=<checkout>/python (and MMIPC_LIB
for the library under test).
"""
import errno
import os
import random
import select
import time

import mmipc
from python_peerutil import Command, fail, usage

WORK_MESSAGES = 100
WORK_TIMEOUT = 5.0

def await_line(want, secs):
    """Waits up to secs for the line want on stdin (read with os.read: no buffering to hide a line
    from select)."""
    line = b""
    deadline = time.monotonic() + secs
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([0], [], [], left)[0]:
            fail(f"no {want!r} on stdin within {secs} s")
        c = os.read(0, 1)
        if not c:
            fail(f"stdin ended; want {want!r}")
        line += c
    if line.decode().strip() != want:
        fail(f"stdin: got {line!r}, want {want!r}")


class Counts:
    def __init__(self):
        self.open_ok = self.open_eproto = self.ring_ok = self.ring_eproto = self.ring_again = 0

    def __str__(self):
        return (f"open_ok={self.open_ok} open_eproto={self.open_eproto} ring_ok={self.ring_ok} "
                f"ring_eproto={self.ring_eproto} ring_again={self.ring_again}")

    def ring(self, what, call, *args):
        """Runs a ring call and counts its outcome; anything mmipc.h does not document for a damaged
        ring is a failure. Returns the call's result, or None when it failed."""
        try:
            r = call(*args)
        except (BlockingIOError, TimeoutError):
            self.ring_again += 1
            return None
        except OSError as e:
            if e.errno != errno.EPROTO:
                fail(f"{what}: {e!r}")
            self.ring_eproto += 1
            return None
        self.ring_ok += 1
        return r


def cmd_hostile(plain, size, ring, back, secs, lang):
    with mmipc.open(plain) as p:
        if p.size != size:
            fail(f"open {plain!r}: size {p.size}, want {size}")
    q = mmipc.open_ring(ring)
    print("ready", flush=True)
    await_line("start", 30)

    c = Counts()
    mx = q.max_message
    msg = b"\x5a" * mx
    buf = bytearray(mx)
    timeouts = (0, 0.001, 0.003)
    end = time.monotonic() + secs
    while time.monotonic() < end:
        try:
            r = mmipc.open(plain)
        except OSError as e:
            if e.errno != errno.EPROTO:
                fail(f"open {plain!r}: {e!r}")
            c.open_eproto += 1
        else:
            if r.size != size:
                fail(f"open {plain!r} succeeded with {r.size} bytes, want {size}: a lying header was accepted")
            r.close()
            c.open_ok += 1
        c.ring("send", q.send, msg[:random.randint(0, mx)], random.choice(timeouts))
        n = c.ring("recv_into", q.recv_into, buf, random.choice(timeouts))
        if n is not None and not 0 <= n <= mx:
            fail(f"recv_into returned {n} bytes into {mx}")
        if random.randrange(16) == 0:
            w = c.ring("reserve", q.reserve, random.randint(0, mx), 0.001)
            if w is not None:
                w[:] = msg[:len(w)]
                c.ring("commit", q.commit, len(w))
            m = c.ring("peek", q.peek, 0.001)
            if m is not None:
                if len(m) > mx:
                    fail(f"peek returned {len(m)} bytes; the largest message is {mx}")
                c.ring("release", q.release)
    q.close()
    print(f"hostile {c}", flush=True)
    await_line("go", 60)

    with mmipc.open(plain) as p:
        if p.size != size:
            fail(f"work: open {plain!r}: size {p.size}, want {size}")
        want = bytes((i * 7 + 3) & 0xFF for i in range(size))
        if bytes(p.buf) != want:
            i = next(i for i in range(size) if p.buf[i] != want[i])
            fail(f"work: {plain!r} byte {i} is {p.buf[i]:#x}, want {want[i]:#x}")
    with mmipc.open_ring(ring) as q:
        for i in range(WORK_MESSAGES):
            q.send(f"{lang} {i}".encode(), WORK_TIMEOUT)
    with mmipc.open_ring(back) as bq:
        for i in range(WORK_MESSAGES):
            got = bq.recv(WORK_TIMEOUT)
            if got != f"back {i}".encode():
                fail(f"work: recv {i}: {got!r}")
    print(f"ok hostile {c} sent={WORK_MESSAGES} received={WORK_MESSAGES}", flush=True)


ERRNOS = {"0": 0, "ENOENT": errno.ENOENT, "EEXIST": errno.EEXIST, "ELOOP": errno.ELOOP,
          "EPROTO": errno.EPROTO, "EACCES": errno.EACCES, "EINVAL": errno.EINVAL,
          "EPERM": errno.EPERM, "EBUSY": errno.EBUSY}


def cmd_expect(op, name, want):
    if want not in ERRNOS:
        usage()
    extra = ""
    got = 0
    try:
        if op in ("open", "open_ro"):
            mmipc.open(name, readonly=op == "open_ro").close()
        elif op == "ring_open":
            mmipc.open_ring(name).close()
        elif op == "create":
            mmipc.create(name, 4096).close()
        elif op == "unlink":
            mmipc.unlink(name)
        elif op == "stat":
            info = mmipc.stat(name)
            extra = f" size={info.size} attached={int(info.attached)} uid={info.uid}"
        else:
            usage()
    except OSError as e:
        got = e.errno
        if got != ERRNOS[want]:
            fail(f"{op} {name!r}: {e!r}, want {want}")
    if got != ERRNOS[want]:
        fail(f"{op} {name!r}: succeeded, want {want}")
    print(f"expect {op} {name} {want}{extra}", flush=True)


def main():
    cmd = Command("python_hostile_peer.py", "tests/hostilepeer/main.go", 0)
    args = cmd.args

    def body():
        if cmd.name == "hostile" and len(args) == 6:
            cmd_hostile(args[0], cmd.num(1), args[2], args[3], cmd.num(4), args[5])
        elif cmd.name == "expect" and args and len(args) % 3 == 0:
            for i in range(0, len(args), 3):
                cmd_expect(*args[i:i + 3])
            cmd.ok(f" {len(args) // 3}")
        elif cmd.name == "gc" and not args:
            cmd.ok(f" removed={mmipc.gc()}")
        else:
            return False

    cmd.run(body)


if __name__ == "__main__":
    main()
