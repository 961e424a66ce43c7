"""Tests of mmipc.stat and mmipc.gc (mmipc_stat and mmipc_gc of the C library): RegionInfo's fields,
"attached" following the attachments, the errors, and gc's exact counts: it removes regions nobody
holds and never a region in use or a file that is not a region.

Every test gets its own MMIPC_DIR under /dev/shm (see _support.use_region_dir), so gc counts are
exact; forked children report through their exit code and every wait has a deadline."""
import dataclasses
import errno
import os
import pathlib
import signal
import sys
import time
import unittest
import warnings

import mmipc

if __package__:
    from . import _support as support
else:  # discovered with -s python/tests and no -t: the modules are top-level
    import _support as support

PAGE = os.sysconf("SC_PAGE_SIZE")


def file_size(size):
    """A region's file: a header page, then the data rounded up to pages."""
    return PAGE + (size + PAGE - 1) // PAGE * PAGE


class AdminTest(unittest.TestCase):
    def setUp(self):
        self.dir = support.use_region_dir(self)

    def path(self, name):
        return os.path.join(self.dir, name)

    def released(self, name, size=100):
        """A region nobody holds: created and closed."""
        mmipc.create(name, size).close()

    def assertMmipcError(self, cm, want_errno, name):
        """The OSError in cm has want_errno and the library's message naming mmipc_stat and name."""
        e = cm.exception
        self.assertEqual(e.errno, want_errno, str(e))
        self.assertIn("mmipc_stat", e.strerror)
        self.assertIn(name, e.strerror)


