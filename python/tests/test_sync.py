"""The sync layer from Python (mmipc.wait/notify, Lock, Ring) over the C library: every error as
the right OSError subclass, timeouts, zero-copy views that cannot dangle, and use from a forked
child (all of it is plain C, so it works there; only create_ring/open_ring are refused).

The cross-language matrix (C, Go and Python senders and receivers, locks contended by C and Go)
lives in tests/ring_examples_test.go and tests/sync_cross_test.go; these are the Python API's own
checks. Every wait is bounded."""
import ctypes
import errno
import os
import signal
import struct
import threading
import time
import unittest

import mmipc

if __package__:
    from . import _support as support
else:  # discovered with -s python/tests and no -t: the modules are top-level
    import _support as support

SHORT = 0.05  # seconds: a timeout that must expire


class WaitNotifyTest(unittest.TestCase):
    def setUp(self):
        support.use_region_dir(self)
        self.r = mmipc.anon(4096)
        self.addCleanup(self.r.close)

    def test_changed_word_returns_at_once(self):
        struct.pack_into("=I", self.r.buf, 8, 7)
        t0 = time.monotonic()
        mmipc.wait(self.r.buf, 8, 6, timeout=5)
        self.assertLess(time.monotonic() - t0, 1)

    def test_timeouts(self):
        with self.assertRaises(BlockingIOError) as cm:
            mmipc.wait(self.r.buf, 0, 0, timeout=0)
        self.assertEqual(cm.exception.errno, errno.EAGAIN)
        t0 = time.monotonic()
        with self.assertRaises(TimeoutError):
            mmipc.wait(self.r.buf, 0, 0, timeout=SHORT)
        self.assertGreaterEqual(time.monotonic() - t0, SHORT * 0.9)

    def test_notify_wakes_a_thread(self):
        woke = []

        def waiter():
            while struct.unpack_from("=I", self.r.buf, 0)[0] == 0:
                mmipc.wait(self.r.buf, 0, 0, timeout=5)
            woke.append(True)

        th = threading.Thread(target=waiter)
        th.start()
        time.sleep(0.05)
        struct.pack_into("=I", self.r.buf, 0, 1)
        mmipc.notify(self.r.buf, 0, None)
        th.join(10)
        self.assertFalse(th.is_alive())
        self.assertEqual(woke, [True])

    def test_notify_nobody_returns_zero(self):
        self.assertEqual(mmipc.notify(self.r.buf, 4), 0)

    def test_notify_wakes_a_forked_child(self):
        def child():
            while struct.unpack_from("=I", self.r.buf, 0)[0] == 0:
                mmipc.wait(self.r.buf, 0, 0, timeout=10)
            return 0

        pid = os.fork()
        if pid == 0:
            os._exit(child())
        time.sleep(0.05)
        struct.pack_into("=I", self.r.buf, 0, 1)
        mmipc.notify(self.r.buf, 0, 1)
        self.assertEqual(support.wait_pid(pid), 0)

    def test_bad_arguments(self):
        for call in (lambda: mmipc.wait(self.r.buf, 2, 0, 0), lambda: mmipc.notify(self.r.buf, 2),
                     lambda: mmipc.wait(self.r.buf, 4094, 0, 0), lambda: mmipc.wait(self.r.buf, -4, 0, 0),
                     lambda: mmipc.notify(self.r.buf, 0, 0), lambda: mmipc.wait(self.r.buf, 0, 2**32, 0)):
            with self.assertRaises(OSError) as cm:
                call()
            self.assertEqual(cm.exception.errno, errno.EINVAL)
        with self.assertRaises(ValueError):
            mmipc.wait(self.r.buf, 0, 0, timeout=-1)
        with self.assertRaises(TypeError):
            mmipc.wait(self.r.buf, 0, 0, timeout="1")
        with self.assertRaises(OSError):
            mmipc.wait(bytes(8), 0, 0, 0)  # read-only buffer
        for call in (lambda: mmipc.wait(self.r.buf.toreadonly(), 0, 0, 0),
                     lambda: mmipc.notify(self.r.buf.toreadonly(), 0)):
            with self.assertRaises(OSError) as cm:
                call()
            self.assertEqual(cm.exception.errno, errno.EINVAL)


