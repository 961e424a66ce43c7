#!/usr/bin/env python3
"""Python ctypes call cost: ns per call into libmmipc.so next to libbenchplain.so (bench/ENGINES.md).

    PYTHONPATH=python MMIPC_LIB=build/libmmipc.so BENCH_PLAIN_LIB=<bin>/libbenchplain.so \\
        python3 bench/py/abicost.py --calls C --runs R [--samples S] [--control-calls K]
                                    [--warmup W] [--plain PATH] [--mech LIST]

Functions (LIST is comma-separated; default all four, interleaved sample by sample):
    mmipc_size      mmipc_size(handle) through the mmipc package's own ctypes declarations
    plain_size      plain_size(&struct) in libbenchplain.so (bench/c/plain.c): the baseline
    control         mmipc_open(b"", 0): crosses into the Go runtime, fails EINVAL
    plain_control   plain_control(b"", 0): the same checks and failure in plain C
Both libraries are loaded with use_errno=True and declared with the same argtypes and restype,
so ctypes does the same work for either; the timed loop (itertools.repeat) adds the same ~15 ns
to every call. A sample is C calls (K for the control pair, default C/10) between two clock
reads, divided by the count. One RESULT line per function and run; exit 1 on a failure, 2 on a
bad command line. Standard library only.
"""
import argparse
import ctypes
import errno
import itertools
import os
import sys
import time

from _engine import Engine

FUNCS = ("mmipc_size", "plain_size", "control", "plain_control")
ENGINE = Engine("py-abicost")


class PlainRegion(ctypes.Structure):
    """bench/c/plain.c's struct plain_region."""
    _fields_ = [("data", ctypes.c_void_p), ("size", ctypes.c_size_t)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100000, help="calls per sample")
    ap.add_argument("--control-calls", type=int, default=0, help="calls per sample of the control pair (default calls/10)")
    ap.add_argument("--samples", type=int, default=5, help="samples per run")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1, help="samples of each function before the first run")
    ap.add_argument("--plain", default=os.environ.get("BENCH_PLAIN_LIB", ""), help="libbenchplain.so ($BENCH_PLAIN_LIB)")
    ap.add_argument("--mech", default=",".join(FUNCS))
    a = ap.parse_args()
    fns = a.mech.split(",")
    if any(f not in FUNCS for f in fns) or min(a.calls, a.samples, a.runs) < 1 or a.warmup < 0 or a.control_calls < 0:
        ap.error(f"--mech is a list of {', '.join(FUNCS)}; counts must be positive")
    if not a.plain:
        ap.error("--plain PATH or $BENCH_PLAIN_LIB: where libbenchplain.so is")
    control_calls = a.control_calls or max(1, a.calls // 10)

    try:
        import mmipc
        from mmipc._lib import lib  # the package's CDLL, with its argtypes and restype
    except ImportError as e:
        ENGINE.fail(f"import: {e} (PYTHONPATH=python and MMIPC_LIB=<build>/libmmipc.so?)")
    try:
        plain = ctypes.CDLL(a.plain, use_errno=True)
    except OSError as e:
        ENGINE.fail(f"load {a.plain}: {e}")
    # The same declarations as the package's for mmipc_size (size_t f(void *)) and mmipc_open
    # (void *f(char *, int)).
    plain.plain_size.restype, plain.plain_size.argtypes = lib.mmipc_size.restype, lib.mmipc_size.argtypes
    plain.plain_control.restype, plain.plain_control.argtypes = lib.mmipc_open.restype, lib.mmipc_open.argtypes

    region = mmipc.anon(4096)
    handle = region._handle  # the C handle (an int), as the package passes it
    pr = PlainRegion(lib.mmipc_data(handle), 4096)
    plain_arg = ctypes.addressof(pr)  # an int too: ctypes converts both arguments alike

    def sized(f, arg):
        def run(n):
            t0 = time.perf_counter_ns()
            for _ in itertools.repeat(None, n):
                f(arg)
            t1 = time.perf_counter_ns()
            if f(arg) != 4096:
                ENGINE.fail(f"{f.__name__} returned {f(arg)}, want 4096")
            return t1 - t0
        return run

    def control(f):
        def run(n):
            ctypes.set_errno(0)
            t0 = time.perf_counter_ns()
            for _ in itertools.repeat(None, n):
                f(b"", 0)
            t1 = time.perf_counter_ns()
            if f(b"", 0) is not None or ctypes.get_errno() != errno.EINVAL:
                ENGINE.fail(f"{f.__name__}(b'', 0) did not fail with EINVAL (errno {ctypes.get_errno()})")
            return t1 - t0
        return run

    runners = {
        "mmipc_size": (sized(lib.mmipc_size, handle), a.calls),
        "plain_size": (sized(plain.plain_size, plain_arg), a.calls),
        "control": (control(lib.mmipc_open), control_calls),
        "plain_control": (control(plain.plain_control), control_calls),
    }
    ENGINE.start_watchdog()
    print(f"# py-abicost calls={a.calls} control_calls={control_calls} samples={a.samples} runs={a.runs} "
          f"python={sys.version.split()[0]} mmipc_lib={mmipc.version()}", flush=True)
    for _ in range(a.warmup):
        for f in fns:
            run, n = runners[f]
            run(n)
            ENGINE.progress += 1
    for _run in range(a.runs):
        samples = {f: [] for f in fns}
        for _ in range(a.samples):
            for f in fns:
                run, n = runners[f]
                samples[f].append(run(n) / n)
                ENGINE.progress += 1
        for f in fns:
            ENGINE.result(f"py-abicost/{f}", "py-abicost", f, "", "ns", samples[f])
    region.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
