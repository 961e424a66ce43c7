"""The Python side of the cross-language tests of the sync layer (tests/sync_cross_test.go).

Same command line and output as the Go peer, tests/syncpeer/main.go, and the C one,
tests/c/syncpeer.c, so that the test matrix can put any language in any role. The shared layout
(the lock at 0, counter at 64, dirty 72, repairs 76, ready 80, arrived 84, word 128, armed 132) and
every command are specified once, in the comment at the top of tests/syncpeer/main.go.

Run with PYTHONPATH=<checkout>/python (and MMIPC_LIB for the library under test). Python has no
atomics: words are read and written with struct (single aligned loads and stores), each written by
one process at a time, as that comment explains. zombie forks its holder: the sync layer works in a
forked child (only create/open are refused there).
"""
import errno
import os
import signal
import struct
import sys
import time

import mmipc
from python_peerutil import Command, Failed, fail, ok, say, usage

OFF_LOCK, OFF_COUNTER, OFF_DIRTY, OFF_REPAIRS = 0, 64, 72, 76
OFF_READY, OFF_ARRIVED, OFF_WORD, OFF_ARMED = 80, 84, 128, 132
HALF_DONE = 1000000
REREADS = 16
WAIT_LIMIT = 20.0
HOLD_LIMIT = 60.0
PROBE_SHORT = 0.030

class Peer:
    def __init__(self, name):
        self.r = mmipc.open(name)
        if self.r.size < 4096:
            fail(f"region {name!r} has {self.r.size} bytes, want 4096")
        self.buf = self.r.buf
        self.lock = mmipc.Lock(self.buf, OFF_LOCK)

    def get(self, off):
        return struct.unpack_from("=I", self.buf, off)[0]

    def put(self, off, v):
        struct.pack_into("=I", self.buf, off, v)

    def counter(self):
        return struct.unpack_from("=Q", self.buf, OFF_COUNTER)[0]

    def set_counter(self, v):
        struct.pack_into("=Q", self.buf, OFF_COUNTER, v)

    def acquire(self, timeout):
        """Takes the lock: 0, or the errno (EOWNERDEAD: held, for the caller to handle)."""
        try:
            self.lock.acquire(timeout)
        except OSError as e:
            return e.errno
        return 0

    def increment(self):
        """The guarded non-atomic read-modify-write; True when the counter changed under the lock."""
        v = self.counter()
        overlap = False
        for _ in range(REREADS):
            if self.counter() != v:
                overlap = True
        self.set_counter(v + 1)
        return overlap

    def wait_ready(self):
        deadline = time.monotonic() + WAIT_LIMIT
        while True:
            v = self.get(OFF_READY)
            if v == 1:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                fail(f"ready is still {v} after {WAIT_LIMIT} s")
            try:
                mmipc.wait(self.buf, OFF_READY, v, left)
            except (TimeoutError, InterruptedError):
                pass

    def repair(self, what):
        d, c = self.get(OFF_DIRTY), self.counter()
        if d != 1 or c != HALF_DONE:
            fail(f"{what}: EOWNERDEAD but dirty = {d}, counter = {c}; want the holder's half-done 1, {HALF_DONE}")
        self.set_counter(0)
        self.put(OFF_DIRTY, 0)
        self.put(OFF_REPAIRS, self.get(OFF_REPAIRS) + 1)
        self.lock.consistent()

    def cycles(self, rounds, allow_dead):
        dead = 0
        for i in range(rounds):
            what = f"cycle {i + 1}"
            e = self.acquire(WAIT_LIMIT)
            if e == 0:
                d = self.get(OFF_DIRTY)
                if d != 0:
                    fail(f"{what}: acquire returned 0 but dirty = {d}: a half-done state nobody reported")
            elif e == errno.EOWNERDEAD:
                if i > 0 or not allow_dead:
                    fail(f"{what}: EOWNERDEAD, but nobody died since this process last held the lock")
                dead += 1
                self.repair(what)
            else:
                fail(f"{what}: acquire: {os.strerror(e)}")
            if self.increment():
                fail(f"{what}: the counter changed while this process held the lock")
            self.lock.release()
        return dead

    def hold(self):
        e = self.acquire(WAIT_LIMIT)
        if e != 0:
            fail(f"acquire: {os.strerror(e)}, want success on a fresh lock")
        self.set_counter(HALF_DONE)
        self.put(OFF_DIRTY, 1)
        self.put(OFF_READY, 1)
        mmipc.notify(self.buf, OFF_READY, None)
        say(f"holding pid={os.getpid()}")
        time.sleep(HOLD_LIMIT)
        fail(f"still alive {HOLD_LIMIT} s after taking the lock: nobody killed it")


