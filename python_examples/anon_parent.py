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
import struct
import subprocess
import sys
import time

import mmipc

# struct handoff (c_examples/handoff.h): native-endian uint32s at 0, 4, 8 and 12, then the texts.
SENT = 0  # 1 once msg and msg_len are written (before the child starts)
REPLIED = 4  # 1 once the child has written reply and reply_len
MSG_LEN = 8  # bytes of msg, at most TEXT_MAX
REPLY_LEN = 12  # bytes of reply, at most TEXT_MAX
TEXT_MAX = 1024  # HANDOFF_TEXT_MAX
MSG = 16
REPLY = MSG + TEXT_MAX
U32 = "@I"  # native byte order, size and alignment: C's uint32_t, read or written with one memcpy

HANDOFF_FD = 3  # where the child finds the region's descriptor
REGION_SIZE = 4096  # HANDOFF_REGION_SIZE
TIMEOUT_S = 10.0  # HANDOFF_TIMEOUT_MS
POLL_S = 0.001
MESSAGE = b"nihao child!!"  # HANDOFF_MESSAGE

# The flags are plain loads and stores here, Python having no atomics: sound in practice for this
# example (aligned uint32 flags that only go from 0 to 1; each text is written before its flag and
# read only after it), though no memory model promises it. named_writer.py says why at length; the
# real fix is mmipc's wait/notify layer, coming later.


def load_u32(buf, offset):
    return struct.unpack_from(U32, buf, offset)[0]


def store_u32(buf, offset, value):
    struct.pack_into(U32, buf, offset, value)


def say(line):
    """Prints bytes as C's printf would, and flushes: the child's lines come in between."""
    sys.stdout.buffer.write(line + b"\n")
    sys.stdout.buffer.flush()


def start_child(command, fd):
    """Starts command with the region's descriptor fd at HANDOFF_FD in the child.

    subprocess hands descriptors over with pass_fds but keeps their numbers, and fd 3 cannot be
    freed in this process: the Go runtime inside libmmipc opens files of its own when the library
    loads (cgroup limits, since Go 1.25), which take the lowest free numbers, 3 among them, and a
    dup2 onto 3 here would pull one out from under it. So the renumbering happens in the child,
    between fork and exec, as anon_parent.c does it: /bin/sh's `exec` with "3<&N" (dup2(N, 3),
    which also clears close-on-exec) and "N<&-" (close the original) becomes the child program,
    same pid. (subprocess's preexec_fn could call os.dup2 there instead, but it is unsafe in a
    process with threads, and the Go runtime's threads are always there.)"""
    if fd == HANDOFF_FD:
        return subprocess.Popen(command, pass_fds=(fd,))
    trampoline = f'exec "$0" "$@" {HANDOFF_FD}<&{fd} {fd}<&-'
    return subprocess.Popen(["/bin/sh", "-c", trampoline, *command], pass_fds=(fd,))


def main(argv):
    if len(argv) < 2:
        print(f"usage: {argv[0]} CHILD [ARGS]", file=sys.stderr)
        return 2
    try:
        region = mmipc.anon(REGION_SIZE)
    except OSError as e:
        print(f"anon_parent: {e.strerror}", file=sys.stderr)  # mmipc_last_error()'s message
        return 1
    with region:
        buf = region.buf
        # The region is fresh and ours: no peer yet, so its size is what we asked for.
        buf[MSG:MSG + len(MESSAGE)] = MESSAGE
        store_u32(buf, MSG_LEN, len(MESSAGE))
        store_u32(buf, SENT, 1)  # last: publishes msg and msg_len
        say(b"parent sent: " + MESSAGE)  # flushed before the child starts, so this line comes first

        try:
            child = start_child(argv[1:], region.fd)
        except OSError as e:
            print(f"anon_parent: cannot execute {argv[1]}: {e.strerror}", file=sys.stderr)
            return 1

        # Raw shared memory cannot block, so poll for the reply, and for the child's exit so that
        # a child that dies without replying is reported at once rather than after the deadline.
        deadline = time.monotonic() + TIMEOUT_S
        exited = replied = False
        while True:
            # The exit is checked before the flag: a child seen gone that had replied is seen replied.
            if not exited:
                exited = child.poll() is not None
            replied = load_u32(buf, REPLIED) == 1
            if exited or time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)

        ok = True
        if not exited:
            child.kill()
            child.wait()
            what = "exit" if replied else "reply"
            print(f"anon_parent: the child did not {what} within {int(TIMEOUT_S * 1000)} ms; killed it", file=sys.stderr)
            ok = False
        if replied:
            # reply_len comes from another process: read it once, never trust it past the reply's room.
            n = load_u32(buf, REPLY_LEN)
            if n > TEXT_MAX:
                print(f"anon_parent: corrupt reply length {n} (room for {TEXT_MAX})", file=sys.stderr)
                ok = False
            else:
                say(b"parent got: " + bytes(buf[REPLY:REPLY + n]).split(b"\0", 1)[0])  # %.*s stops at a NUL
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
