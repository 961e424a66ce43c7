"""The fork rule from Python: after os.fork() the child may use Region.buf, .size, .fd, .sync()
and .close() of the regions it inherited, and every call that needs the library's Go runtime
(create, open, anon, unlink, from_fd, map_file, copy_file) raises OSError(ENOTSUP) at once, never
hangs. The parent sees what the child wrote.

Children report through their exit code and, for details, through a shared report region the
parent reads; every wait has a deadline (_support.wait_pid kills a child that overstays)."""
import errno
import json
import os
import struct
import time
import unittest

import mmipc

if __package__:
    from . import _support as support
else:  # discovered with -s python/tests and no -t: the modules are top-level
    import _support as support

PAGE = os.sysconf("SC_PAGE_SIZE")
FAST = 0.5  # seconds: "at once" with a wide margin for a loaded machine; a hang is caught anyway


def write_report(region, obj):
    """The child's findings as JSON in region: a u32 length, then the text."""
    data = json.dumps(obj).encode()
    region.buf[4:4 + len(data)] = data
    struct.pack_into("@I", region.buf, 0, len(data))


def read_report(region):
    (n,) = struct.unpack_from("@I", region.buf, 0)
    if n == 0 or n > region.size - 4:
        return None
    return json.loads(bytes(region.buf[4:4 + n]))


def refused_calls(existing, path, fd):
    """Every call that must fail with ENOTSUP in a forked child, by name."""
    return [
        ("create", lambda: mmipc.create("from-child", 64)),
        ("open", lambda: mmipc.open(existing)),
        ("open readonly", lambda: mmipc.open(existing, readonly=True)),
        ("anon", lambda: mmipc.anon(64)),
        ("unlink", lambda: mmipc.unlink(existing)),
        ("from_fd", lambda: mmipc.from_fd(fd)),
        ("from_fd readonly", lambda: mmipc.from_fd(fd, readonly=True)),
        ("map_file", lambda: mmipc.map_file(path)),
        ("copy_file", lambda: mmipc.copy_file(path, path + ".copy")),
        ("SharedMemory create", lambda: mmipc.SharedMemory("from-child-shm", create=True, size=8)),
        ("SharedMemory attach", lambda: mmipc.SharedMemory(existing)),
    ]


def try_refused(calls):
    """Runs each call; returns {name: [errno or None, message, seconds]}."""
    out = {}
    for name, call in calls:
        start = time.monotonic()
        try:
            call()
            out[name] = [None, "no error", time.monotonic() - start]
        except OSError as e:
            out[name] = [e.errno, e.strerror, time.monotonic() - start]
        except Exception as e:  # noqa: BLE001 - reported, not swallowed
            out[name] = [None, repr(e), time.monotonic() - start]
    return out