class StatTest(AdminTest):
    def test_fields_of_a_fresh_region(self):
        old = os.umask(0o077)  # the mode is applied exactly: the umask must not show
        try:
            before = time.time()
            r = mmipc.create("fresh", 5000, 0o640)
            after = time.time()
        finally:
            os.umask(old)
        self.addCleanup(r.close)
        info = mmipc.stat("fresh")
        self.assertIsInstance(info, mmipc.RegionInfo)
        self.assertEqual(info.name, "fresh")
        self.assertEqual(info.size, 5000)
        self.assertEqual(info.file_size, file_size(5000))
        self.assertEqual(info.file_size, os.stat(self.path("fresh")).st_size)
        self.assertEqual(info.mode, 0o640)
        self.assertEqual(info.uid, os.geteuid())
        self.assertEqual(info.creator_pid, os.getpid())
        self.assertIsInstance(info.created, float)
        self.assertGreaterEqual(info.created, before - 1.0)
        self.assertLessEqual(info.created, after + 1.0)
        self.assertIs(info.ring, False)
        self.assertIs(info.attached, True)  # the creator holds it

        r.close()
        later = mmipc.stat("fresh")
        self.assertIs(later.attached, False)  # stat itself attaches nothing
        self.assertEqual(later, dataclasses.replace(info, attached=False))  # the rest is unchanged

    def test_default_mode_and_one_byte(self):
        mmipc.create("tiny", 1, 0).close()  # 0 means 0600
        info = mmipc.stat("tiny")
        self.assertEqual((info.size, info.file_size, info.mode), (1, file_size(1), 0o600))

    def test_ring(self):
        with mmipc.create_ring("q", 4096):
            info = mmipc.stat("q")
            self.assertIs(info.ring, True)
            self.assertIs(info.attached, True)
            self.assertGreaterEqual(info.size, 4096)
            self.assertEqual(info.file_size, file_size(info.size))
        self.assertIs(mmipc.stat("q").attached, False)
        with mmipc.open_ring("q"):
            self.assertIs(mmipc.stat("q").attached, True)
        self.assertIs(mmipc.stat("q").attached, False)

    def test_attached_follows_opens(self):
        self.released("r")
        self.assertIs(mmipc.stat("r").attached, False)
        ro = mmipc.open("r", readonly=True)  # a read-only attachment holds it too
        self.assertIs(mmipc.stat("r").attached, True)
        rw = mmipc.open("r")
        ro.close()
        self.assertIs(mmipc.stat("r").attached, True)
        rw.close()
        self.assertIs(mmipc.stat("r").attached, False)
        # from_fd of another handle's descriptor keeps it when that handle goes.
        first = mmipc.open("r")
        second = mmipc.from_fd(first.fd)
        first.close()
        self.assertIs(mmipc.stat("r").attached, True)
        second.close()
        self.assertIs(mmipc.stat("r").attached, False)

    def test_name_forms(self):
        """bytes and paths (a name with '/' is a path, relative to the working directory) as for
        every other call; name is reported as given."""
        self.released("named", 10)
        for name in (b"named", self.path("named"), pathlib.Path(self.path("named"))):
            with self.subTest(name=name):
                info = mmipc.stat(name)
                self.assertEqual(info.name, name)
                self.assertEqual(info.size, 10)

    def test_region_info_is_frozen(self):
        self.released("f")
        info = mmipc.stat("f")
        self.assertTrue(dataclasses.is_dataclass(info))
        self.assertEqual(
            [f.name for f in dataclasses.fields(info)],
            ["name", "size", "file_size", "mode", "uid", "creator_pid", "created", "ring", "attached"],
        )
        with self.assertRaises(dataclasses.FrozenInstanceError):
            info.size = 1
        with self.assertRaises(dataclasses.FrozenInstanceError):
            info.attached = True
        self.assertEqual(info.size, 100)
        self.assertEqual(hash(info), hash(mmipc.stat("f")))  # frozen: hashable, equal by value

    def test_errors(self):
        with self.assertRaises(FileNotFoundError) as cm:
            mmipc.stat("missing")
        self.assertMmipcError(cm, errno.ENOENT, "missing")

        with open(self.path("plain"), "wb") as f:
            f.write(b"not a region" * 1000)
        with self.assertRaises(OSError) as cm:
            mmipc.stat("plain")
        self.assertMmipcError(cm, errno.EPROTO, "plain")
        open(self.path("empty"), "wb").close()
        with self.assertRaises(OSError) as cm:
            mmipc.stat("empty")
        self.assertMmipcError(cm, errno.EPROTO, "empty")

        self.released("target")
        os.symlink("target", self.path("link"))
        with self.assertRaises(OSError) as cm:
            mmipc.stat("link")
        self.assertMmipcError(cm, errno.ELOOP, "link")

        for bad in (".hidden", "", "bad name", "x" * 201):
            with self.subTest(name=bad):
                with self.assertRaises(OSError) as cm:
                    mmipc.stat(bad)
                self.assertEqual(cm.exception.errno, errno.EINVAL, str(cm.exception))
                self.assertIn("mmipc_stat", cm.exception.strerror)

    def test_bad_name_types_as_elsewhere(self):
        """A name that is not str, bytes or os.PathLike fails before C, as it does for open and
        unlink: TypeError; a NUL inside is ValueError."""
        cases = ((None, TypeError), (123, TypeError), (4.5, TypeError), ("a\0b", ValueError), (b"a\0b", ValueError))
        for bad, exc in cases:
            with self.subTest(name=bad):
                with self.assertRaises(exc):
                    mmipc.stat(bad)
                with self.assertRaises(exc):  # the same as the rest of the package
                    mmipc.open(bad)
                with self.assertRaises(exc):
                    mmipc.unlink(bad)


