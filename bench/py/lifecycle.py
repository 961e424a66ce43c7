#!/usr/bin/env python3
"""Python region lifecycle: ns per create/close/unlink cycle of a 4 KiB block (bench/ENGINES.md).

    PYTHONPATH=python MMIPC_LIB=build/libmmipc.so \\
        python3 bench/py/lifecycle.py --iters N --runs R [--warmup W] [--size BYTES] [--mech LIST]

Mechanisms (LIST is comma-separated; default all three, interleaved run by run):
    shared_memory       multiprocessing.shared_memory.SharedMemory(name, create=True, size)
                        + close() + unlink()  (the standard library: the baseline)
    mmipc-sharedmemory  mmipc.SharedMemory(name, create=True, size) + close() + unlink()
    mmipc-create        mmipc.create(name, size) + Region.close() + mmipc.unlink(name)

Every cycle uses the same explicit name (the standard class would otherwise draw a random one) and
checks the block's size. The standard class always works in /dev/shm and registers each block it
creates with its resource-tracker process (started during the warm-up): that is its normal cost.
mmipc uses $MMIPC_DIR. One RESULT line per mechanism and run on stdout; exit 1 on a failure (the
names removed), 2 on a bad command line. Standard library only.
"""
import argparse
import os
import sys
import time

from _engine import Engine

MECHS = ("shared_memory", "mmipc-sharedmemory", "mmipc-create")
ENGINE = Engine("py-lifecycle")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=1000, help="cycles per run")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=100, help="cycles of each mechanism before the first run")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--mech", default=",".join(MECHS))
    a = ap.parse_args()
    mechs = a.mech.split(",")
    if any(m not in MECHS for m in mechs) or a.iters < 1 or a.runs < 1 or a.warmup < 0 or a.size < 1:
        ap.error(f"--mech is a list of {', '.join(MECHS)}; counts must be positive")

    try:
        import mmipc
        from multiprocessing import shared_memory
    except ImportError as e:
        ENGINE.fail(f"import: {e} (PYTHONPATH=python and MMIPC_LIB=<build>/libmmipc.so?)")

    size = a.size
    name = f"bench-pylc-{os.getpid()}"
    mmipc_dir = os.environ.get("MMIPC_DIR") or "/dev/shm"
    ENGINE.cleanup.append(lambda: os.unlink(os.path.join(mmipc_dir, name)))
    ENGINE.cleanup.append(lambda: os.unlink(os.path.join("/dev/shm", name)))  # the standard class's

    def cycle_stdlib():
        s = shared_memory.SharedMemory(name=name, create=True, size=size)
        ok = s.size >= size  # the standard class may round up on some systems
        s.close()
        s.unlink()
        return ok

    def cycle_mmipc_shm():
        s = mmipc.SharedMemory(name=name, create=True, size=size)
        ok = s.size == size
        s.close()
        s.unlink()
        return ok

    def cycle_mmipc_create():
        r = mmipc.create(name, size)
        ok = r.size == size
        r.close()
        mmipc.unlink(name)
        return ok

    cycles = {"shared_memory": cycle_stdlib, "mmipc-sharedmemory": cycle_mmipc_shm, "mmipc-create": cycle_mmipc_create}
    ENGINE.start_watchdog()
    print(f"# py-lifecycle size={size} iters={a.iters} runs={a.runs} warmup={a.warmup} mmipc_dir={mmipc_dir} "
          f"(shared_memory: /dev/shm) python={sys.version.split()[0]} mmipc_lib={mmipc.version()}", flush=True)
    clock = time.perf_counter_ns
    try:
        for m in mechs:
            f = cycles[m]
            for _ in range(a.warmup):
                if not f():
                    ENGINE.fail(f"{m}: wrong size")
                ENGINE.progress += 1
        samples = [0] * a.iters
        for _run in range(a.runs):
            for m in mechs:
                f = cycles[m]
                for i in range(a.iters):
                    t0 = clock()
                    ok = f()
                    t1 = clock()
                    if not ok:
                        ENGINE.fail(f"{m}: the block does not have {size} bytes")
                    samples[i] = t1 - t0
                    ENGINE.progress += 1
                ENGINE.result(f"py-lifecycle/{m}", "py-lifecycle", m, str(size), "ns", samples)
    except (OSError, ValueError) as e:
        ENGINE.fail(f"{type(e).__name__}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
