"""The Python writer of the crash test (tests/hardening_crash_test.go), the twin of
tests/crashwriter/main.go, whose comment specifies the command line, the loop and the lock region's
layout. Only the "write" command:

    python_crash_writer.py write RING LOCKREGION ID SCRATCHSIZE

Run with PYTHONPATH=<checkout>/python (and MMIPC_LIB for the library under test). Python has no
atomics: the words are read and written with struct (single aligned loads and stores on the
supported hosts); each has one writer at a time (the lock's holder, or the only running writer).
"""
import signal
import struct
import sys
import time

import mmipc

import python_hmsg as hmsg

OFF_A0, OFF_A1, OFF_PHASE, OFF_READY, OFF_REPAIRS, OFF_RESV_SEQ = 64, 72, 80, 84, 88, 96
WAIT_LIMIT = 10.0
U64, U32 = struct.Struct("=Q"), struct.Struct("=I")


def fail(msg):
    print(f"FAIL write: {msg}", flush=True)
    sys.exit(1)


def main():
    if len(sys.argv) != 6 or sys.argv[1] != "write":
        print("usage: python_crash_writer.py write RING LOCKREGION ID SCRATCHSIZE", file=sys.stderr)
        sys.exit(2)
    ring, lockname, ident, scratch_size = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    signal.alarm(60)  # never killed: SIGALRM ends it, and the test reports it
    try:
        q = mmipc.open_ring(ring)
        lr = mmipc.open(lockname)
        scratch = mmipc.create(f"scratch-{ident}", scratch_size)  # noqa: F841 - kept attached
    except OSError as e:
        fail(e)
    b = lr.buf
    lock = mmipc.Lock(b, 0)

    U32.pack_into(b, OFF_READY, ident + 1)
    mmipc.notify(b, OFF_READY, 1 << 30)

    seq = 0
    while True:
        try:
            lock.acquire(WAIT_LIMIT)
            a0, a1 = U64.unpack_from(b, OFF_A0)[0], U64.unpack_from(b, OFF_A1)[0]
            if a0 != a1:
                fail(f"a clean acquire found a0 {a0} != a1 {a1}")
        except mmipc.OwnerDeadError:
            U64.pack_into(b, OFF_A1, U64.unpack_from(b, OFF_A0)[0])
            U32.pack_into(b, OFF_REPAIRS, U32.unpack_from(b, OFF_REPAIRS)[0] + 1)
            lock.consistent()
        except OSError as e:
            fail(e)
        U32.pack_into(b, OFF_PHASE, 1)
        v = U64.unpack_from(b, OFF_A0)[0] + 1
        U64.pack_into(b, OFF_A0, v)
        time.sleep(0.0002)
        U64.pack_into(b, OFF_A1, v)
        U32.pack_into(b, OFF_PHASE, 0)
        lock.release()

        for _ in range(3):
            n = hmsg.HEADER + (seq * 37 + ident * 11) % 300
            try:
                view = q.reserve(n, WAIT_LIMIT)
            except OSError as e:
                fail(e)
            U64.pack_into(b, OFF_RESV_SEQ, seq)
            U32.pack_into(b, OFF_PHASE, 2)
            view[:] = hmsg.build(seq, ident, n)
            time.sleep(0.0001)
            q.commit(n)
            U32.pack_into(b, OFF_PHASE, 0)
            seq += 1


if __name__ == "__main__":
    main()
