"""Helpers shared by the test modules: a fresh MMIPC_DIR per test, bounded waits for forked and
started children (a hang is a failure, never a stuck suite), and counts of descriptors and mappings
for leak checks."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

import mmipc._lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON_DIR = os.path.join(ROOT, "python")
SHM = "/dev/shm" if os.path.isdir("/dev/shm") else None
CHILD_TIMEOUT = 30.0  # seconds; generous for a loaded 2-core machine, still bounded


def lib_path():
    """The absolute path of the libmmipc.so this process loaded, or None when the dynamic linker
    found it by name (then children find it the same way)."""
    path = os.path.abspath(mmipc._lib.path)
    return path if os.path.exists(path) else None


def use_region_dir(test):
    """Points MMIPC_DIR at a fresh directory under /dev/shm for one test (the library reads it with
    getenv at each call, and os.environ writes through to the C environment), and restores and
    removes it when the test ends. Returns the directory."""
    d = tempfile.mkdtemp(prefix="mmipc-pytest-", dir=SHM)
    old = os.environ.get("MMIPC_DIR")
    os.environ["MMIPC_DIR"] = d

    def restore():
        if old is None:
            os.environ.pop("MMIPC_DIR", None)
        else:
            os.environ["MMIPC_DIR"] = old
        shutil.rmtree(d, ignore_errors=True)

    test.addCleanup(restore)
    return d


def child_env(**extra):
    """The environment for a child program: this one, with the package and the library this
    process uses, plus `extra`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    lib = lib_path()
    if lib:
        env["MMIPC_LIB"] = lib
    env.update(extra)
    return env


def wait_pid(pid, timeout=CHILD_TIMEOUT):
    """Waits for the child pid with a polling deadline; kills it and raises AssertionError when it
    does not exit in time. Returns its exit code (negative: killed by that signal)."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"child {pid} did not exit within {timeout} s; killed it")
        time.sleep(0.002)


def fork_run(fn, timeout=CHILD_TIMEOUT):
    """Runs fn() in a child made with os.fork() and returns the child's exit code: fn's return
    value (None is 0), 99 if it raised (the traceback goes to stderr). The child leaves with
    os._exit, so no cleanup of the parent's (unittest's, atexit's) runs twice."""
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():
        # Python 3.12+ warns that fork() in a multi-threaded process (the Go runtime's threads)
        # may deadlock the child; mmipc's fork rule is what these tests check.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 98
        try:
            result = fn()
            code = 0 if result is None else int(result)
        except BaseException:  # noqa: B902 - the child must never return into unittest
            traceback.print_exc()
            code = 99
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return wait_pid(pid, timeout)


def fd_count():
    """The number of open descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def maps_count(needle):
    """The number of this process's mappings whose line in /proc/self/maps contains needle."""
    with open("/proc/self/maps") as f:
        return sum(needle in line for line in f)


def maps_of(st):
    """The number of this process's mappings of the file with os.stat_result st, matched by
    device and inode (the path shown may be another: mmipc_create maps the region under its
    temporary name before linking it)."""
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
    n = 0
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 5 and fields[3] == dev and fields[4] == str(st.st_ino):
                n += 1
    return n


def start(cmd, env=None, cwd=None):
    """Starts a program in its own session (so a timeout kills its children too), with stdout
    and stderr captured as UTF-8 text."""
    return subprocess.Popen(
        cmd,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
        errors="replace",
        start_new_session=True,
    )


def finish(proc, timeout=CHILD_TIMEOUT):
    """Waits for a program from start() and returns (exit code, stdout, stderr); kills its whole
    process group and raises AssertionError when it does not finish in time."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        raise AssertionError(f"{proc.args} did not finish within {timeout} s; killed it\nstdout:\n{out}\nstderr:\n{err}")
    return proc.returncode, out, err


def run(cmd, env=None, cwd=None, timeout=CHILD_TIMEOUT):
    """start() then finish()."""
    return finish(start(cmd, env=env, cwd=cwd), timeout)
