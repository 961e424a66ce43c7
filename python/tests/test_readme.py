"""The README's Python snippets, run as written: a user copies them first."""
import os
import re
import subprocess
import sys
import unittest

import mmipc

from . import _support as support

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def python_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("## From Python"):text.index("## Go peers")]
    return re.findall(r"```python\n(.*?)```", section, re.S)


class ReadmeTest(unittest.TestCase):
    def run_snippet(self, code):
        # child_env carries MMIPC_DIR, which use_region_dir set for this test.
        return subprocess.run([sys.executable, "-c", code], env=support.child_env(), capture_output=True, text=True,
                              timeout=60)

    def test_snippets(self):
        blocks = python_blocks()
        self.assertEqual(len(blocks), 2, "the README's Python section changed: update this test")
        d = support.use_region_dir(self)
        r = self.run_snippet(blocks[0])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "b'hi from Py'\n")
        self.assertEqual(os.listdir(d), [], "the first snippet unlinks its region")

        # The SharedMemory snippet: its segment is a region a C or Go peer can open by name.
        r = self.run_snippet(blocks[1] + "\nprint(shm.name, shm.size)\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        name, size = r.stdout.split()
        self.assertEqual(int(size), 1 << 20)
        self.assertEqual(os.listdir(d), [name], "no resource tracker removed the segment")
        with open(os.path.join(d, name), "rb") as f:
            self.assertEqual(f.read(8), b"MMIPCREG")

    def test_sync_snippet(self):
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            text = f.read()
        start = text.index("## Beyond raw memory")
        section = text[start:text.index("\n## ", start + 1)]
        blocks = re.findall(r"```python\n(.*?)```", section, re.S)
        self.assertEqual(len(blocks), 1, "the README's sync section changed: update this test")
        d = support.use_region_dir(self)
        r = self.run_snippet(blocks[0])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "b'job 3'\n")
        self.assertEqual(os.listdir(d), [], "the snippet unlinks what it made")

    def test_import_from_checkout(self):
        # What the README promises after ./build.sh: PYTHONPATH=python, and no MMIPC_LIB needed.
        built = os.path.join(ROOT, "build", "libmmipc.so")
        if not os.path.exists(built):
            self.skipTest("no build/libmmipc.so: run ./build.sh first")
        env = {k: v for k, v in os.environ.items() if k not in ("MMIPC_LIB", "PYTHONPATH")}
        env["PYTHONPATH"] = os.path.join(ROOT, "python")
        r = subprocess.run([sys.executable, "-c", "import mmipc; print(mmipc._lib.path, mmipc.version())"],
                           env=env, cwd="/", capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), [built, mmipc.version()])

    def test_missing_library_is_a_clear_import_error(self):
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"), MMIPC_LIB="/nonexistent/libmmipc.so")
        r = subprocess.run([sys.executable, "-c", "import mmipc"], env=env, capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError", r.stderr)
        self.assertIn("/nonexistent/libmmipc.so", r.stderr)


if __name__ == "__main__":
    unittest.main()