class GCTest(AdminTest):
    def test_counts(self):
        held = mmipc.create("held", 100)
        self.addCleanup(held.close)
        self.released("gone1")
        self.released("gone2", 3 * PAGE + 1)
        self.assertEqual(mmipc.gc(), 2)
        self.assertEqual(os.listdir(self.dir), ["held"])
        self.assertEqual(mmipc.gc(), 0)  # only the held one is left
        with mmipc.open("held") as again:  # the kept region still works
            self.assertEqual(again.size, 100)
        held.close()
        self.assertEqual(mmipc.gc(), 1)
        self.assertEqual(os.listdir(self.dir), [])
        self.assertEqual(mmipc.gc(), 0)

    def test_keeps_every_kind_of_attachment(self):
        self.released("ro")
        ro = mmipc.open("ro", readonly=True)
        self.addCleanup(ro.close)
        q = mmipc.create_ring("ring", 1024)
        self.addCleanup(q.close)
        first = mmipc.create("viafd", 10)
        via = mmipc.from_fd(first.fd)
        self.addCleanup(via.close)
        first.close()
        self.released("gone")
        self.assertEqual(mmipc.gc(), 1)
        self.assertEqual(sorted(os.listdir(self.dir)), ["ring", "ro", "viafd"])

    def test_never_removes_a_non_region(self):
        with open(self.path("plain"), "wb") as f:
            f.write(b"z" * 8192)
        open(self.path("empty"), "wb").close()
        self.released("truncated", 3 * PAGE)
        os.truncate(self.path("truncated"), PAGE + 100)  # no longer a valid region
        self.released("tmp")
        os.rename(self.path("tmp"), self.path(".hidden"))  # a region under an invalid name
        os.mkdir(self.path("adir"))
        self.released(self.path("adir/inner"))  # a region inside a directory (gc does not descend)
        os.symlink("adir/inner", self.path("link"))  # a symlink to an unattached region
        alive_tmp = f".mmipc-{os.getpid()}-0123456789abcdef.tmp"  # a live creator's temporary file
        with open(self.path(alive_tmp), "wb") as f:
            f.write(bytes(PAGE))
        everything = sorted(os.listdir(self.dir))

        self.assertEqual(mmipc.gc(), 0)
        self.assertEqual(sorted(os.listdir(self.dir)), everything)
        self.assertTrue(os.path.islink(self.path("link")))
        self.assertEqual(os.path.getsize(self.path("plain")), 8192)
        self.assertTrue(os.path.exists(self.path("adir/inner")))
        # The control: a released region beside them goes, and only it.
        self.released("victim")
        self.assertEqual(mmipc.gc(), 1)
        self.assertEqual(sorted(os.listdir(self.dir)), everything)

    def test_dead_creators_temporary_file(self):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        self.assertEqual(support.wait_pid(pid), 0)  # reaped: pid is a dead process's
        name = f".mmipc-{pid}-0123456789abcdef.tmp"
        with open(self.path(name), "wb") as f:
            f.write(bytes(PAGE))
        self.assertEqual(mmipc.gc(), 1)
        self.assertEqual(os.listdir(self.dir), [])

    def test_missing_directory(self):
        os.environ["MMIPC_DIR"] = self.path("no-such-dir")  # use_region_dir restores it
        with self.assertRaises(FileNotFoundError) as cm:
            mmipc.gc()
        self.assertIn("mmipc_gc", cm.exception.strerror)

    def test_forked_child_keeps_it_until_killed(self):
        r = mmipc.create("inherit", 100)
        sys.stdout.flush()
        sys.stderr.flush()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with the Go runtime's threads
            pid = os.fork()
        if pid == 0:  # holds the inherited descriptor, touches nothing, until killed
            try:
                signal.alarm(60)
                while True:
                    time.sleep(1)
            finally:
                os._exit(3)
        try:
            r.close()
            self.assertIs(mmipc.stat("inherit").attached, True)
            self.assertEqual(mmipc.gc(), 0)
        finally:
            os.kill(pid, signal.SIGKILL)
            self.assertEqual(support.wait_pid(pid), -signal.SIGKILL)
        self.assertIs(mmipc.stat("inherit").attached, False)
        self.assertEqual(mmipc.gc(), 1)
        self.assertEqual(os.listdir(self.dir), [])

    def test_forked_child_gets_enotsup(self):
        self.released("kept")

        def child():
            for call in (mmipc.gc, lambda: mmipc.stat("kept")):
                start = time.monotonic()
                try:
                    call()
                    return 1  # no error
                except OSError as e:
                    if e.errno != errno.ENOTSUP:
                        return 2
                    if time.monotonic() - start > 0.5:
                        return 3  # not at once
            return 0

        self.assertEqual(support.fork_run(child), 0)
        self.assertTrue(os.path.exists(self.path("kept")))  # the child removed nothing
        self.assertEqual(mmipc.gc(), 1)  # the parent still can


if __name__ == "__main__":
    unittest.main()