class ForkTest(unittest.TestCase):
    def setUp(self):
        self.dir = support.use_region_dir(self)
        self.report = mmipc.anon(64 * 1024)
        self.addCleanup(self.report.close)

    def check_refused(self, results):
        self.assertTrue(results, "the child wrote no report")
        for name, (err, msg, secs) in results.items():
            with self.subTest(call=name):
                self.assertEqual(err, errno.ENOTSUP, msg)
                self.assertIn("fork", msg)  # the library's message says why
                self.assertLess(secs, FAST)

    def test_child_uses_inherited_regions(self):
        anon = mmipc.anon(PAGE + 10)
        named = mmipc.create("forked", 100)
        peer = mmipc.open("forked")  # another attachment of the parent's, not inherited use
        anon.buf[:6] = b"parent"
        named.buf[:6] = b"parent"

        def child():
            seen = [bytes(anon.buf[:6]).decode(), bytes(named.buf[:6]).decode()]
            anon.buf[:5] = b"child"
            anon.buf[-1] = 0xEE
            named.buf[10:15] = b"child"
            os.fstat(anon.fd)  # the descriptors are usable (raises otherwise)
            os.fstat(named.fd)
            anon.sync()
            named.sync()
            kept = named.buf[50:60]
            named.close()
            anon.close()
            try:
                anon.buf
                buf_after_close = "no error"
            except ValueError:
                buf_after_close = "ValueError"
            kept[0] = 0x55  # a view kept past close still writes the shared memory
            write_report(self.report, {
                "seen": seen,
                "sizes": [anon.size, named.size],
                "closed": [anon.closed, named.closed],
                "buf_after_close": buf_after_close,
                "version": mmipc.version(),  # fork-safe
            })
            return 0

        code = support.fork_run(child)
        self.assertEqual(code, 0, read_report(self.report))
        rep = read_report(self.report)
        self.assertEqual(rep["seen"], ["parent", "parent"])
        self.assertEqual(rep["sizes"], [PAGE + 10, 100])
        self.assertEqual(rep["closed"], [True, True])
        self.assertEqual(rep["buf_after_close"], "ValueError")
        self.assertEqual(rep["version"], mmipc.version())
        # The parent sees the child's writes, through its inherited and its own attachments.
        self.assertEqual(bytes(anon.buf[:5]), b"child")
        self.assertEqual(anon.buf[-1], 0xEE)
        self.assertEqual(bytes(named.buf[10:15]), b"child")
        self.assertEqual(bytes(peer.buf[10:15]), b"child")
        self.assertEqual(peer.buf[50], 0x55)
        # The child's close detached only its copies.
        self.assertFalse(anon.closed)
        anon.buf[0] = 1
        self.assertEqual(anon.buf[0], 1)
        with mmipc.create("after-fork", 10) as r:  # the parent's library still works
            r.buf[0] = 2
        for r in (peer, named, anon):
            r.close()

    def test_child_calls_fail_with_enotsup_at_once(self):
        named = mmipc.create("exists", 64)
        self.addCleanup(named.close)
        plain = os.path.join(self.dir, "plain.bin")
        with open(plain, "wb") as f:
            f.write(b"some bytes")
        calls = refused_calls("exists", plain, named.fd)

        def child():
            results = try_refused(calls)
            write_report(self.report, results)
            ok = all(err == errno.ENOTSUP and secs < FAST for err, _, secs in results.values())
            return 0 if ok else 1

        start = time.monotonic()
        code = support.fork_run(child)
        elapsed = time.monotonic() - start
        results = read_report(self.report)
        self.check_refused(results)
        self.assertEqual(code, 0, results)
        self.assertLess(elapsed, 5.0)  # the whole child, start to reaped
        # No side effect: nothing created, nothing removed.
        self.assertEqual(sorted(os.listdir(self.dir)), ["exists", "plain.bin"])
        with mmipc.open("exists") as r:  # and the parent may still do all of it
            self.assertEqual(r.size, 64)

    def test_grandchild(self):
        """The rule holds in a grandchild too, and the memory is still shared three levels deep."""
        anon = mmipc.anon(PAGE)
        self.addCleanup(anon.close)
        named = mmipc.create("deep", 64)
        self.addCleanup(named.close)

        def grandchild():
            anon.buf[:10] = b"grandchild"
            results = try_refused(refused_calls("deep", "/nonexistent", named.fd)[:4])
            write_report(self.report, results)
            anon.close()
            named.close()
            return 0

        def child():
            return support.fork_run(grandchild, timeout=20)

        code = support.fork_run(child)
        self.assertEqual(code, 0)
        self.check_refused(read_report(self.report))
        self.assertEqual(bytes(anon.buf[:10]), b"grandchild")
        self.assertEqual(os.listdir(self.dir), ["deep"])

    def test_child_exit_code_reports_failure(self):
        """The harness itself: a child that fails is seen failing (so a 0 above means something)."""
        self.assertEqual(support.fork_run(lambda: 7), 7)

    def test_hung_child_is_killed(self):
        start = time.monotonic()
        with self.assertRaises(AssertionError):
            support.fork_run(lambda: time.sleep(60), timeout=0.3)
        self.assertLess(time.monotonic() - start, 10)


if __name__ == "__main__":
    unittest.main()
