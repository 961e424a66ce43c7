"""The Python examples (python_examples/) against their C and Go twins, in every pairing, as real
separate processes: greeting (named_writer / named_reader, c_examples/greeting.h) and handoff
(anon_parent / fd_child, c_examples/handoff.h).

The C examples are compiled into a temporary directory against the library this process loaded;
the Go examples are built there with CGO_ENABLED=0 (their cells are skipped when `go` is not on
PATH). Every program runs with a deadline and is killed, with its process group, if it overstays."""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import mmipc

if __package__:
    from . import _support as support
else:  # discovered with -s python/tests and no -t: the modules are top-level
    import _support as support

ROOT = support.ROOT
PY_EXAMPLES = os.path.join(ROOT, "python_examples")
PROGRAMS = ["named_writer", "named_reader", "anon_parent", "fd_child"]
BUILD_TIMEOUT = 300

_bin_dir = None
_built = {}  # "C" / "Go" -> {program: path} or an Exception (skip or failure) to re-raise


def setUpModule():
    global _bin_dir
    _bin_dir = tempfile.mkdtemp(prefix="mmipc-pytest-bin-")


def tearDownModule():
    shutil.rmtree(_bin_dir, ignore_errors=True)


def _build_c():
    lib = support.lib_path()
    if lib is None or os.path.basename(lib) != "libmmipc.so":
        raise unittest.SkipTest(f"the C examples need a libmmipc.so path to link with; loaded {mmipc._lib.path!r}")
    cc = os.environ.get("CC") or shutil.which("cc")
    if not cc:
        raise unittest.SkipTest("no C compiler (cc) on PATH")
    libdir = os.path.dirname(lib)
    out = {}
    for prog in PROGRAMS:
        exe = os.path.join(_bin_dir, "c_" + prog)
        cmd = [cc, "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I" + ROOT, "-o", exe,
               os.path.join(ROOT, "c_examples", prog + ".c"), "-L" + libdir, "-lmmipc", "-Wl,-rpath," + libdir]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
        out[prog] = [exe]
    return out


def _build_go():
    go = shutil.which("go")
    if not go:
        raise unittest.SkipTest("`go` is not on PATH: the Go examples cannot be built")
    godir = os.path.join(_bin_dir, "go") + os.sep
    pkgs = ["./go_examples/" + p for p in PROGRAMS]
    env = dict(os.environ, CGO_ENABLED="0")  # a Go peer needs no cgo
    proc = subprocess.run([go, "build", "-o", godir, *pkgs], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT)
    if proc.returncode != 0:
        raise AssertionError(f"CGO_ENABLED=0 go build -o {godir} {' '.join(pkgs)} failed:\n{proc.stdout}{proc.stderr}")
    return {p: [os.path.join(godir, p)] for p in PROGRAMS}


def programs(lang):
    """{program: command list} for "Python", "C" or "Go"; builds once per run, and raises
    SkipTest (Go or C unavailable) or AssertionError (build failed) in every test that needs it."""
    if lang == "Python":
        return {p: [sys.executable, os.path.join(PY_EXAMPLES, p + ".py")] for p in PROGRAMS}
    if lang not in _built:
        try:
            _built[lang] = _build_c() if lang == "C" else _build_go()
        except (unittest.SkipTest, AssertionError, OSError, subprocess.TimeoutExpired) as e:
            _built[lang] = e
    if isinstance(_built[lang], BaseException):
        raise _built[lang]
    return _built[lang]


def handoff_transcript(reply):
    return (
        "parent sent: nihao child!!\n"
        "child got: nihao child!!\n"
        f"child replied: {reply}\n"
        f"parent got: {reply}\n"
    )


