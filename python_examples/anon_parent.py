#!/usr/bin/env python3
"""anon_parent.py - the Python twin of c_examples/anon_parent.c: it makes an anonymous region
(mmipc.anon), writes a message in the layout of c_examples/handoff.h, and starts the child program
(fd_child.py, or the C or Go fd_child) with the region's descriptor as fd 3. The child replies in
the shared memory; the parent waits for the reply, with a deadline, prints it and reaps the child.

From the checkout, after ./build.sh (the library is found in build/, or at $MMIPC_LIB):

    PYTHONPATH=python python3 python_examples/anon_parent.py CHILD [ARGS]
    e.g.  ... anon_parent.py ./build/examples/fd_child "nihao father!!"
          ... anon_parent.py "$(command -v python3)" python_examples/fd_child.py
    -> parent sent: nihao child!!
       child got: nihao child!!
       child replied: nihao father!!
       parent got: nihao father!!

CHILD is a program path; ARGS are passed on to it.
"""
import subprocess
import sys
import time

import mmipc

import handoff
from shm import POLL_S, LayoutError, load_u32, store_u32, say


def start_child(command, fd):
    """Starts command with the region's descriptor fd at handoff.FD in the child.

    subprocess hands descriptors over with pass_fds but keeps their numbers, and fd 3 cannot be
    freed in this process: the Go runtime inside libmmipc opens files of its own when the library
    loads (cgroup limits, since Go 1.25), which take the lowest free numbers, 3 among them, and a
    dup2 onto 3 here would pull one out from under it. So the renumbering happens in the child,
    between fork and exec, as anon_parent.c does it: /bin/sh's `exec` with "3<&N" (dup2(N, 3),
    which also clears close-on-exec) and "N<&-" (close the original) becomes the child program,
    same pid. (subprocess's preexec_fn could call os.dup2 there instead, but it is unsafe in a
    process with threads, and the Go runtime's threads are always there.)"""
    if fd == handoff.FD:
        return subprocess.Popen(command, pass_fds=(fd,))
    trampoline = f'exec "$0" "$@" {handoff.FD}<&{fd} {fd}<&-'
    return subprocess.Popen(["/bin/sh", "-c", trampoline, *command], pass_fds=(fd,))


def main(argv):
    if len(argv) < 2:
        print(f"usage: {argv[0]} CHILD [ARGS]", file=sys.stderr)
        return 2
    try:
        region = mmipc.anon(handoff.REGION_SIZE)
    except OSError as e:
        print(f"anon_parent: {e.strerror}", file=sys.stderr)  # mmipc_last_error()'s message
        return 1
    with region:
        buf = region.buf
        # The region is fresh and ours: no peer yet, so its size is what we asked for.
        handoff.write_msg(buf, handoff.MESSAGE)
        store_u32(buf, handoff.SENT, 1)  # last: publishes msg and msg_len
        say(b"parent sent: " + handoff.MESSAGE)  # flushed before the child starts, so this line comes first

        try:
            child = start_child(argv[1:], region.fd)
        except OSError as e:
            print(f"anon_parent: cannot execute {argv[1]}: {e.strerror}", file=sys.stderr)
            return 1

        # Raw shared memory cannot block, so poll for the reply, and for the child's exit so that
        # a child that dies without replying is reported at once rather than after the deadline.
        deadline = time.monotonic() + handoff.TIMEOUT_MS / 1000
        exited = replied = False
        while True:
            # The exit is checked before the flag: a child seen gone that had replied is seen replied.
            if not exited:
                exited = child.poll() is not None
            replied = load_u32(buf, handoff.REPLIED) == 1
            if exited or time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)

        ok = True
        if not exited:
            child.kill()
            child.wait()
            what = "exit" if replied else "reply"
            print(f"anon_parent: the child did not {what} within {handoff.TIMEOUT_MS} ms; killed it", file=sys.stderr)
            ok = False
        if replied:
            try:
                say(b"parent got: " + handoff.read_reply(buf))  # reply_len checked against TEXT_MAX
            except LayoutError as e:
                print(f"anon_parent: {e}", file=sys.stderr)
                ok = False
        elif exited:
            print("anon_parent: the child exited without replying", file=sys.stderr)
            ok = False
        if exited and child.returncode != 0:
            if child.returncode > 0:
                print(f"anon_parent: the child failed with exit status {child.returncode}", file=sys.stderr)
            else:
                print(f"anon_parent: the child was killed by signal {-child.returncode}", file=sys.stderr)
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
