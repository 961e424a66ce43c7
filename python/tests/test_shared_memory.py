"""mmipc.SharedMemory against multiprocessing.shared_memory.SharedMemory.

The compatibility checks are written once (SharedMemoryChecks) and run against both classes
(StdlibSharedMemoryTest, MmipcSharedMemoryTest), so a difference shows as a failure in one of the
two. The differences mmipc.SharedMemory documents on purpose are tested separately
(MmipcDifferencesTest, and CrossTest for the two formats refusing each other).

The standard class keeps its segments in /dev/shm itself (it ignores MMIPC_DIR): its tests use
unique names and always unlink them. mmipc's use a fresh MMIPC_DIR per test."""
import errno
import os
import pickle
import secrets
import sys
import textwrap
import time
import unittest
from multiprocessing import shared_memory as stdlib_shm

import mmipc
import mmipc.shared_memory

if __package__:
    from . import _support as support
else:  # discovered with -s python/tests and no -t: the modules are top-level
    import _support as support

PAGE = os.sysconf("SC_PAGE_SIZE")


def unique_name():
    return f"mmipc-pyt-{os.getpid()}-{secrets.token_hex(6)}"


class SharedMemoryChecks:
    """The behaviour both classes share. Subclasses set SharedMemory and define remove(name),
    which deletes a segment left behind by a failing test."""

    SharedMemory = None

    def new_name(self):
        name = unique_name()
        self.addCleanup(self.remove, name)
        return name

    def test_create_with_name_and_attach(self):
        name = self.new_name()
        a = self.SharedMemory(name, create=True, size=100)
        self.assertEqual(a.name, name)
        self.assertEqual(a.size, 100)
        self.assertIsInstance(a.buf, memoryview)
        self.assertEqual(a.buf.format, "B")
        self.assertFalse(a.buf.readonly)
        self.assertEqual(len(a.buf), 100)
        self.assertEqual(bytes(a.buf), bytes(100))
        a.buf[:5] = b"hello"
        b = self.SharedMemory(name)  # attach by name
        self.assertEqual(b.name, name)
        self.assertEqual(b.size, 100)
        self.assertEqual(bytes(b.buf[:5]), b"hello")
        b.buf[99] = 7
        self.assertEqual(a.buf[99], 7)
        c = self.SharedMemory(name=name, create=False, size=5)  # size is ignored when attaching
        self.assertEqual(c.size, 100)
        for s in (c, b, a):
            s.close()
        a.unlink()

    def test_create_without_name(self):
        a = self.SharedMemory(create=True, size=64)
        self.addCleanup(self.remove, a.name)
        b = self.SharedMemory(None, True, 64)
        self.addCleanup(self.remove, b.name)
        for s in (a, b):
            self.assertIsInstance(s.name, str)
            self.assertTrue(s.name)
            self.assertNotIn("/", s.name)
            self.assertEqual(s.size, 64)
        self.assertNotEqual(a.name, b.name)  # a fresh random name each time
        a.buf[0] = 1
        peer = self.SharedMemory(a.name)
        self.assertEqual(peer.buf[0], 1)
        self.assertEqual(b.buf[0], 0)
        for s in (peer, a, b):
            s.close()
        a.unlink()
        b.unlink()

    def test_close(self):
        name = self.new_name()
        a = self.SharedMemory(name, create=True, size=10)
        a.close()
        self.assertIsNone(a.buf)
        a.close()  # again: nothing happens
        self.assertIsNone(a.buf)
        self.assertEqual(a.name, name)  # name and size stay
        self.assertEqual(a.size, 10)
        b = self.SharedMemory(name)  # the segment stays after close
        b.close()
        a.unlink()  # unlink after close works: it goes by name

    def test_unlink(self):
        name = self.new_name()
        a = self.SharedMemory(name, create=True, size=10)
        a.unlink()
        with self.assertRaises(FileNotFoundError):
            self.SharedMemory(name)
        a.buf[0] = 5  # the creator keeps its memory
        self.assertEqual(a.buf[0], 5)
        b = self.SharedMemory(name, create=True, size=20)  # the name can be created anew
        self.assertEqual(b.buf[0], 0)
        b.close()
        b.unlink()
        a.close()

    def test_file_exists(self):
        name = self.new_name()
        a = self.SharedMemory(name, create=True, size=10)
        with self.assertRaises(FileExistsError):
            self.SharedMemory(name, create=True, size=10)
        a.close()
        a.unlink()

    def test_file_not_found(self):
        with self.assertRaises(FileNotFoundError):
            self.SharedMemory(unique_name())

    def test_value_errors(self):
        with self.assertRaises(ValueError):
            self.SharedMemory(unique_name(), create=True, size=-1)
        with self.assertRaises(ValueError):
            self.SharedMemory(unique_name(), create=False, size=-1)
        with self.assertRaises(ValueError):
            self.SharedMemory(unique_name(), create=True, size=0)
        with self.assertRaises(ValueError):
            self.SharedMemory(unique_name(), create=True)  # size defaults to 0
        with self.assertRaises(ValueError):
            self.SharedMemory(None, create=False)
        with self.assertRaises(ValueError):
            self.SharedMemory()

    def test_pickle_round_trip(self):
        name = self.new_name()
        a = self.SharedMemory(name, create=True, size=300)
        self.assertEqual(a.__reduce__(), (self.SharedMemory, (name, False, 300)))
        b = pickle.loads(pickle.dumps(a))  # attaches by name
        self.assertIs(type(b), self.SharedMemory)
        self.assertEqual((b.name, b.size), (name, 300))
        a.buf[10] = 42
        self.assertEqual(b.buf[10], 42)
        b.close()
        a.close()
        a.unlink()

    def test_repr(self):
        name = self.new_name()
        a = self.SharedMemory(name, create=True, size=33)
        self.assertEqual(repr(a), f"SharedMemory({name!r}, size=33)")
        a.close()
        self.assertEqual(repr(a), f"SharedMemory({name!r}, size=33)")
        a.unlink()


