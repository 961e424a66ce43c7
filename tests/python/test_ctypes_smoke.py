"""Smoke test of libmmipc.so from Python through ctypes, standard library only.

This is the few-lines ctypes recipe of the README, checked: declare the signatures, create and open
regions, see the same bytes, get errno and mmipc_last_error() on failure, and the fork rule.
"""
import ctypes
import errno
import os
import struct
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB_PATH = os.environ.get("MMIPC_LIB") or os.path.join(ROOT, "build", "libmmipc.so")


def load():
    lib = ctypes.CDLL(LIB_PATH, use_errno=True)
    region = ctypes.c_void_p
    for name, restype, argtypes in [
        ("mmipc_create", region, [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint]),
        ("mmipc_open", region, [ctypes.c_char_p, ctypes.c_int]),
        ("mmipc_anon", region, [ctypes.c_size_t]),
        ("mmipc_map_file", region, [ctypes.c_char_p, ctypes.c_int]),
        ("mmipc_detach", ctypes.c_int, [region]),
        ("mmipc_unlink", ctypes.c_int, [ctypes.c_char_p]),
        ("mmipc_data", ctypes.c_void_p, [region]),
        ("mmipc_size", ctypes.c_size_t, [region]),
        ("mmipc_sync", ctypes.c_int, [region]),
        ("mmipc_copy_file", ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p]),
        ("mmipc_last_error", ctypes.c_char_p, []),
        ("mmipc_version", ctypes.c_char_p, []),
    ]:
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


lib = load()


def view(handle):
    """A writable memoryview on a region's bytes (valid until mmipc_detach)."""
    size = lib.mmipc_size(handle)
    return memoryview((ctypes.c_char * size).from_address(lib.mmipc_data(handle))).cast("B")


class SmokeTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mmipc-py-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        os.environ["MMIPC_DIR"] = self.dir  # ctypes programs share the C environment

    def tearDown(self):
        for f in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, f))
        os.rmdir(self.dir)

    def test_version(self):
        self.assertRegex(lib.mmipc_version().decode(), r"^\d+\.\d+\.\d+$")

    def test_create_open_share_bytes(self):
        a = lib.mmipc_create(b"py-region", 5000, 0)
        self.assertTrue(a, lib.mmipc_last_error())
        b = lib.mmipc_open(b"py-region", 0)
        self.assertTrue(b, lib.mmipc_last_error())
        try:
            self.assertEqual(lib.mmipc_size(a), 5000)
            self.assertEqual(lib.mmipc_size(b), 5000)
            va, vb = view(a), view(b)
            self.assertEqual(bytes(vb), bytes(5000))  # new regions read as zeros
            va[:5] = b"hello"
            va[-1] = 7
            self.assertEqual(bytes(vb[:5]), b"hello")
            self.assertEqual(vb[-1], 7)
            self.assertEqual(lib.mmipc_data(a) % os.sysconf("SC_PAGE_SIZE"), 0)
            self.assertEqual(os.stat(os.path.join(self.dir, "py-region")).st_mode & 0o777, 0o600)
            del va, vb
        finally:
            self.assertEqual(lib.mmipc_detach(a), 0)
            self.assertEqual(lib.mmipc_detach(b), 0)
        self.assertEqual(lib.mmipc_unlink(b"py-region"), 0)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "py-region")))

    def test_errors_set_errno_and_message(self):
        a = lib.mmipc_create(b"dup", 64, 0o640)
        self.assertTrue(a)
        try:
            cases = [
                (lambda: lib.mmipc_create(b"dup", 64, 0), errno.EEXIST, "mmipc_create"),
                (lambda: lib.mmipc_open(b"missing", 0), errno.ENOENT, "mmipc_open"),
                (lambda: lib.mmipc_create(b"bad name", 64, 0), errno.EINVAL, "mmipc_create"),
                (lambda: lib.mmipc_create(b"zero", 0, 0), errno.EINVAL, "mmipc_create"),
                (lambda: lib.mmipc_open(b"dup", 2), errno.EINVAL, "mmipc_open"),
                (lambda: lib.mmipc_create(None, 64, 0), errno.EINVAL, "mmipc_create"),
            ]
            for call, want, where in cases:
                ctypes.set_errno(0)
                self.assertFalse(call())
                self.assertEqual(ctypes.get_errno(), want, lib.mmipc_last_error())
                self.assertIn(where, lib.mmipc_last_error().decode())
            with open(os.path.join(self.dir, "plain"), "wb") as f:
                f.write(b"not a region" * 1000)
            self.assertEqual(lib.mmipc_unlink(b"plain"), -1)
            self.assertEqual(ctypes.get_errno(), errno.EPROTO)
            self.assertTrue(os.path.exists(os.path.join(self.dir, "plain")))
        finally:
            lib.mmipc_detach(a)
            lib.mmipc_unlink(b"dup")

    def test_fork_rule(self):
        a = lib.mmipc_anon(4096)
        self.assertTrue(a)
        pid = os.fork()
        if pid == 0:  # the child: memory and detach work, anything needing Go is ENOTSUP
            code = 0
            try:
                ctypes.set_errno(0)
                if lib.mmipc_create(b"from-child", 64, 0) or ctypes.get_errno() != errno.ENOTSUP:
                    code = 3
                view(a)[:5] = b"child"
                if lib.mmipc_detach(a) != 0:
                    code = 4
            finally:
                os._exit(code)
        deadline = time.monotonic() + 30
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                self.fail("the forked child hung")
            time.sleep(0.01)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertEqual(bytes(view(a)[:5]), b"child")
        self.assertFalse(os.path.exists(os.path.join(self.dir, "from-child")))
        lib.mmipc_detach(a)

    def test_reads_what_a_c_program_wrote(self):
        """The C example named_writer creates a region; Python attaches it and acknowledges."""
        writer = os.path.join(ROOT, "build", "examples", "named_writer")
        if not os.path.exists(writer):
            self.skipTest("build the examples first (./build.sh)")
        proc = subprocess.Popen([writer, "c2py", "hello python"], stdout=subprocess.PIPE, text=True)
        try:
            handle = None
            deadline = time.monotonic() + 20
            while not handle and time.monotonic() < deadline:
                handle = lib.mmipc_open(b"c2py", 0)
                if not handle:
                    self.assertEqual(ctypes.get_errno(), errno.ENOENT, lib.mmipc_last_error())
                    time.sleep(0.005)
            self.assertTrue(handle, "the C writer never created its region")
            v = view(handle)
            while struct.unpack_from("=I", v, 0)[0] != 1 and time.monotonic() < deadline:
                time.sleep(0.001)  # the ready flag (c_examples/greeting.h)
            (length,) = struct.unpack_from("=I", v, 8)
            self.assertLessEqual(length, len(v) - 12)
            self.assertEqual(bytes(v[12:12 + length]), b"hello python")
            struct.pack_into("=I", v, 4, 1)  # ack
            del v
            lib.mmipc_detach(handle)
            out, _ = proc.communicate(timeout=20)
            self.assertEqual(proc.returncode, 0, out)
            self.assertIn("reader acknowledged", out)
        finally:
            if proc.poll() is None:
                proc.kill()


if __name__ == "__main__":
    unittest.main()
