"""What the Python peers of the cross-language tests share (the twin of tests/c/peerutil.h): the
"ok COMMAND ..." / "FAIL COMMAND: ..." lines the Go test drivers read, the usage exit, and strict
numeric arguments."""
import os
import sys


class Failed(Exception):
    """A check of the running command failed."""


def fail(msg):
    raise Failed(msg)


def say(line):
    """Prints a line with one write(2): a forked child and its parent share the pipe, and a line
    split in two writes could interleave with the other's."""
    sys.stdout.flush()
    os.write(1, (line + "\n").encode())


_current = None  # the peer's Command, for usage()


def usage():
    """The usage exit of the running peer, from anywhere in it."""
    _current.usage()


def ok(msg=""):
    """The running command's "ok COMMAND ..." line."""
    _current.ok(msg)


class Command:
    """The command line "prog COMMAND ARGS...": at least min_args ARGS, else the usage exit."""

    def __init__(self, prog, spec, min_args):
        global _current
        self.prog, self.spec = prog, spec
        _current = self
        if len(sys.argv) < 2 + min_args:
            self.usage()
        self.name, self.args = sys.argv[1], sys.argv[2:]

    def usage(self):
        print(f"usage: {self.prog} COMMAND ARGS... (see the comment at the top of {self.spec})", file=sys.stderr)
        sys.exit(2)

    def num(self, i):
        """ARGS[i], a whole non-negative number, else the usage exit."""
        try:
            v = int(self.args[i])
        except (IndexError, ValueError):
            self.usage()
        if v < 0:
            self.usage()
        return v

    def word(self, i):
        if i >= len(self.args):
            self.usage()
        return self.args[i]

    def ok(self, msg=""):
        say(f"ok {self.name}{msg}")

    def run(self, body):
        """Runs body(); an unknown command (body returns False) is the usage exit, a failed check
        or an OSError the FAIL line and exit 1."""
        try:
            if body() is False:
                self.usage()
        except (Failed, OSError) as e:
            say(f"FAIL {self.name}: {e if isinstance(e, Failed) else repr(e)}")
            sys.exit(1)