class StdlibSharedMemoryTest(SharedMemoryChecks, unittest.TestCase):
    SharedMemory = stdlib_shm.SharedMemory

    def remove(self, name):
        if os.path.exists(os.path.join("/dev/shm", name)):
            s = stdlib_shm.SharedMemory(name)
            s.close()
            s.unlink()  # also drops the resource tracker's registration


class MmipcSharedMemoryTest(SharedMemoryChecks, unittest.TestCase):
    SharedMemory = mmipc.SharedMemory

    def setUp(self):
        self.dir = support.use_region_dir(self)

    def remove(self, name):
        try:
            mmipc.unlink(name)
        except FileNotFoundError:
            pass

    def test_segments_live_in_mmipc_dir(self):
        a = mmipc.SharedMemory(create=True, size=10)
        self.assertTrue(os.path.isfile(os.path.join(self.dir, a.name)))
        self.assertIs(mmipc.shared_memory.SharedMemory, mmipc.SharedMemory)
        a.close()
        a.unlink()
        self.assertEqual(os.listdir(self.dir), [])


class MmipcDifferencesTest(unittest.TestCase):
    """The differences documented in mmipc/shared_memory.py."""

    def setUp(self):
        self.dir = support.use_region_dir(self)

    def test_no_resource_tracker(self):
        """A child creates a segment and exits without unlink: the segment stays (nothing
        unlinks it behind the user's back)."""
        name = unique_name()
        script = textwrap.dedent(f"""
            from mmipc import SharedMemory
            s = SharedMemory({name!r}, create=True, size=64)
            s.buf[0] = 42
        """)
        code, out, err = support.run([sys.executable, "-c", script], env=support.child_env())
        self.assertEqual(code, 0, err)
        self.assertEqual(err, "")  # no tracker warning either
        s = mmipc.SharedMemory(name)  # still there after the creator's exit
        self.assertEqual(s.buf[0], 42)
        s.close()
        s.unlink()
        self.assertEqual(os.listdir(self.dir), [])

    def test_track_is_accepted_and_ignored(self):
        name = unique_name()
        s = mmipc.SharedMemory(name, create=True, size=8, track=False)  # Python 3.13's keyword
        t = mmipc.SharedMemory(name, track=True)
        t.close()
        s.close()
        s.unlink()

    def test_leading_slash(self):
        name = unique_name()
        s = mmipc.SharedMemory("/" + name, create=True, size=10)  # shm_open style
        self.assertEqual(s.name, name)
        self.assertTrue(os.path.isfile(os.path.join(self.dir, name)))
        t = mmipc.SharedMemory("/" + name)
        self.assertEqual(t.name, name)
        s.buf[0] = 3
        self.assertEqual(t.buf[0], 3)
        with mmipc.open(name) as r:  # the same region as the plain name
            self.assertEqual(r.buf[0], 3)
        t.close()
        s.close()
        s.unlink()
        self.assertEqual(os.listdir(self.dir), [])

    def test_exact_size(self):
        for size in (1, 5, PAGE - 1, PAGE + 1, 3 * PAGE + 17):
            with self.subTest(size=size):
                name = unique_name()
                s = mmipc.SharedMemory(name, create=True, size=size)
                t = mmipc.SharedMemory(name)
                self.assertEqual((s.size, len(s.buf)), (size, size))
                self.assertEqual((t.size, len(t.buf)), (size, size))  # not rounded up to a page
                t.close()
                s.close()
                s.unlink()

    def test_bad_name_is_oserror(self):
        for name in ("bad name", ".hidden", "a" * 201):
            with self.subTest(name=name):
                with self.assertRaises(OSError) as cm:
                    mmipc.SharedMemory(name, create=True, size=10)
                self.assertEqual(cm.exception.errno, errno.EINVAL)
                self.assertNotIsInstance(cm.exception, ValueError)

    def test_close_with_live_views(self):
        """close() while a slice of buf is alive: the standard class raises BufferError, mmipc's
        keeps the memory mapped for the slice."""
        name = unique_name()
        s = mmipc.SharedMemory(name, create=True, size=100)
        peer = mmipc.SharedMemory(name)
        view = s.buf[10:20]
        s.close()
        self.assertIsNone(s.buf)
        view[0] = 9
        self.assertEqual(peer.buf[10], 9)
        del view
        peer.close()
        s.unlink()

        std = stdlib_shm.SharedMemory(create=True, size=100)
        try:
            view = std.buf[10:20]
            with self.assertRaises(BufferError):
                std.close()
            del view
            std.close()  # fine once the slice is gone
        finally:
            std.unlink()

    def test_peers_open_by_name(self):
        """The segment is an mmipc region: C's mmipc_open and Go's mmipc.Open (here through the
        same library) attach it by the SharedMemory's name."""
        s = mmipc.SharedMemory(create=True, size=50)
        s.buf[:4] = b"peer"
        with mmipc.open(s.name) as r:
            self.assertEqual(r.size, 50)
            self.assertEqual(bytes(r.buf[:4]), b"peer")
        s.close()
        s.unlink()