class ExamplesTest(unittest.TestCase):
    def setUp(self):
        self.dir = support.use_region_dir(self)
        self.env = support.child_env(MMIPC_DIR=self.dir)

    # The two exchanges, any language on either side.

    def greeting(self, writer_lang, reader_lang):
        writer = programs(writer_lang)["named_writer"]
        reader = programs(reader_lang)["named_reader"]
        name = f"greet-{writer_lang}-to-{reader_lang}"
        message = f"h\u00e9llo from {writer_lang} to {reader_lang} \u2713"
        # The reader first: it must wait for the region to appear.
        r = support.start([*reader, name], env=self.env)
        try:
            w = support.start([*writer, name, message], env=self.env)
            wcode, wout, werr = support.finish(w)
        finally:
            rcode, rout, rerr = support.finish(r)
        self.assertEqual((wcode, werr), (0, ""), f"writer {writer_lang}")
        self.assertEqual((rcode, rerr), (0, ""), f"reader {reader_lang}")
        self.assertEqual(wout, f"writer sent: {message}\nwriter: reader acknowledged\n")
        self.assertEqual(rout, f"reader got: {message}\n")
        self.assertEqual(os.listdir(self.dir), [])  # the writer removed the name

    def handoff(self, parent_lang, child_lang):
        parent = programs(parent_lang)["anon_parent"]
        child = programs(child_lang)["fd_child"]
        reply = f"nihao from {child_lang} to {parent_lang} \u2713"
        code, out, err = support.run([*parent, *child, reply], env=self.env)
        self.assertEqual((code, err), (0, ""), out)
        self.assertEqual(out, handoff_transcript(reply))
        self.assertEqual(os.listdir(self.dir), [])  # nothing named anywhere

    # Greeting: Python creates and C reads, C creates and Python reads, and so on.

    def test_greeting_python_to_c(self):
        self.greeting("Python", "C")

    def test_greeting_c_to_python(self):
        self.greeting("C", "Python")

    def test_greeting_python_to_go(self):
        self.greeting("Python", "Go")

    def test_greeting_go_to_python(self):
        self.greeting("Go", "Python")

    def test_greeting_python_to_python(self):
        self.greeting("Python", "Python")

    def test_greeting_writer_first(self):
        """The other order: the writer is up before the reader looks."""
        writer = programs("Python")["named_writer"]
        w = support.start([*writer, "early", "first"], env=self.env)
        try:
            deadline = time.monotonic() + support.CHILD_TIMEOUT
            while not os.path.exists(os.path.join(self.dir, "early")) and w.poll() is None:
                self.assertLess(time.monotonic(), deadline, "the writer never created its region")
                time.sleep(0.005)
            code, out, err = support.run([*programs("C")["named_reader"], "early"], env=self.env)
        finally:
            wcode, wout, werr = support.finish(w)
        self.assertEqual((code, err, out), (0, "", "reader got: first\n"))
        self.assertEqual((wcode, werr), (0, ""))
        self.assertEqual(wout, "writer sent: first\nwriter: reader acknowledged\n")

    def test_greeting_defaults(self):
        """No arguments: the default name and message, as the C programs have them."""
        r = support.start(programs("C")["named_reader"], env=self.env)
        try:
            wcode, wout, werr = support.run(programs("Python")["named_writer"], env=self.env)
        finally:
            rcode, rout, rerr = support.finish(r)
        self.assertEqual((wcode, werr), (0, ""))
        self.assertEqual(wout, "writer sent: hello from the writer\nwriter: reader acknowledged\n")
        self.assertEqual((rcode, rerr, rout), (0, "", "reader got: hello from the writer\n"))

    # Handoff: a Python parent passing an anonymous region's descriptor to a C, Go or Python child
    # (subprocess.Popen with pass_fds), and the C and Go parents starting the Python child.

    def test_handoff_python_to_c(self):
        self.handoff("Python", "C")

    def test_handoff_python_to_go(self):
        self.handoff("Python", "Go")

    def test_handoff_c_to_python(self):
        self.handoff("C", "Python")

    def test_handoff_go_to_python(self):
        self.handoff("Go", "Python")

    def test_handoff_python_to_python(self):
        self.handoff("Python", "Python")

    def test_handoff_default_reply(self):
        code, out, err = support.run([*programs("Python")["anon_parent"], *programs("C")["fd_child"]], env=self.env)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(out, handoff_transcript("nihao father!!"))

    # A Python parent and a child made with os.fork(), sharing an anonymous region: the child
    # speaks the handoff layout and calls no library function but the fork-safe ones.

    def test_python_parent_anon_fork(self):
        region = mmipc.anon(4096)
        self.addCleanup(region.close)
        msg = b"nihao child!!"
        region.buf[16:16 + len(msg)] = msg
        struct.pack_into("@III", region.buf, 0, 1, 0, len(msg))

        def child():
            buf = region.buf
            sent, _, n = struct.unpack_from("@III", buf, 0)
            if sent != 1 or n > 1024 or bytes(buf[16:16 + n]) != msg:
                return 2
            reply = b"nihao father!!"
            buf[1040:1040 + len(reply)] = reply
            struct.pack_into("@I", buf, 12, len(reply))
            struct.pack_into("@I", buf, 4, 1)
            region.close()
            return 0

        self.assertEqual(support.fork_run(child), 0)
        replied, n = struct.unpack_from("@I", region.buf, 4)[0], struct.unpack_from("@I", region.buf, 12)[0]
        self.assertEqual(replied, 1)
        self.assertEqual(bytes(region.buf[1040:1040 + n]), b"nihao father!!")

    # The examples' error paths.

    def test_reader_rejects_hostile_length(self):
        with mmipc.create("hostile", 4096) as r:
            struct.pack_into("@III", r.buf, 0, 1, 0, 0xFFFFFFFF)  # ready, ack, len
            code, out, err = support.run([*programs("Python")["named_reader"], "hostile"], env=self.env)
            self.assertEqual(struct.unpack_from("@I", r.buf, 4)[0], 0)  # not acknowledged
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(err, "named_reader: corrupt message length 4294967295 (room for 4084)\n")

    def test_reader_rejects_tiny_region(self):
        mmipc.create("tiny", 8).close()
        code, out, err = support.run([*programs("Python")["named_reader"], "tiny"], env=self.env)
        self.assertEqual((code, out), (1, ""))
        self.assertIn("the region has 8 bytes", err)

    def test_reader_reports_a_foreign_file(self):
        with open(os.path.join(self.dir, "foreign"), "wb") as f:
            f.write(b"x" * 8192)
        code, out, err = support.run([*programs("Python")["named_reader"], "foreign"], env=self.env)
        self.assertEqual((code, out), (1, ""))
        self.assertTrue(err.startswith('named_reader: mmipc_open "foreign"'), err)
        self.assertIn("not an mmipc region", err)

    def test_writer_reports_a_stale_region(self):
        mmipc.create("stale", 10).close()
        code, out, err = support.run([*programs("Python")["named_writer"], "stale"], env=self.env)
        self.assertEqual((code, out), (1, ""))
        self.assertIn("file exists", err)
        self.assertIn("named_writer: a stale region? remove it with mmipc.unlink('stale')", err)
        self.assertEqual(os.listdir(self.dir), ["stale"])  # someone else's: left alone

    def test_fd_child_rejects_hostile_length(self):
        region = mmipc.anon(4096)
        self.addCleanup(region.close)
        struct.pack_into("@IIII", region.buf, 0, 1, 0, 5000, 0)  # sent, replied, msg_len, reply_len
        fd = region.fd
        child = programs("Python")["fd_child"]
        proc = subprocess.Popen(
            ["/bin/sh", "-c", f'exec "$0" "$@" 3<&{fd} {fd}<&-', *child], pass_fds=(fd,), env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        code, out, err = support.finish(proc)
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(err, "fd_child: corrupt message length 5000 (room for 1024)\n")
        self.assertEqual(struct.unpack_from("@I", region.buf, 4)[0], 0)  # no reply

    def test_fd_child_without_a_region(self):
        """Started with nothing of ours at fd 3, fd_child fails cleanly."""
        code, out, err = support.run(programs("Python")["fd_child"], env=self.env)
        self.assertEqual((code, out), (1, ""))
        self.assertTrue(err.startswith("fd_child: mmipc_attach_fd (fd 3)"), err)

    def test_anon_parent_child_without_reply(self):
        code, out, err = support.run([*programs("Python")["anon_parent"], "/bin/true"], env=self.env)
        self.assertEqual(code, 1)
        self.assertEqual(out, "parent sent: nihao child!!\n")
        self.assertEqual(err, "anon_parent: the child exited without replying\n")
        code, out, err = support.run([*programs("Python")["anon_parent"], "/bin/false"], env=self.env)
        self.assertEqual(code, 1)
        self.assertIn("anon_parent: the child failed with exit status 1\n", err)

    def test_anon_parent_usage(self):
        code, out, err = support.run(programs("Python")["anon_parent"], env=self.env)
        self.assertEqual((code, out), (2, ""))
        self.assertTrue(err.startswith("usage: "), err)


class ExampleFilesTest(unittest.TestCase):
    def test_each_example_says_how_to_run_it(self):
        for prog in PROGRAMS:
            with self.subTest(prog=prog):
                path = os.path.join(PY_EXAMPLES, prog + ".py")
                with open(path) as f:
                    source = f.read()
                self.assertTrue(source.startswith("#!/usr/bin/env python3\n"))
                doc = source.split('"""')[1]
                self.assertIn("PYTHONPATH=python", doc)
                self.assertIn(f"python_examples/{prog}.py", doc)
                self.assertTrue(os.access(path, os.X_OK), f"{path} is not executable")


if __name__ == "__main__":
    unittest.main()
