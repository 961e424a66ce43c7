"""Unit tests of the mmipc package's module functions and Region: what each returns, the errors
(OSError with the C library's errno and mmipc_last_error() message), and the lifetime rules
(close() keeps the memory mapped while views of buf are alive, and detaches once they are gone).

Every test gets its own MMIPC_DIR under /dev/shm (see _support.use_region_dir)."""
import errno
import fcntl
import gc
import json
import os
import pathlib
import re
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import textwrap
import unittest

import mmipc

if __package__:
    from . import _support as support
else:  # discovered with -s python/tests and no -t: the modules are top-level
    import _support as support

PAGE = os.sysconf("SC_PAGE_SIZE")


class RegionTest(unittest.TestCase):
    """Base: a fresh region directory per test."""

    def setUp(self):
        self.dir = support.use_region_dir(self)

    def path(self, name):
        return os.path.join(self.dir, name)

    def assertMmipcError(self, cm, want_errno, call, name=None):
        """The OSError in cm has errno want_errno and the library's message, which names the C
        call and, when given, the name."""
        e = cm.exception
        self.assertEqual(e.errno, want_errno, str(e))
        self.assertIn(call, e.strerror)
        if name is not None:
            self.assertIn(name, e.strerror)
        self.assertEqual(str(e), f"[Errno {want_errno}] {e.strerror}")


