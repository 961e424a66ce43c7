#!/usr/bin/env python3
"""Python message throughput: ns per message from a Python sender to a Python receiver, two
processes, through mmipc.Ring next to multiprocessing (bench/ENGINES.md, "ring").

    PYTHONPATH=python MMIPC_LIB=build/libmmipc.so \\
        python3 bench/py/ring.py --batch B --batches N --warmup W --runs R [--size 64]
                                 [--capacity BYTES] [--mech LIST] [--corrupt-at K]
    internal: python3 bench/py/ring.py send --name NAME --size S --count C [--corrupt-at K]

Mechanisms (LIST is comma-separated; default all three, one after the other):
    mmipc-ring  mmipc.create_ring / open_ring; Ring.send(bytes) and Ring.recv() with no timeout
                (the library's adaptive spin, then a futex sleep). The sender is this script
                started again with subprocess (a fresh interpreter that opens the ring by name).
    mp-queue    multiprocessing.Queue: put(bytes) / get() (pickled, through a pipe by a feeder
                thread), the standard way to pass messages between Python processes: the baseline.
    mp-pipe     multiprocessing.Pipe(duplex=False): send_bytes / recv_bytes (no pickling), for
                context. The multiprocessing senders are started with the "spawn" context.
This process is the receiver for all three. The sender sends W + R*N*B messages of SIZE bytes,
message i holding the pattern of round i (bench/c/bench.h, salt BULK); both sides build the
messages before the first one is sent, and the receiver compares every message with the one due
(a message of another round is reported as lost, duplicated or reordered). The receiver reads
the clock after message W and after every B messages: one sample = ns per message over a batch.
One RESULT line per mechanism and run (ids ring-py/<mech>/<size>, group ring); exit 1 on a
failure (the sender killed, the ring's name removed), 2 on a bad command line.
"""
import argparse
import os
import struct
import subprocess
import sys
import threading
import time

from _engine import Engine

MECHS = ("mmipc-ring", "mp-queue", "mp-pipe")
ENGINE = Engine("py-ring")
M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
GOLDEN_INV = pow(GOLDEN, -1, 1 << 64)
SALT_BULK = 0x42554C4B00000000


def pattern(i, size, salt=SALT_BULK):
    """Message i's bytes: native-endian u64 word k = base + k, base = (i+1) * GOLDEN ^ salt."""
    base = ((i + 1) * GOLDEN & M64) ^ salt
    words = size // 8
    b = struct.pack(f"={words}Q", *[(base + k) & M64 for k in range(words)])
    if size % 8:
        b += struct.pack("=Q", (base + words) & M64)[: size % 8]
    return b