class LockTest(unittest.TestCase):
    def setUp(self):
        support.use_region_dir(self)
        self.r = mmipc.anon(4096)
        self.addCleanup(self.r.close)
        self.lock = mmipc.Lock(self.r.buf, 64)

    def test_acquire_release(self):
        self.assertTrue(self.lock.acquire())
        owner = struct.unpack_from("=Q", self.r.buf, 64)[0]
        self.assertEqual(owner & 0xFFFFFFFF, os.getpid())
        self.lock.release()
        self.assertEqual(struct.unpack_from("=Q", self.r.buf, 64)[0], 0)
        with self.assertRaises(PermissionError):
            self.lock.release()

    def test_held_by_a_live_process(self):
        ready = mmipc.anon(64)
        self.addCleanup(ready.close)
        pid = os.fork()
        if pid == 0:
            self.lock.acquire()
            struct.pack_into("=I", ready.buf, 0, 1)
            time.sleep(30)
            os._exit(0)
        try:
            deadline = time.monotonic() + 10
            while struct.unpack_from("=I", ready.buf, 0)[0] == 0 and time.monotonic() < deadline:
                time.sleep(0.001)
            with self.assertRaises(BlockingIOError):
                self.lock.acquire(timeout=0)
            with self.assertRaises(TimeoutError):
                self.lock.acquire(timeout=SHORT)
            # Killed, not yet reaped (a zombie of ours): dead all the same.
            os.kill(pid, signal.SIGKILL)
            with self.assertRaises(mmipc.OwnerDeadError) as cm:
                self.lock.acquire(timeout=10)
            self.assertEqual(cm.exception.errno, errno.EOWNERDEAD)
            self.lock.consistent()
            self.lock.release()
            self.lock.acquire(timeout=0)
            self.lock.release()
        finally:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)

    def test_bad_timeouts(self):
        for bad, exc in ((-1, ValueError), (float("nan"), ValueError), ("1", TypeError), (True, TypeError)):
            with self.assertRaises(exc):
                self.lock.acquire(timeout=bad)
        self.assertEqual(struct.unpack_from("=Q", self.r.buf, 64)[0], 0)  # never taken

    def test_with_reports_a_dead_owner_and_unrepaired_release_is_fatal(self):
        pid = os.fork()
        if pid == 0:
            self.lock.acquire()
            os.kill(os.getpid(), signal.SIGKILL)
        os.waitpid(pid, 0)
        with self.lock as owner_died:
            self.assertTrue(owner_died)
            # not repaired: releasing makes the lock unusable
        with self.assertRaises(OSError) as cm:
            self.lock.acquire(timeout=0)
        self.assertEqual(cm.exception.errno, errno.ENOTRECOVERABLE)
        self.lock.init()
        with self.lock as owner_died:
            self.assertFalse(owner_died)

    def test_counter_between_forked_children(self):
        counter = 128

        def work():
            for _ in range(2000):
                with self.lock:
                    (v,) = struct.unpack_from("=Q", self.r.buf, counter)
                    struct.pack_into("=Q", self.r.buf, counter, v + 1)

        pids = []
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                try:
                    work()
                    os._exit(0)
                except BaseException:
                    os._exit(1)
            pids.append(pid)
        self.assertEqual([support.wait_pid(p) for p in pids], [0, 0, 0])
        self.assertEqual(struct.unpack_from("=Q", self.r.buf, counter)[0], 6000)

    def test_bad_place(self):
        for off in (1, 32, 4096 - 32):
            with self.assertRaises(OSError) as cm:
                mmipc.Lock(self.r.buf, off)
            self.assertEqual(cm.exception.errno, errno.EINVAL)
        with self.assertRaises(OSError) as cm:
            mmipc.Lock(self.r.buf.toreadonly(), 64)  # a lock must be writable
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        struct.pack_into("=I", self.r.buf, 64 + 16, 0x80)  # unknown state bit
        with self.assertRaises(OSError) as cm:
            self.lock.acquire(timeout=0)
        self.assertEqual(cm.exception.errno, errno.EPROTO)


