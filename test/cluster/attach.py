#!/usr/bin/env python3
"""Drives `kubectl attach -it` through a pseudo-terminal, as a person at a terminal would.

usage: attach.py [--user root] [--timeout 240] -- KUBECTL... attach -it pod/NAME

kubectl only puts the terminal in raw mode (and only then sends keys such as Ctrl-C to the
container, and only then honours its detach keys) when its stdin is a terminal, so it runs on the
slave side of a pty here. Steps, each timed on stderr:
  prompt   press Enter until the guest's serial console shows `login: `
  login    the user's name (the test guest's getty lets root in without a password), then `# `
  command  `echo attach-$((6*7))`, and `attach-42` must come back (the typed line shows
           `$((6*7))`, so only the guest's shell can print 42)
  ctrl-c   `sleep 120; echo not-interrupted`, then Ctrl-C: the shell must answer the next command
           at once and `not-interrupted` must never appear (Ctrl-C went to the guest, not kubectl)
  detach   ctrl-p ctrl-q: kubectl must exit 0 by itself, leaving the container running
Exits 0 when every step passed; 1 (with the output seen so far) otherwise.
"""
import argparse
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time

CTRL_C, CTRL_P, CTRL_Q = b"\x03", b"\x10", b"\x11"


class Session:
    def __init__(self, command):
        self.master, slave = os.openpty()
        # A terminal of a usual size: the kubelet passes it on to the container's tty.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.seen = b""
        self.t0 = time.monotonic()

    def read(self, seconds):
        """Whatever arrives within `seconds` (or less, once the pty has nothing more)."""
        ready, _, _ = select.select([self.master], [], [], seconds)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: kubectl closed the pty
            return False
        self.seen += data
        return bool(data)

    def wait_for(self, text, start, seconds, poke=None):
        """Index of `text` at or after `start` within `seconds`; sends `poke` every 2 s meanwhile."""
        deadline = time.monotonic() + seconds
        next_poke = time.monotonic()
        while time.monotonic() < deadline:
            at = self.seen.find(text, start)
            if at >= 0:
                return at
            if poke is not None and time.monotonic() >= next_poke:
                self.type(poke)
                next_poke = time.monotonic() + 2
            if not self.read(0.2) and self.proc.poll() is not None:
                break  # kubectl ended and the pty is drained
        at = self.seen.find(text, start)
        return at if at >= 0 else None

    def type(self, keys):
        os.write(self.master, keys)

    def wait_exit(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                return code
            self.read(0.2)
        return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--user", default="root")
    parser.add_argument("--timeout", type=float, default=240, help="seconds for the login prompt")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no kubectl command given")

    session = Session(command)
    timings = []
    mark = [time.monotonic()]

    def step(name):
        now = time.monotonic()
        timings.append(f"{name:<8} {now - mark[0]:6.2f} s")
        print(f"attach: {name} ok after {now - mark[0]:.2f} s", file=sys.stderr, flush=True)
        mark[0] = now

    def fail(message):
        print(f"attach: FAIL: {message}", file=sys.stderr)
        tail = session.seen[-2000:].decode("utf-8", "replace")
        print("attach: last output seen:\n" + tail, file=sys.stderr)
        if session.proc.poll() is None:
            os.killpg(session.proc.pid, signal.SIGKILL)
        session.proc.wait()
        sys.exit(1)

    at = session.wait_for(b"login: ", 0, args.timeout, poke=b"\r")
    if at is None:
        fail(f"no 'login: ' on the serial console within {args.timeout:.0f} s")
    step("prompt")

    session.type(args.user.encode() + b"\r")
    at = session.wait_for(b"# ", at, 30)
    if at is None:
        fail(f"no shell prompt after logging in as {args.user}")
    step("login")

    session.type(b"echo attach-$((6*7))\r")
    at = session.wait_for(b"attach-42", at, 30)
    if at is None:
        fail("the command's output attach-42 did not come back")
    step("command")

    session.type(b"sleep 120; echo not-interrupted\r")
    time.sleep(2)
    session.type(CTRL_C)
    session.type(b"echo after-$((1+2))\r")
    at = session.wait_for(b"after-3", at, 20)
    if at is None:
        fail("after Ctrl-C the guest's shell did not answer (did Ctrl-C end kubectl instead?)")
    if b"not-interrupted" in session.seen.replace(b"echo not-interrupted", b""):
        fail("the guest's sleep was not interrupted by Ctrl-C")
    if session.proc.poll() is not None:
        fail(f"kubectl ended (exit {session.proc.returncode}) on Ctrl-C")
    step("ctrl-c")

    session.type(b"exit\r")  # log out, so the next person to attach gets a login prompt
    session.wait_for(b"login: ", at, 10)
    session.type(CTRL_P + CTRL_Q)
    code = session.wait_exit(20)
    if code is None:
        fail("kubectl did not end within 20 s of ctrl-p ctrl-q")
    if code != 0:
        fail(f"kubectl exited {code} after ctrl-p ctrl-q, expected 0")
    step("detach")
    print("attach: passed: " + "; ".join(timings), file=sys.stderr)


if __name__ == "__main__":
    main()