class CrossTest(unittest.TestCase):
    """The standard class and mmipc cannot attach each other's segments. For these tests only,
    MMIPC_DIR is /dev/shm, where the standard class keeps its segments."""

    def setUp(self):
        if not os.path.isdir("/dev/shm"):
            self.skipTest("no /dev/shm")
        support.use_region_dir(self)  # restores MMIPC_DIR afterwards
        os.environ["MMIPC_DIR"] = "/dev/shm"

    def test_mmipc_refuses_a_stdlib_segment(self):
        std = stdlib_shm.SharedMemory(unique_name(), create=True, size=2 * PAGE)
        self.addCleanup(std.unlink)
        self.addCleanup(std.close)
        std.buf[:] = b"\xab" * (2 * PAGE)
        for call in (
            lambda: mmipc.SharedMemory(std.name),
            lambda: mmipc.SharedMemory("/" + std.name),
            lambda: mmipc.open(std.name),
            lambda: mmipc.unlink(std.name),
        ):
            with self.assertRaises(OSError) as cm:
                call()
            self.assertEqual(cm.exception.errno, errno.EPROTO, cm.exception)
            self.assertIn("not an mmipc region", str(cm.exception))
        self.assertTrue(os.path.exists(os.path.join("/dev/shm", std.name)))  # never deleted
        self.assertEqual(bytes(std.buf[:4]), b"\xab" * 4)  # nor changed

    def test_stdlib_cannot_use_an_mmipc_segment(self):
        """The standard class has no format to check: it attaches an mmipc segment, but sees its
        header page, not the data, and a size that is the file's."""
        name = unique_name()
        ours = mmipc.SharedMemory(name, create=True, size=100)
        self.addCleanup(ours.close)
        ours.buf[:5] = b"hello"
        theirs = stdlib_shm.SharedMemory(name)
        try:
            self.assertNotEqual(theirs.size, 100)
            self.assertEqual(theirs.size, os.path.getsize(os.path.join("/dev/shm", name)))
            self.assertEqual(bytes(theirs.buf[:8]), b"MMIPCREG")  # the header's magic
            self.assertNotEqual(bytes(theirs.buf[:5]), b"hello")
        finally:
            theirs.close()
            theirs.unlink()  # removes the name and the registration attaching made before 3.13
        with self.assertRaises(FileNotFoundError):
            mmipc.open(name)


class StdlibTrackerContrastTest(unittest.TestCase):
    """The contrast to MmipcDifferencesTest.test_no_resource_tracker: the standard class's resource
    tracker unlinks a segment whose creator exits without unlink. Deterministic: the tracker, a
    separate process, holds the child's stderr, so once the child's output is complete the tracker
    has finished its clean-up; the poll below only guards against a slow machine."""

    def test_stdlib_segment_removed_when_creator_exits(self):
        name = unique_name()
        path = os.path.join("/dev/shm", name)
        self.addCleanup(lambda: os.path.exists(path) and os.unlink(path))
        script = textwrap.dedent(f"""
            from multiprocessing.shared_memory import SharedMemory
            s = SharedMemory({name!r}, create=True, size=64)
            s.buf[0] = 42
        """)
        code, out, err = support.run([sys.executable, "-c", script])
        self.assertEqual(code, 0, err)
        deadline = time.monotonic() + 10
        while os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertFalse(os.path.exists(path), f"the standard class's tracker did not remove it; stderr:\n{err}")


if __name__ == "__main__":
    unittest.main()