class RingTest(unittest.TestCase):
    def setUp(self):
        self.dir = support.use_region_dir(self)
        self.q = mmipc.create_ring("q", 4096)
        self.addCleanup(self.q.close)

    def test_properties_and_errors_on_open(self):
        self.assertEqual((self.q.capacity, self.q.max_message), (4096, 2040))
        self.assertEqual(mmipc.create_ring("small", 1).capacity, 1024)
        with self.assertRaises(FileExistsError):
            mmipc.create_ring("q", 4096)
        with self.assertRaises(FileNotFoundError):
            mmipc.open_ring("nothing")
        for cap in (0, 2**30 + 1, -1):
            with self.assertRaises(OSError) as cm:
                mmipc.create_ring("bad", cap)
            self.assertEqual(cm.exception.errno, errno.EINVAL)
        mmipc.create("plain", 4096).close()
        with self.assertRaises(OSError) as cm:
            mmipc.open_ring("plain")
        self.assertEqual(cm.exception.errno, errno.EPROTO)

    def test_send_recv_all_sizes(self):
        peer = mmipc.open_ring("q")
        self.addCleanup(peer.close)
        for n in list(range(0, 100)) + [1000, 2040]:
            msg = bytes((n + i) & 0xFF for i in range(n))
            self.q.send(msg, timeout=1)
            self.assertEqual(peer.recv(timeout=1), msg)
        self.q.send(bytearray(b"abc"))
        self.q.send(memoryview(b"defg"))
        buf = bytearray(8)
        self.assertEqual(peer.recv_into(buf, timeout=1), 3)
        self.assertEqual(bytes(buf[:3]), b"abc")
        with self.assertRaises(OSError) as cm:
            peer.recv_into(bytearray(2), timeout=1)
        self.assertEqual(cm.exception.errno, errno.EMSGSIZE)
        self.assertEqual(peer.recv(timeout=1), b"defg")  # it stayed

    def test_limits_and_timeouts(self):
        with self.assertRaises(OSError) as cm:
            self.q.send(bytes(2041))
        self.assertEqual(cm.exception.errno, errno.EMSGSIZE)
        with self.assertRaises(BlockingIOError):
            self.q.recv(timeout=0)
        with self.assertRaises(TimeoutError):
            self.q.recv(timeout=SHORT)
        sent = 0
        while True:
            try:
                self.q.send(bytes(100), timeout=0)
                sent += 1
            except BlockingIOError:
                break
        self.assertEqual(sent, 4096 // 112)
        with self.assertRaises(TimeoutError):
            self.q.send(bytes(100), timeout=SHORT)

    def test_large_message_grows_the_receive_buffer(self):
        big = mmipc.create_ring("big", 1 << 20)
        self.addCleanup(big.close)
        msg = os.urandom(300000)
        big.send(msg)
        self.assertEqual(big.recv(timeout=1), msg)

    def test_zero_copy(self):
        view = self.q.reserve(10, timeout=1)
        view[:5] = b"hello"
        self.q.commit(5)
        with self.assertRaises(ValueError):
            view[0]  # the reservation's memory belongs to the ring again
        got = self.q.peek(timeout=1)
        self.assertTrue(got.readonly)
        self.assertEqual(bytes(got), b"hello")
        self.assertEqual(bytes(self.q.peek(timeout=1)), b"hello")  # same message again
        self.q.release()
        with self.assertRaises(ValueError):
            bytes(got)
        with self.assertRaises(BlockingIOError):
            self.q.peek(timeout=0)
        with self.assertRaises(OSError) as cm:
            self.q.release()
        self.assertEqual(cm.exception.errno, errno.EINVAL)

    def test_closed_ring_raises_value_error(self):
        other = mmipc.open_ring("q")
        other.close()
        for call in (lambda: other.send(b"x"), lambda: other.recv(0), lambda: other.recv_into(bytearray(8), 0),
                     lambda: other.reserve(1, 0), lambda: other.commit(0), lambda: other.peek(0),
                     other.release):
            with self.assertRaises(ValueError):
                call()

    def test_bad_timeouts(self):
        self.q.send(b"kept")
        calls = (lambda t: self.q.send(b"x", t), lambda t: self.q.recv(t), lambda t: self.q.recv_into(bytearray(8), t),
                 lambda t: self.q.reserve(1, t), lambda t: self.q.peek(t))
        for bad, exc in ((-1, ValueError), (-0.5, ValueError), (float("nan"), ValueError), ("1", TypeError),
                         (True, TypeError), (b"", TypeError)):
            for call in calls:
                with self.assertRaises(exc, msg=f"timeout {bad!r}"):
                    call(bad)
        self.assertEqual(self.q.recv(timeout=0), b"kept")  # nothing sent, nothing taken
        with self.assertRaises(BlockingIOError):
            self.q.recv(timeout=0)

    def test_recv_into_read_only_buffer(self):
        self.q.send(b"stays")
        with self.assertRaises(TypeError):
            self.q.recv_into(bytes(8), timeout=0)
        self.assertEqual(self.q.recv(timeout=0), b"stays")

    def test_bad_sizes(self):
        for call in (lambda: self.q.reserve(-1, 0), lambda: self.q.reserve(2**64, 0), lambda: self.q.commit(-1)):
            with self.assertRaises(OSError) as cm:
                call()
            self.assertEqual(cm.exception.errno, errno.EINVAL)

    def test_close_abandons_a_reservation(self):
        other = mmipc.open_ring("q")
        v = other.reserve(4)
        v[:] = b"torn"
        other.close()
        self.assertTrue(other.closed)
        other.close()  # again: nothing
        with self.assertRaises(ValueError):
            other.send(b"x")
        with self.assertRaises(BlockingIOError):
            self.q.recv(timeout=0)

    def test_forked_child_uses_the_ring(self):
        n = 20000

        def child():
            for i in range(n):
                self.q.send(struct.pack("=Q", i) * (1 + i % 7), timeout=10)
            try:
                mmipc.open_ring("q")
            except OSError as e:
                return 0 if e.errno == errno.ENOTSUP else 3
            return 4

        pid = os.fork()
        if pid == 0:
            os._exit(child())
        try:
            for i in range(n):
                self.assertEqual(self.q.recv(timeout=10), struct.pack("=Q", i) * (1 + i % 7))
        finally:
            self.assertEqual(support.wait_pid(pid), 0)

    def test_threads_with_their_own_handles(self):
        senders, per = 3, 5000
        got = []

        def send(k):
            with mmipc.open_ring("q") as q:
                for i in range(per):
                    q.send(struct.pack("=II", k, i), timeout=10)

        threads = [threading.Thread(target=send, args=(k,)) for k in range(senders)]
        for th in threads:
            th.start()
        for _ in range(senders * per):
            got.append(struct.unpack("=II", self.q.recv(timeout=10)))
        for th in threads:
            th.join(10)
        for k in range(senders):
            self.assertEqual([i for s, i in got if s == k], list(range(per)))