class CreateOpenTest(RegionTest):
    def test_create(self):
        with mmipc.create("fresh", 5000) as r:
            self.assertIsInstance(r, mmipc.Region)
            self.assertEqual(r.size, 5000)  # exactly, not a page multiple
            self.assertEqual(r.name, "fresh")
            self.assertFalse(r.readonly)
            self.assertFalse(r.closed)
            buf = r.buf
            self.assertIsInstance(buf, memoryview)
            self.assertEqual(buf.format, "B")
            self.assertEqual(buf.itemsize, 1)
            self.assertEqual(len(buf), 5000)
            self.assertEqual(buf.nbytes, 5000)
            self.assertTrue(buf.contiguous)
            self.assertFalse(buf.readonly)
            self.assertEqual(bytes(buf), bytes(5000))  # a new region reads as zeros
            buf[-1] = 255  # the last byte is writable
            self.assertEqual(r.buf[-1], 255)
            st = os.stat(self.path("fresh"))
            self.assertTrue(stat.S_ISREG(st.st_mode))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)  # the default mode
            self.assertGreaterEqual(st.st_size, PAGE + 5000)  # a header page, then the data

    def test_create_mode_is_exact(self):
        old = os.umask(0o077)  # the mode is applied with fchmod: the umask does not filter it
        try:
            mmipc.create("shared", 64, 0o644).close()
            mmipc.create("zero", 64, 0).close()  # 0 means 0600
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(os.stat(self.path("shared")).st_mode), 0o644)
        self.assertEqual(stat.S_IMODE(os.stat(self.path("zero")).st_mode), 0o600)

    def test_open_shares_bytes(self):
        with mmipc.create("pair", 3 * PAGE + 1) as a, mmipc.open("pair") as b:
            self.assertEqual(b.size, 3 * PAGE + 1)  # the size comes from the region
            self.assertEqual(b.name, "pair")
            self.assertFalse(b.readonly)
            a.buf[:5] = b"hello"
            self.assertEqual(bytes(b.buf[:5]), b"hello")
            b.buf[-1] = 42
            self.assertEqual(a.buf[-1], 42)
            struct.pack_into("@I", b.buf, 8, 0xDEADBEEF)
            self.assertEqual(struct.unpack_from("@I", a.buf, 8)[0], 0xDEADBEEF)

    def test_open_readonly(self):
        with mmipc.create("ro", 100) as w, mmipc.open("ro", readonly=True) as r:
            self.assertTrue(r.readonly)
            self.assertTrue(r.buf.readonly)
            self.assertEqual(r.buf.format, "B")
            self.assertEqual(len(r.buf), 100)
            w.buf[3] = 9
            self.assertEqual(r.buf[3], 9)  # sees the writer's later writes
            with self.assertRaises(TypeError):
                r.buf[0] = 1
            with self.assertRaises(TypeError):
                r.buf[:2] = b"xy"
            with self.assertRaises(TypeError):
                struct.pack_into("@I", r.buf, 0, 1)
            s = r.buf[10:20]  # slices are read-only too
            self.assertTrue(s.readonly)
            with self.assertRaises(TypeError):
                s[0] = 1
            self.assertEqual(w.buf[0], 0)

    def test_name_forms(self):
        """str and bytes names, and paths (a name with '/') as str, bytes or os.PathLike."""
        with mmipc.create(b"bytes-name", 10) as r:
            self.assertEqual(r.name, b"bytes-name")
        self.assertTrue(os.path.exists(self.path("bytes-name")))
        with mmipc.open("bytes-name") as r:
            self.assertEqual(r.size, 10)
        disk = tempfile.mkdtemp(prefix="mmipc-pytest-disk-")
        self.addCleanup(shutil.rmtree, disk, True)
        p = pathlib.Path(disk) / "region"
        with mmipc.create(p, 10) as r:
            self.assertEqual(r.name, p)
            r.buf[0] = 1
        with mmipc.open(str(p)) as r:
            self.assertEqual(r.buf[0], 1)
        mmipc.unlink(os.fsencode(p))
        self.assertFalse(p.exists())
        self.assertEqual(os.listdir(self.dir), ["bytes-name"])  # nothing went to MMIPC_DIR

    def test_mmipc_dir_is_read_at_each_call(self):
        mmipc.create("here", 10).close()
        other = support.use_region_dir(self)
        with self.assertRaises(FileNotFoundError):
            mmipc.open("here")
        mmipc.create("here", 20).close()
        self.assertTrue(os.path.exists(os.path.join(other, "here")))
        self.assertTrue(os.path.exists(self.path("here")))

    def test_anon(self):
        with mmipc.anon(10000) as a, mmipc.anon(10000) as b:
            self.assertEqual(a.size, 10000)
            self.assertIsNone(a.name)
            self.assertFalse(a.readonly)
            self.assertEqual(len(a.buf), 10000)
            self.assertEqual(bytes(a.buf), bytes(10000))
            a.buf[0] = 1
            self.assertEqual(b.buf[0], 0)  # two anonymous regions are distinct
            self.assertIn("memfd:", os.readlink(f"/proc/self/fd/{a.fd}"))
        self.assertEqual(os.listdir(self.dir), [])

    def test_map_file_writable(self):
        f = self.path("plain.bin")
        data = bytes(range(256)) * 20 + b"tail"
        with open(f, "wb") as fh:
            fh.write(data)
        with mmipc.map_file(f) as r:
            self.assertEqual(r.size, len(data))  # raw: the whole file, no header
            self.assertEqual(r.name, f)
            self.assertFalse(r.readonly)
            self.assertEqual(bytes(r.buf), data)
            r.buf[:4] = b"HEAD"
            r.sync()
            with open(f, "rb") as fh:
                self.assertEqual(fh.read(4), b"HEAD")  # writes reach the file
            with open(f, "r+b") as fh:
                fh.seek(10)
                fh.write(b"Z")
            self.assertEqual(r.buf[10], ord("Z"))  # and the file's writes reach the mapping
        self.assertEqual(os.path.getsize(f), len(data))  # never resized

    def test_map_file_readonly(self):
        f = self.path("plain.bin")
        with open(f, "wb") as fh:
            fh.write(b"read me")
        os.chmod(f, 0o444)
        with mmipc.map_file(f, writable=False) as r:
            self.assertTrue(r.readonly)
            self.assertTrue(r.buf.readonly)
            self.assertEqual(bytes(r.buf), b"read me")
            with self.assertRaises(TypeError):
                r.buf[0] = 0

    def test_from_fd_named(self):
        with mmipc.create("byfd", 3000) as r:
            r.buf[:3] = b"abc"
            fd = os.open(self.path("byfd"), os.O_RDWR)
            try:
                s = mmipc.from_fd(fd)
            finally:
                os.close(fd)  # fd stays the caller's: the region keeps its own duplicate
            with s:
                self.assertEqual(s.size, 3000)  # validated as open validates, data after the header
                self.assertIsNone(s.name)
                self.assertNotEqual(s.fd, fd)
                self.assertEqual(bytes(s.buf[:3]), b"abc")
                s.buf[3] = ord("d")
                self.assertEqual(bytes(r.buf[:4]), b"abcd")

    def test_from_fd_readonly(self):
        with mmipc.create("byfd", 100) as r:
            fd = os.open(self.path("byfd"), os.O_RDONLY)
            self.addCleanup(os.close, fd)
            with self.assertRaises(PermissionError) as cm:  # a read-write mapping needs O_RDWR
                mmipc.from_fd(fd)
            self.assertMmipcError(cm, errno.EACCES, "mmipc_attach_fd")
            with mmipc.from_fd(fd, readonly=True) as s:
                self.assertTrue(s.readonly)
                self.assertTrue(s.buf.readonly)
                r.buf[0] = 5
                self.assertEqual(s.buf[0], 5)
                with self.assertRaises(TypeError):
                    s.buf[0] = 6

    def test_from_fd_anon(self):
        a = mmipc.anon(PAGE + 5)
        b = mmipc.from_fd(a.fd)
        self.assertEqual(b.size, PAGE + 5)  # a memfd is mapped whole, raw
        a.buf[PAGE] = 7
        self.assertEqual(b.buf[PAGE], 7)
        a.close()
        b.buf[0] = 1  # the other attachment is unaffected by close
        self.assertEqual(b.buf[PAGE], 7)
        b.close()

    def test_unlink(self):
        r = mmipc.create("gone", 64)
        mmipc.unlink("gone")
        self.assertFalse(os.path.exists(self.path("gone")))
        with self.assertRaises(FileNotFoundError):
            mmipc.open("gone")
        r.buf[0] = 1  # attached peers keep working
        self.assertEqual(r.buf[0], 1)
        with mmipc.create("gone", 32) as again:  # the name can be created anew at once
            self.assertEqual(again.buf[0], 0)
        r.close()

    def test_copy_file(self):
        src, dst = self.path("src.bin"), self.path("dst.bin")
        data = os.urandom(3 * PAGE + 7)
        with open(src, "wb") as f:
            f.write(data)
        os.chmod(src, 0o640)
        with open(dst, "wb") as f:
            f.write(b"old content, replaced")
        mmipc.copy_file(src, dst)
        with open(dst, "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(stat.S_IMODE(os.stat(dst).st_mode), 0o640)  # the source's mode
        empty = self.path("empty")
        open(empty, "wb").close()
        mmipc.copy_file(empty, pathlib.Path(self.dir) / "empty-copy")
        self.assertEqual(os.path.getsize(self.path("empty-copy")), 0)

    def test_version(self):
        v = mmipc.version()
        self.assertRegex(v, r"^\d+\.\d+\.\d+$")
        with open(os.path.join(support.ROOT, "mmipc.h")) as f:
            header = f.read()
        hv = re.search(r'#define MMIPC_VERSION "([^"]+)"', header).group(1)
        # The library may be newer than the header, never older.
        self.assertGreaterEqual(tuple(map(int, v.split("."))), tuple(map(int, hv.split("."))))
        proto = int(re.search(r"#define MMIPC_PROTOCOL_VERSION (\d+)", header).group(1))
        self.assertEqual(mmipc.PROTOCOL_VERSION, proto)


class RegionAttributesTest(RegionTest):
    def test_fd(self):
        with mmipc.create("withfd", 100) as r:
            fd = r.fd
            self.assertIsInstance(fd, int)
            self.assertEqual(os.fstat(fd).st_ino, os.stat(self.path("withfd")).st_ino)
            self.assertFalse(os.get_inheritable(fd))  # close-on-exec
            self.assertTrue(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
            self.assertEqual(r.fd, fd)  # the same descriptor each time
        with mmipc.anon(100) as a:
            self.assertFalse(os.get_inheritable(a.fd))

    def test_sync(self):
        disk = tempfile.mkdtemp(prefix="mmipc-pytest-disk-")
        path = os.path.join(disk, "durable")
        try:
            with mmipc.create(path, 100) as r:
                r.buf[:4] = b"sync"
                self.assertIsNone(r.sync())
                with open(path, "rb") as f:  # the data follows the header page
                    f.seek(PAGE)
                    self.assertEqual(f.read(4), b"sync")
            with mmipc.anon(10) as a:
                a.sync()  # nothing to write, still fine
        finally:
            os.unlink(path)
            os.rmdir(disk)

    def test_close_is_idempotent_and_with_closes(self):
        r = mmipc.create("c", 10)
        self.assertFalse(r.closed)
        r.close()
        self.assertTrue(r.closed)
        r.close()  # again: nothing happens
        self.assertTrue(r.closed)
        with mmipc.open("c") as s:
            self.assertFalse(s.closed)
        self.assertTrue(s.closed)
        try:
            with mmipc.open("c") as t:
                raise KeyError("boom")
        except KeyError:
            pass
        self.assertTrue(t.closed)  # closed on the way out of an exception too
        self.assertEqual(r.size, 10)  # size and name stay readable
        self.assertEqual(r.name, "c")

    def test_after_close(self):
        r = mmipc.create("c", 10)
        whole = r.buf
        r.close()
        with self.assertRaises(ValueError):
            r.buf
        with self.assertRaises(ValueError):
            r.fd
        with self.assertRaises(ValueError):
            r.sync()
        # buf itself is released by close(), as the standard SharedMemory's is; slices are not
        # (CloseWithViewsTest).
        with self.assertRaises(ValueError):
            whole[0]

    def test_repr(self):
        with mmipc.create("shown", 123) as r:
            self.assertEqual(repr(r), "<mmipc.Region 'shown' size=123>")
        self.assertEqual(repr(r), "<mmipc.Region 'shown' closed>")
        with mmipc.open("shown", readonly=True) as r:
            self.assertEqual(repr(r), "<mmipc.Region 'shown' size=123, readonly>")
        with mmipc.anon(7) as a:
            self.assertEqual(repr(a), "<mmipc.Region None size=7>")


class ErrorTest(RegionTest):
    def test_exists(self):
        mmipc.create("dup", 64).close()
        with self.assertRaises(FileExistsError) as cm:
            mmipc.create("dup", 64)
        self.assertMmipcError(cm, errno.EEXIST, "mmipc_create", '"dup"')
        self.assertIn(self.dir, cm.exception.strerror)  # the path it resolved to

    def test_not_found(self):
        with self.assertRaises(FileNotFoundError) as cm:
            mmipc.open("missing")
        self.assertMmipcError(cm, errno.ENOENT, "mmipc_open", '"missing"')
        with self.assertRaises(FileNotFoundError) as cm:
            mmipc.open("missing", readonly=True)
        self.assertMmipcError(cm, errno.ENOENT, "mmipc_open")
        with self.assertRaises(FileNotFoundError) as cm:
            mmipc.unlink("missing")
        self.assertMmipcError(cm, errno.ENOENT, "mmipc_unlink", '"missing"')
        with self.assertRaises(FileNotFoundError) as cm:
            mmipc.map_file(self.path("missing"))
        self.assertMmipcError(cm, errno.ENOENT, "mmipc_map_file")
        with self.assertRaises(FileNotFoundError) as cm:
            mmipc.copy_file(self.path("missing"), self.path("dst"))
        self.assertMmipcError(cm, errno.ENOENT, "mmipc_copy_file")

    def test_not_a_region(self):
        plain = self.path("plain")
        content = b"an ordinary file, not a region\n" * 300
        with open(plain, "wb") as f:
            f.write(content)
        for call, where in [
            (lambda: mmipc.open("plain"), "mmipc_open"),
            (lambda: mmipc.open("plain", readonly=True), "mmipc_open"),
            (lambda: mmipc.unlink("plain"), "mmipc_unlink"),
        ]:
            with self.assertRaises(OSError) as cm:
                call()
            self.assertMmipcError(cm, errno.EPROTO, where, '"plain"')
            self.assertIn("not an mmipc region", cm.exception.strerror)
        with open(plain, "rb") as f:  # unlink never deletes an ordinary file
            self.assertEqual(f.read(), content)
        with self.assertRaises(FileExistsError):
            mmipc.create("plain", 10)
        # Not a regular file at all.
        os.mkdir(self.path("adir"))
        with self.assertRaises(OSError) as cm:
            mmipc.open("adir")
        self.assertEqual(cm.exception.errno, errno.EPROTO)
        with self.assertRaises(OSError) as cm:
            mmipc.map_file(self.path("adir"))
        self.assertMmipcError(cm, errno.EPROTO, "mmipc_map_file")
        with self.assertRaises(OSError) as cm:
            mmipc.copy_file(self.path("adir"), self.path("x"))
        self.assertMmipcError(cm, errno.EPROTO, "mmipc_copy_file")

    def test_invalid_arguments(self):
        for name in ["", "bad name", ".hidden", "a" * 201, "tab\t", "caf\u00e9"]:
            with self.subTest(name=name):
                with self.assertRaises(OSError) as cm:
                    mmipc.create(name, 64)
                self.assertMmipcError(cm, errno.EINVAL, "mmipc_create")
                with self.assertRaises(OSError) as cm:
                    mmipc.open(name)
                self.assertMmipcError(cm, errno.EINVAL, "mmipc_open")
                with self.assertRaises(OSError) as cm:
                    mmipc.unlink(name)
                self.assertMmipcError(cm, errno.EINVAL, "mmipc_unlink")
        mmipc.create("a" * 200, 1).close()  # the longest name is fine
        with self.assertRaises(OSError) as cm:
            mmipc.create("zero", 0)
        self.assertMmipcError(cm, errno.EINVAL, "mmipc_create", "size 0")
        with self.assertRaises(OSError) as cm:
            mmipc.anon(0)
        self.assertMmipcError(cm, errno.EINVAL, "mmipc_anon")
        for make in (lambda: mmipc.create("neg", -1), lambda: mmipc.anon(-5)):
            with self.assertRaises(OSError) as cm:  # not wrapped around to a huge size_t
                make()
            self.assertEqual(cm.exception.errno, errno.EINVAL)
            self.assertIn("negative", str(cm.exception))
        for mode in (0o7777, 0o1000, 0o4600):
            with self.subTest(mode=oct(mode)):
                with self.assertRaises(OSError) as cm:
                    mmipc.create("mode", 64, mode)
                self.assertMmipcError(cm, errno.EINVAL, "mmipc_create", "mode")
        empty = self.path("empty")
        open(empty, "wb").close()
        with self.assertRaises(OSError) as cm:
            mmipc.map_file(empty)
        self.assertMmipcError(cm, errno.EINVAL, "mmipc_map_file", "empty")
        mmipc.create("same", 10).close()
        with self.assertRaises(OSError) as cm:
            mmipc.copy_file(self.path("same"), self.path("same"))
        self.assertMmipcError(cm, errno.EINVAL, "mmipc_copy_file")
        with self.assertRaises(IsADirectoryError):
            mmipc.copy_file(self.path("same"), self.dir)
        self.assertEqual(sorted(os.listdir(self.dir)), sorted(["a" * 200, "empty", "same"]))

    def test_symlink(self):
        mmipc.create("real", 64).close()
        os.symlink("real", self.path("link"))
        for call, where in [
            (lambda: mmipc.open("link"), "mmipc_open"),
            (lambda: mmipc.open("link", readonly=True), "mmipc_open"),
            (lambda: mmipc.unlink("link"), "mmipc_unlink"),
            (lambda: mmipc.create("link", 64), "mmipc_create"),
        ]:
            with self.assertRaises(OSError) as cm:
                call()
            self.assertMmipcError(cm, errno.ELOOP, where, '"link"')
        self.assertTrue(os.path.islink(self.path("link")))  # left in place
        self.assertTrue(os.path.exists(self.path("real")))

    def test_python_argument_errors(self):
        for call in (
            lambda: mmipc.create(None, 10),
            lambda: mmipc.open(None),
            lambda: mmipc.unlink(None),
            lambda: mmipc.map_file(None),
            lambda: mmipc.copy_file(None, "x"),
            lambda: mmipc.copy_file(self.path("x"), None),
            lambda: mmipc.create(42, 10),
            lambda: mmipc.create("n", 10.0),
            lambda: mmipc.create("n", "10"),
            lambda: mmipc.create("n", 10, "0600"),
            lambda: mmipc.anon(1.5),
            lambda: mmipc.from_fd("3"),
        ):
            with self.assertRaises(TypeError):
                call()
        for call in (
            lambda: mmipc.create("a\0b", 10),  # C would silently cut the name at the NUL
            lambda: mmipc.open("a\0b"),
            lambda: mmipc.unlink(b"a\0b"),
            lambda: mmipc.map_file("x\0y"),
            lambda: mmipc.copy_file("x", "y\0z"),
        ):
            with self.assertRaises(ValueError) as cm:
                call()
            self.assertIn("NUL", str(cm.exception))
        self.assertEqual(os.listdir(self.dir), [])

    def test_from_fd_errors(self):
        r, w = os.pipe()
        os.close(w)
        os.close(r)
        with self.assertRaises(OSError) as cm:
            mmipc.from_fd(r)  # closed
        self.assertMmipcError(cm, errno.EBADF, "mmipc_attach_fd")
        with self.assertRaises(OSError) as cm:
            mmipc.from_fd(-1)
        self.assertMmipcError(cm, errno.EBADF, "mmipc_attach_fd")
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        self.addCleanup(os.close, w)
        with self.assertRaises(OSError) as cm:
            mmipc.from_fd(r, readonly=True)
        self.assertMmipcError(cm, errno.EPROTO, "mmipc_attach_fd")
        # The access mode is checked first (mmipc.h): a pipe's read end asked for read-write.
        with self.assertRaises(PermissionError) as cm:
            mmipc.from_fd(r)
        self.assertMmipcError(cm, errno.EACCES, "mmipc_attach_fd")
        a, b = socket.socketpair()  # open read-write, so only its kind is wrong
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        with self.assertRaises(OSError) as cm:
            mmipc.from_fd(a.fileno())
        self.assertMmipcError(cm, errno.EPROTO, "mmipc_attach_fd")
        plain = self.path("plain")
        with open(plain, "wb") as f:
            f.write(b"x" * 5000)
        fd = os.open(plain, os.O_RDWR)
        self.addCleanup(os.close, fd)
        with self.assertRaises(OSError) as cm:
            mmipc.from_fd(fd)
        self.assertMmipcError(cm, errno.EPROTO, "mmipc_attach_fd")

    @unittest.skipIf(os.geteuid() == 0, "root is never refused; test_permission_denied_as_nobody covers it")
    def test_permission_denied(self):
        mmipc.create("locked", 64).close()
        os.chmod(self.path("locked"), 0)  # create's mode 0 means 0600, so chmod it
        for call in (lambda: mmipc.open("locked"), lambda: mmipc.open("locked", readonly=True)):
            with self.assertRaises(PermissionError) as cm:
                call()
            self.assertMmipcError(cm, errno.EACCES, "mmipc_open", '"locked"')

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run a child as nobody")
    def test_permission_denied_as_nobody(self):
        """As root nothing is refused, so the checks run in a child started as nobody."""
        mmipc.create("locked", 64).close()
        os.chmod(self.path("locked"), 0)
        mmipc.create("mine", 64).close()  # root's, 0600
        os.chmod(self.dir, 0o755)  # nobody may look in, not write
        script = textwrap.dedent("""
            import json, mmipc
            out = {}
            for key, call in [
                ("open", lambda: mmipc.open("locked")),
                ("open_ro", lambda: mmipc.open("locked", readonly=True)),
                ("open_0600", lambda: mmipc.open("mine", readonly=True)),
                ("create", lambda: mmipc.create("new", 64)),
                ("stat", lambda: mmipc.stat("locked")),
                ("unlink", lambda: mmipc.unlink("mine")),
            ]:
                try:
                    call()
                    out[key] = ["ok", 0, ""]
                except OSError as e:
                    out[key] = [type(e).__name__, e.errno, e.strerror]
            out["gc"] = mmipc.gc()  # may remove nothing of root's, and says so without an error
            print(json.dumps(out))
        """)
        tried = []
        for exe in dict.fromkeys([sys.executable, "/usr/bin/python3"]):
            try:
                proc = subprocess.run(
                    [exe, "-c", script], env=support.child_env(), cwd="/", user=65534, group=65534,
                    extra_groups=[], capture_output=True, text=True, timeout=support.CHILD_TIMEOUT,
                )
            except (PermissionError, FileNotFoundError) as e:
                tried.append(f"{exe}: {e}")
                continue
            if proc.returncode != 0:
                tried.append(f"{exe}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
                continue
            out = json.loads(proc.stdout)
            self.assertEqual(out.pop("gc"), 0)
            for key in ("open", "open_ro", "open_0600", "create", "stat", "unlink"):
                kind, err, msg = out[key]
                self.assertEqual((kind, err), ("PermissionError", errno.EACCES), f"{key}: {msg}")
                self.assertIn("mmipc_", msg)
            self.assertEqual(sorted(os.listdir(self.dir)), ["locked", "mine"])
            return
        self.skipTest("no Python that nobody can run with this package: " + "; ".join(tried))


class CloseWithViewsTest(RegionTest):
    def test_slice_outlives_close(self):
        r = mmipc.create("kept", 2 * PAGE)
        peer = mmipc.open("kept")
        s = r.buf[100:200]
        ro = mmipc.open("kept", readonly=True)
        rs = ro.buf[100:200]
        r.close()
        ro.close()
        self.assertTrue(r.closed)
        with self.assertRaises(ValueError):
            r.buf
        s[0] = 7  # still writable, still the shared memory
        self.assertEqual(peer.buf[100], 7)
        peer.buf[101] = 9
        self.assertEqual(s[1], 9)
        self.assertEqual(rs[1], 9)
        self.assertTrue(rs.readonly)  # a read-only view stays read-only
        with self.assertRaises(TypeError):
            rs[0] = 1
        self.assertEqual(len(s), 100)
        self.assertEqual(bytes(s[:2]), b"\x07\x09")
        del s, rs
        peer.close()

    def test_detached_when_last_view_goes(self):
        gc.collect()
        fds = support.fd_count()
        r = mmipc.create("counted", 3 * PAGE)
        st = os.stat(self.path("counted"))
        self.assertEqual(support.fd_count(), fds + 1)
        self.assertEqual(support.maps_of(st), 1)
        views = [r.buf[1:10], r.buf[PAGE:], memoryview(r.buf)[5:6]]
        nested = views[1][10:20]
        r.close()
        self.assertEqual(support.fd_count(), fds + 1)  # kept: views are alive
        self.assertEqual(support.maps_of(st), 1)
        views[0][0] = 1
        del views
        gc.collect()
        self.assertEqual(support.maps_of(st), 1)  # nested still holds it
        nested[0] = 2
        del nested
        gc.collect()
        self.assertEqual(support.fd_count(), fds)  # detached: descriptor closed, memory unmapped
        self.assertEqual(support.maps_of(st), 0)

    def test_detached_at_close_without_views(self):
        gc.collect()
        fds = support.fd_count()
        r = mmipc.create("plainclose", 100)
        st = os.stat(self.path("plainclose"))
        r.buf[0] = 1
        self.assertEqual(support.maps_of(st), 1)
        r.close()  # no view alive: detached at once, without waiting for the garbage collector
        self.assertEqual(support.fd_count(), fds)
        self.assertEqual(support.maps_of(st), 0)

    def test_cycles_leak_nothing(self):
        gc.collect()
        fds, anons = support.fd_count(), support.maps_count("memfd:mmipc")
        for i in range(2000):
            r = mmipc.create("cycle", 100)
            r.buf[0] = i & 255
            r.close()
            mmipc.unlink("cycle")
        for _ in range(500):  # and anonymous ones
            with mmipc.anon(10) as a:
                a.buf[0] = 1
        self.assertEqual(support.fd_count(), fds)
        self.assertEqual(support.maps_count(self.dir), 0)
        self.assertEqual(support.maps_count("memfd:mmipc"), anons)
        self.assertEqual(os.listdir(self.dir), [])


class NumpyTest(RegionTest):
    def setUp(self):
        super().setUp()
        try:
            import numpy
        except ImportError:
            self.skipTest("numpy is not installed")
        self.np = numpy

    def test_frombuffer_sees_writes_and_outlives_close(self):
        np = self.np
        gc.collect()
        fds = support.fd_count()
        r = mmipc.create("arr", 4 * 1000)
        st = os.stat(self.path("arr"))
        peer = mmipc.open("arr")
        a = np.frombuffer(r.buf, dtype=np.uint32)
        self.assertEqual(a.shape, (1000,))
        struct.pack_into("@I", peer.buf, 4 * 7, 123456789)
        self.assertEqual(int(a[7]), 123456789)  # numpy sees the peer's writes
        a[8] = 0xCAFEBABE
        self.assertEqual(struct.unpack_from("@I", peer.buf, 4 * 8)[0], 0xCAFEBABE)
        r.close()  # the array exports buf: close must not unmap under it
        a[9] = 99
        self.assertEqual(struct.unpack_from("@I", peer.buf, 4 * 9)[0], 99)
        self.assertEqual(int(a.sum()), 123456789 + 0xCAFEBABE + 99)
        peer.close()
        self.assertEqual(support.maps_of(st), 1)  # the array's
        del a
        gc.collect()
        self.assertEqual(support.maps_of(st), 0)
        self.assertEqual(support.fd_count(), fds)

    def test_readonly_array(self):
        np = self.np
        with mmipc.create("ro", 16) as w, mmipc.open("ro", readonly=True) as r:
            a = np.frombuffer(r.buf, dtype=np.uint8)
            self.assertFalse(a.flags.writeable)
            w.buf[0] = 3
            self.assertEqual(int(a[0]), 3)
            with self.assertRaises(ValueError):
                a[0] = 1
            del a


class CBoundaryTest(RegionTest):
    """Where Python meets C: integers ctypes would silently cut to the C type's width, and views
    that must stay valid while the interpreter shuts down (both were bugs once)."""

    def test_size_beyond_size_t_is_refused(self):
        # ctypes would mask a Python int to the width of c_size_t: 2**64 + 10 became a 10-byte region.
        for make in (lambda: mmipc.create("huge", 2**64 + 10), lambda: mmipc.anon(2**64 + 5)):
            with self.assertRaises((OSError, OverflowError)) as cm:
                make().close()
            if isinstance(cm.exception, OSError):
                self.assertEqual(cm.exception.errno, errno.EINVAL)

    def test_mode_beyond_unsigned_int_is_refused(self):
        # ctypes would mask mode to c_uint: 2**32 + 0o640 became 0o640 instead of EINVAL.
        with self.assertRaises((OSError, OverflowError)) as cm:
            mmipc.create("m", 64, 2**32 + 0o640).close()
        if isinstance(cm.exception, OSError):
            self.assertEqual(cm.exception.errno, errno.EINVAL)

    def test_fd_beyond_int_is_refused(self):
        # ctypes would mask fd to c_int: 2**32 + fd attached fd.
        with mmipc.anon(10) as a:
            with self.assertRaises((OSError, OverflowError)) as cm:
                mmipc.from_fd(2**32 + a.fd).close()
            if isinstance(cm.exception, OSError):
                self.assertEqual(cm.exception.errno, errno.EBADF)

    def test_views_valid_during_interpreter_shutdown(self):
        # A finalizer that detached at exit (weakref.finalize's default) unmapped the region
        # while views were still alive; a __del__ (or a daemon thread) touching one during
        # shutdown died of SIGSEGV.
        script = textwrap.dedent("""
            import mmipc
            r = mmipc.anon(4096)
            class Reader:
                def __init__(self, view):
                    self.view = view
                def __del__(self):
                    print("at teardown:", self.view[-1], flush=True)
            keep = Reader(r.buf[:])
        """)
        code, out, err = support.run([sys.executable, "-c", script], env=support.child_env())
        self.assertEqual(code, 0, err)
        self.assertIn("at teardown: 0", out)


if __name__ == "__main__":
    unittest.main()
