#!/usr/bin/env python3
"""The native side of the console benchmark: vncdotool's RFB client (a real VNC client, Twisted)
straight to QEMU's VNC, the way a user without Berth's browser viewer reaches the screen.

  native_vnc.py HOST PORT PASSWORD_FILE prepare            hide the guest's cursor on tty1
  native_vnc.py HOST PORT PASSWORD_FILE latency N JSON     N keystrokes, key to decoded update
  native_vnc.py HOST PORT PASSWORD_FILE idle SECONDS JSON  bytes received while nothing changes

Latency: the time from writing the key event to the end of the first framebuffer update after it
(every rectangle received and decoded: the moment a viewer could paint it). Each key is held
30 ms, as in browser.mjs. The keys alternate
between 'x' and BackSpace so that the shell's line never grows; the guest's cursor must be hidden
(`prepare`), or its blinking would count as the echo. Between keys the client waits 150-350 ms.
The client keeps one incremental update request outstanding at all times, as viewers do.
"""

import json
import random
import sys
import time

from twisted.internet import reactor, task
from vncdotool.const import Encoding
from vncdotool.rfb import RFBClient, RFBFactory

KEY_RETURN = 0xFF0D
KEY_BACKSPACE = 0xFF08
KEY_SHIFT = 0xFFE1
KEY_CONTROL = 0xFFE3
# How long a measured key is held, here and in browser.mjs. It matters: with the release right
# behind the press, QEMU delivers the echo's update ~80 ms after the press instead of ~35 ms
# (measured against QEMU 7.2 under TCG), so both clients hold each key the same 30 ms.
HOLD_S = 0.03
# Characters that need Shift on a US keyboard: QEMU turns a keysym into the scancode of its key and
# leaves the modifiers to the client, as real keyboards do.
SHIFTED = set('~!@#$%^&*()_+{}|:"<>?') | set("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# noVNC's preferences, minus what vncdotool cannot decode (tight, JPEG).
ENCODINGS = [Encoding.ZRLE, Encoding.HEXTILE, Encoding.RAW, Encoding.COPY_RECTANGLE,
             Encoding.PSEUDO_DESKTOP_SIZE, Encoding.PSEUDO_LAST_RECT]


class Bench(RFBClient):
    def __init__(self):
        super().__init__()
        self.received = 0
        self.waiting_since = None  # perf_counter of the key event that awaits its update
        self.updates = 0
        self.on_update = None

    def connectionMade(self):
        # As native viewers do (and as QEMU, Chromium and berth do on their sockets): without it,
        # Nagle's algorithm holds a key event behind the unacknowledged update request, and the
        # loopback's delayed ACK adds 40 ms per hold.
        self.transport.setTcpNoDelay(True)
        super().connectionMade()

    def dataReceived(self, data):
        self.received += len(data)
        super().dataReceived(data)

    def vncConnectionMade(self):
        self.setEncodings(ENCODINGS)
        self.framebufferUpdateRequest(incremental=False)
        self.factory.connected(self)

    def commitUpdate(self, rectangles=None):
        self.updates += 1
        now = time.perf_counter()
        self.framebufferUpdateRequest(incremental=True)
        if self.on_update:
            self.on_update(now)

    def type_key(self, keysym):
        self.keyEvent(keysym, down=True)
        self.keyEvent(keysym, down=False)

    def type_text(self, text):
        for char in text:
            shift = char in SHIFTED
            if shift:
                self.keyEvent(KEY_SHIFT, down=True)
            self.type_key(ord(char))
            if shift:
                self.keyEvent(KEY_SHIFT, down=False)
        self.type_key(KEY_RETURN)


class Factory(RFBFactory):
    protocol = Bench

    def __init__(self, password, job):
        super().__init__(password=password, shared=True)
        self.job = job

    def connected(self, client):
        self.job(client)

    def clientConnectionFailed(self, connector, reason):
        fail(f"cannot connect: {reason.getErrorMessage()}")

    def clientConnectionLost(self, connector, reason):
        if reactor.running and not DONE:
            fail(f"connection lost: {reason.getErrorMessage()}")


FAILURES = []
DONE = False  # the job has ended: a closing connection is expected


def fail(message):
    # Called from the reactor's callbacks, where an exception would only be logged: note it, stop
    # the reactor, and main() exits 1.
    FAILURES.append(message)
    print(f"native_vnc: {message}", file=sys.stderr)
    if reactor.running:
        reactor.stop()


def stop():
    global DONE
    DONE = True
    reactor.stop()


def finish(path, result):
    with open(path, "w") as out:
        json.dump(result, out)
    stop()


def prepare(client):
    # Typed on tty1's shell: Ctrl-U drops whatever is on the line, then clear the screen and
    # hide the cursor.
    client.keyEvent(KEY_CONTROL, down=True)
    client.type_key(ord("u"))
    client.keyEvent(KEY_CONTROL, down=False)
    client.type_text("clear; printf '\\033[?25l'")
    reactor.callLater(2.0, stop)


def latency(count, path):
    samples = []

    def job(client):
        keys = [ord("x"), KEY_BACKSPACE]

        def arrived(now):
            if client.waiting_since is None:
                return
            samples.append((now - client.waiting_since) * 1000.0)
            client.waiting_since = None
            if len(samples) == count:
                finish(path, {"samples_ms": samples, "updates": client.updates})
            else:
                reactor.callLater(random.uniform(0.15, 0.35), send)

        def send():
            key = keys[len(samples) % 2]
            client.waiting_since = time.perf_counter()
            client.keyEvent(key, down=True)
            reactor.callLater(HOLD_S, client.keyEvent, key, False)

        def timeout():
            fail(f"no update within 10 s of a key ({len(samples)} of {count} measured)")

        client.on_update = arrived
        guard = task.LoopingCall(lambda: client.waiting_since
                                 and time.perf_counter() - client.waiting_since > 10 and timeout())
        guard.start(1.0, now=False)
        # Let the first full update pass, then make sure the screen is quiet (no blinking
        # cursor): the echo must be the only change.
        def check_quiet(before):
            if client.updates != before:
                fail(f"the screen is not quiet: {client.updates - before} updates in 3 s without a key")
            send()
        reactor.callLater(1.5, lambda: reactor.callLater(3.0, check_quiet, client.updates))
    return job


def idle(seconds, path):
    def job(client):
        def start():
            before = client.received
            updates = client.updates
            started = time.perf_counter()

            def done():
                elapsed = time.perf_counter() - started
                finish(path, {"bytes": client.received - before, "seconds": elapsed,
                              "updates": client.updates - updates})
            reactor.callLater(seconds, done)
        # The first full update is not idle traffic.
        reactor.callLater(2.0, start)
    return job


def main():
    host, port, password_file, mode = sys.argv[1:5]
    with open(password_file) as f:
        password = f.read().strip()
    if mode == "prepare":
        job = prepare
    elif mode == "latency":
        job = latency(int(sys.argv[5]), sys.argv[6])
    elif mode == "idle":
        job = idle(float(sys.argv[5]), sys.argv[6])
    else:
        sys.exit(f"native_vnc: unknown mode {mode}")
    reactor.connectTCP(host, int(port), Factory(password, job))
    reactor.callLater(600, fail, "still running after 600 s")
    reactor.run()
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