def proc_state(pid):
    """The state letter of /proc/PID/stat (after the last ')'), or '' if unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            line = f.read()
    except OSError:
        return ""
    i = line.rfind(b")")
    return chr(line[i + 2]) if 0 <= i and i + 2 < len(line) else ""


def cmd_count(p, span_ms, npeers):
    if p.acquire(WAIT_LIMIT) != 0:
        fail("barrier: acquire failed")
    p.put(OFF_ARRIVED, p.get(OFF_ARRIVED) + 1)
    p.lock.release()
    deadline = time.monotonic() + WAIT_LIMIT
    while p.get(OFF_ARRIVED) < npeers:
        if time.monotonic() > deadline:
            fail(f"only {p.get(OFF_ARRIVED)} of {npeers} peers arrived in {WAIT_LIMIT} s")
        time.sleep(0.0001)
    n = overlaps = busy = 0
    acquire, release, increment = p.lock.acquire, p.lock.release, p.increment
    end = time.monotonic() + span_ms / 1e3
    while time.monotonic() < end:
        n += 1
        # Tried once first, to count how often another peer held it (proof of contention).
        try:
            acquire(0)
        except BlockingIOError:
            busy += 1
            acquire(WAIT_LIMIT)  # anything but success raises
        overlaps += increment()
        release()
    if overlaps:
        fail(f"the counter changed under the lock in {overlaps} of {n} increments")
    ok(f" n={n} overlaps=0 busy={busy}")


def cmd_survive(p, rounds, mode):
    if mode == "probe":
        p.wait_ready()
        e = p.acquire(0)
        if e != errno.EAGAIN:
            fail(f"try-once acquire of a lock a live process holds: {errno.errorcode.get(e, e)}, want EAGAIN")
        e = p.acquire(PROBE_SHORT)
        if e != errno.ETIMEDOUT:
            fail(f"30 ms acquire of a lock a live process holds: {errno.errorcode.get(e, e)}, want ETIMEDOUT")
        say("waiting")
    elif mode != "noprobe":
        usage()
    dead = p.cycles(rounds, True)
    ok(f" ownerdead={dead} rounds={rounds}")


def cmd_zombie(p, rounds, mode):
    if rounds < 1 or mode not in ("waiting", "after"):
        usage()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        try:
            p.hold()
        except Failed as e:
            say(f"FAIL hold (forked child): {e}")
        finally:
            os._exit(1)
    say(f"child pid={pid}")
    try:
        p.wait_ready()
        if mode == "waiting":
            e = p.acquire(0)
            if e != errno.EAGAIN:
                fail(f"try-once acquire of a lock the live child holds: {errno.errorcode.get(e, e)}, want EAGAIN")
            say("waiting")
        else:
            deadline = time.monotonic() + WAIT_LIMIT
            while proc_state(pid) != "Z":
                if time.monotonic() > deadline:
                    fail(f"the child {pid} is not a zombie after {WAIT_LIMIT} s (state {proc_state(pid)!r})")
                time.sleep(0.001)
            say("zombie")
        e = p.acquire(WAIT_LIMIT)
        if e != errno.EOWNERDEAD:
            fail(f"acquire after the child died holding the lock: {errno.errorcode.get(e, e)}, want EOWNERDEAD")
        # Not reaped yet, so the child was an unreaped zombie all along since it died.
        st = proc_state(pid)
        if st != "Z":
            fail(f"after the takeover the child's state is {st!r}, want Z (unreaped)")
        p.repair("takeover")
        if p.increment():
            fail("takeover: the counter changed while this process held the lock")
        p.lock.release()
        p.cycles(rounds - 1, False)
    finally:
        status = reap(pid)
    if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
        fail(f"the child ended with status {status:#x}, want killed by SIGKILL")
    ok(f" ownerdead=1 rounds={rounds}")


def reap(pid):
    """Waits for the child, at most WAIT_LIMIT (then kills it)."""
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got == pid:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1]
        time.sleep(0.001)


def cmd_wait(p, limit_ms):
    v = p.get(OFF_WORD)
    start, limit = time.monotonic(), limit_ms / 1e3
    p.put(OFF_ARMED, 1)
    calls = 0
    while p.get(OFF_WORD) == v:
        left = limit - (time.monotonic() - start)
        if left <= 0:
            fail(f"the word is still {v} after {limit_ms} ms: no wake-up")
        calls += 1
        try:
            mmipc.wait(p.buf, OFF_WORD, v, left)
        except InterruptedError:
            pass
        except OSError as e:
            fail(f"wait (call {calls}, {left:.3f} s left): {e!r}")
    ok(f" elapsed_ms={(time.monotonic() - start) * 1e3:.3f} calls={calls}")


def cmd_notify(p, delay_ms):
    deadline = time.monotonic() + WAIT_LIMIT
    while p.get(OFF_ARMED) != 1:
        if time.monotonic() > deadline:
            fail(f"the waiter did not arm in {WAIT_LIMIT} s")
        time.sleep(0.0001)
    time.sleep(delay_ms / 1e3)
    p.put(OFF_WORD, (p.get(OFF_WORD) + 1) & 0xFFFFFFFF)  # the only writer of word
    n = mmipc.notify(p.buf, OFF_WORD, None)
    ok(f" woken={n}")


def cmd_wait_timeouts(p, limit_ms):
    v = p.get(OFF_WORD)
    start = time.monotonic()
    try:
        mmipc.wait(p.buf, OFF_WORD, v, 0)
        fail("wait with timeout 0 on an unchanged word returned, want BlockingIOError (EAGAIN)")
    except BlockingIOError as e:
        if e.errno != errno.EAGAIN:
            fail(f"wait with timeout 0: {e!r}, want EAGAIN")
    eagain = time.monotonic() - start
    start, limit = time.monotonic(), limit_ms / 1e3
    while True:
        # An early return (allowed: spurious, EINTR) waits again for the rest, at least 1 ns.
        left = max(limit - (time.monotonic() - start), 1e-9)
        try:
            mmipc.wait(p.buf, OFF_WORD, v, left)
        except TimeoutError as e:
            if e.errno != errno.ETIMEDOUT:
                fail(f"wait: {e!r}, want ETIMEDOUT")
            break
        except InterruptedError:
            pass
        if p.get(OFF_WORD) != v:
            fail(f"the word changed to {p.get(OFF_WORD)}: somebody notified")
    ok(f" eagain_ms={eagain * 1e3:.3f} etimedout_ms={(time.monotonic() - start) * 1e3:.3f}")


def main():
    cmd = Command("python_syncpeer.py", "tests/syncpeer/main.go", 1)
    args, num, word = cmd.args, cmd.num, cmd.word

    def body():
        p = Peer(args[0])
        if cmd.name == "count" and len(args) == 3:
            cmd_count(p, num(1), num(2))
        elif cmd.name == "hold" and len(args) == 1:
            p.hold()
        elif cmd.name == "survive" and len(args) == 3:
            cmd_survive(p, num(1), word(2))
        elif cmd.name == "zombie" and len(args) == 3:
            cmd_zombie(p, num(1), word(2))
        elif cmd.name == "wait" and len(args) == 2:
            cmd_wait(p, num(1))
        elif cmd.name == "notify" and len(args) == 2:
            cmd_notify(p, num(1))
        elif cmd.name == "wait-timeouts" and len(args) == 2:
            cmd_wait_timeouts(p, num(1))
        else:
            return False
        p.r.close()

    cmd.run(body)


if __name__ == "__main__":
    main()