def messages(count, size, corrupt_at=0):
    """Messages 1..count (index 0 is message 1); message corrupt_at has one byte flipped."""
    ms = [pattern(i, size) for i in range(1, count + 1)]
    if 1 <= corrupt_at <= count:
        m = bytearray(ms[corrupt_at - 1])
        m[size // 2] ^= 1
        ms[corrupt_at - 1] = bytes(m)
    return ms


def explain(got, i, size):
    """Why message i is wrong: the wrong length, another round's message, or damaged bytes."""
    if len(got) != size:
        return f"message {i}: {len(got)} bytes, want {size}"
    if size >= 8:
        j = (((struct.unpack_from("=Q", got)[0] ^ SALT_BULK) * GOLDEN_INV) - 1) & M64
        if j != i and got == pattern(j, size):
            return f"message {i}: got message {j} instead: a message was lost, duplicated or reordered"
    want = pattern(i, size)
    off = next(k for k in range(size) if got[k] != want[k])
    return f"message of round {i}: wrong data at byte {off} of {size}: {got[off]:#04x}, want {want[off]:#04x}"


# ---- senders ---------------------------------------------------------------------------------


def send_main(argv):
    """The mmipc-ring sender: a fresh interpreter that opens the ring by name."""
    ap = argparse.ArgumentParser(prog="ring.py send")
    ap.add_argument("--name", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--corrupt-at", type=int, default=0)
    a = ap.parse_args(argv)
    eng = Engine("py-ring send")
    try:
        import mmipc

        ms = messages(a.count, a.size, a.corrupt_at)
        q = mmipc.open_ring(a.name)
        eng.start_watchdog()
        send = q.send
        for k, m in enumerate(ms):
            send(m)
            if k & 1023 == 0:
                eng.progress += 1
        q.close()
    except (ImportError, OSError, ValueError) as e:
        eng.fail(f"{type(e).__name__}: {e}")
    return 0


def mp_send(kind, chan, size, count, corrupt_at):
    """The multiprocessing sender (a spawned process): put or send_bytes every message."""
    ms = messages(count, size, corrupt_at)
    if kind == "mp-queue":
        put = chan.put
        for m in ms:
            put(m)
        chan.close()
        chan.join_thread()  # every message handed to the pipe before we exit
    else:
        send = chan.send_bytes
        for m in ms:
            send(m)
        chan.close()


# ---- the receiver ----------------------------------------------------------------------------


def watch(alive):
    """Fails the engine as soon as the sender dies with an error (it may never send again).
    alive() returns None while it runs, else its exit status."""

    def loop():
        while True:
            time.sleep(0.2)
            code = alive()
            if code is not None and code != 0:
                ENGINE.fail(f"the sender died (exit status {code}) before the end: see its message above")
            if code is not None:
                return

    threading.Thread(target=loop, daemon=True).start()


def receive(recv, count, size, warmup, batch, batches, runs, on_first=None):
    """Receives and checks count messages; returns runs lists of ns per message, batch by batch.
    on_first() runs once message 1 has arrived (before it is checked)."""
    want = messages(count, size)
    clock = time.perf_counter_ns
    samples, t_prev = [], 0
    m = recv()
    if on_first:
        on_first()
    i = 1
    while True:
        if m != want[i - 1]:
            ENGINE.fail(explain(m, i, size))
        if i >= warmup:
            d = i - warmup
            if d % batch == 0:
                t = clock()
                if d:
                    samples.append((t - t_prev) / batch)
                    ENGINE.progress += 1
                t_prev = t
        if i == count:
            break
        i += 1
        m = recv()
    return [samples[r * batches : (r + 1) * batches] for r in range(runs)]


def run_mech(mech, a, count):
    if mech == "mmipc-ring":
        import mmipc

        name = f"bench-pyring-{os.getpid()}"
        mmipc_dir = os.environ.get("MMIPC_DIR") or "/dev/shm"
        q = mmipc.create_ring(name, a.capacity)
        path = os.path.join(mmipc_dir, name)

        def remove():
            os.unlink(path)

        ENGINE.cleanup.append(remove)
        if q.max_message < a.size:
            ENGINE.fail(f"a ring of {q.capacity} bytes takes messages up to {q.max_message} bytes, not {a.size}")
        cmd = [sys.executable, os.path.abspath(__file__), "send", "--name", name, "--size", str(a.size),
               "--count", str(count)]
        if a.corrupt_at:
            cmd += ["--corrupt-at", str(a.corrupt_at)]
        p = subprocess.Popen(cmd)
        ENGINE.cleanup.append(p.kill)
        watch(p.poll)

        def unlink():  # the sender has the ring open: its name can go
            mmipc.unlink(name)
            ENGINE.cleanup.remove(remove)

        res = receive(q.recv, count, a.size, a.warmup, a.batch, a.batches, a.runs, unlink)
        code = p.wait(timeout=30)
        q.close()
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        if mech == "mp-queue":
            chan = ctx.Queue()
            rchan, recv = chan, chan.get
        else:
            rchan, chan = ctx.Pipe(duplex=False)
            recv = rchan.recv_bytes
        p = ctx.Process(target=mp_send, args=(mech, chan, a.size, count, a.corrupt_at))
        p.start()
        ENGINE.cleanup.append(p.kill)
        watch(lambda: p.exitcode)
        res = receive(recv, count, a.size, a.warmup, a.batch, a.batches, a.runs)
        p.join(30)
        code = p.exitcode
        rchan.close()
    ENGINE.cleanup.clear()
    if code != 0:
        ENGINE.fail(f"{mech}: the sender exited with status {code}")
    return res


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "send":
        return send_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1000, help="messages per sample")
    ap.add_argument("--batches", type=int, default=20, help="samples per run")
    ap.add_argument("--warmup", type=int, default=1000, help="messages before the first clock read")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--capacity", type=int, default=65536, help="mmipc ring buffer bytes")
    ap.add_argument("--mech", default=",".join(MECHS))
    ap.add_argument("--corrupt-at", type=int, default=0, help="the sender flips a byte of this message (a self-test)")
    a = ap.parse_args()
    mechs = a.mech.split(",")
    if any(m not in MECHS for m in mechs) or min(a.batch, a.batches, a.runs, a.warmup, a.size) < 1 or a.corrupt_at < 0:
        ap.error(f"--mech is a list of {', '.join(MECHS)}; counts must be positive")
    count = a.warmup + a.runs * a.batches * a.batch
    ENGINE.start_watchdog()
    print(f"# py-ring size={a.size} batch={a.batch} batches={a.batches} warmup={a.warmup} runs={a.runs} "
          f"capacity={a.capacity} python={sys.version.split()[0]}", flush=True)
    try:
        for m in mechs:
            for run in run_mech(m, a, count):
                ENGINE.result(f"ring-py/{m}/{a.size}", "ring", m, str(a.size), "ns", run, a.size)
    except (ImportError, OSError, ValueError, subprocess.TimeoutExpired) as e:
        ENGINE.fail(f"{type(e).__name__}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
