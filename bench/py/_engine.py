"""What the Python engines share: failing with clean-up, a watchdog, and RESULT lines computed as
bench/c/bench.h computes them (bench/ENGINES.md). Standard library only."""
import json
import os
import sys
import threading
import time

TIMEOUT_S = 20


class Engine:
    def __init__(self, prog):
        self.prog = prog
        self.progress = 0  # bumped by the engine after each sample or cycle
        self.cleanup = []  # callables that remove what a failed run may have left

    def fail(self, msg):
        print(f"{self.prog}: FAIL: {msg}", file=sys.stderr, flush=True)
        for f in self.cleanup:
            try:
                f()
            except OSError:
                pass
        os._exit(1)

    def start_watchdog(self):
        """Fails the engine when `progress` stands still for TIMEOUT_S seconds (a hung call)."""

        def watch():
            last, idle = self.progress, 0
            while True:
                time.sleep(1)
                if self.progress != last:
                    last, idle = self.progress, 0
                else:
                    idle += 1
                    if idle >= TIMEOUT_S:
                        self.fail(f"no progress for {TIMEOUT_S} s")

        threading.Thread(target=watch, daemon=True).start()

    def result(self, id_, group, mech, param, unit, samples, nbytes=0):
        v = sorted(samples)
        if v[0] < 0 or rank(v, 0.5) <= 0:
            self.fail(f"{id_}: non-positive statistics")
        line = {"id": id_, "group": group, "mechanism": mech, "param": param, "placement": "", "unit": unit,
                "n": len(v), "p50": rank(v, 0.50), "p99": rank(v, 0.99), "mean": sum(v) / len(v), "min": v[0],
                "max": v[-1], "bytes": nbytes}
        print("RESULT " + json.dumps(line, separators=(",", ":")), flush=True)


def rank(v, q):
    """Nearest-rank percentile of sorted v, as bench/c/bench.h computes it."""
    k = min(max(int(q * len(v) + 0.999999), 1), len(v))
    return v[k - 1]
