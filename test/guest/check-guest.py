#!/usr/bin/env python3
"""Smoke test of the test guest: boots it twice under QEMU (TCG, user-mode network)
and checks markers, DHCP, hostname, user-data, HTTP, echo, config-drive media change,
power button and /data persistence.

    test/guest/check-guest.py [IMAGE]     (default: whatever build-guest.sh prints)

Needs qemu-system-x86, qemu-utils and genisoimage. Exit status 0 when all checks pass.
"""
import json, os, re, socket, subprocess, sys, tempfile, threading, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_iso(path, label, files):
    with tempfile.TemporaryDirectory() as d:
        for name, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(d, name)), exist_ok=True)
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        subprocess.run(["genisoimage", "-quiet", "-V", label, "-J", "-R", "-o", path, d], check=True)


class Guest:
    def __init__(self, overlay, iso, work):
        self.http, self.echo = free_port(), free_port()
        self.qmp_path = os.path.join(work, "qmp.sock")
        self.lines, self.start = [], time.monotonic()
        fwd = f"hostfwd=tcp:127.0.0.1:{self.http}-:80,hostfwd=tcp:127.0.0.1:{self.echo}-:7,hostfwd=udp:127.0.0.1:{self.echo}-:7"
        self.proc = subprocess.Popen([
            "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", "256",
            "-nodefaults", "-nographic", "-serial", "stdio",
            "-drive", f"file={overlay},if=virtio,format=qcow2",
            "-device", "virtio-scsi-pci",
            "-drive", f"if=none,id=cd0,media=cdrom,file={iso},format=raw",
            "-device", "scsi-cd,drive=cd0",
            "-netdev", f"user,id=n0,{fwd}", "-device", "virtio-net-pci,netdev=n0",
            "-qmp", f"unix:{self.qmp_path},server,nowait"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            self.lines.append(line)
            print(f"  | {line}", flush=True)

    def wait(self, pattern, timeout=60, since=0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[since:]:
                m = re.search(pattern, line)
                if m:
                    return m
            time.sleep(0.1)
        raise AssertionError(f"no console line matching {pattern!r} within {timeout}s")

    def qmp(self, command, **arguments):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.qmp_path)
            f = s.makefile("rw")
            f.readline()
            for cmd in ({"execute": "qmp_capabilities"}, {"execute": command, "arguments": arguments}):
                f.write(json.dumps(cmd) + "\n")
                f.flush()
                while "event" in (reply := json.loads(f.readline())):
                    pass
            if "error" in reply:
                raise AssertionError(f"QMP {command}: {reply['error']}")

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}{path}", timeout=10) as r:
            return r.read().decode()

    def powerdown(self):
        self.qmp("system_powerdown")
        self.wait(r"berth-guest: powering off", 20)
        self.proc.wait(20)


def check(what, got, want):
    ok = got == want
    print(f"{'ok  ' if ok else 'FAIL'} {what}: {got!r}" + ("" if ok else f" (want {want!r})"), flush=True)
    if not ok:
        raise AssertionError(what)


def main():
    image = sys.argv[1] if len(sys.argv) > 1 else subprocess.run(
        [os.path.join(HERE, "build-guest.sh")], check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as work:
        overlay = os.path.join(work, "pet.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image, overlay], check=True)
        one, two = os.path.join(work, "one.iso"), os.path.join(work, "two.iso")
        make_iso(one, "config-2", {
            "openstack/latest/meta_data.json": '{"uuid": "u-1", "hostname": "pet-one"}\n',
            "openstack/latest/user_data": "#!/bin/sh\necho value-one > /www/value\n"
                                          "echo run >> /data/runs && cp /data/runs /www/runs\n"})
        make_iso(two, "cidata", {
            "meta-data": "instance-id: u-1\nlocal-hostname: pet-two\n",
            "user-data": "#cloud-config\nwrite_files:\n  - path: /www/value\n    content: |\n      value-two\n"
                         "runcmd:\n  - echo ran > /www/ran\n"})

        print("boot 1", flush=True)
        g = Guest(overlay, one, work)
        try:
            g.wait(r"berth-guest: ready", 120)
            print(f"ready after {time.monotonic() - g.start:.1f}s", flush=True)
            check("boot-count", g.wait(r"berth-guest: data /dev/vda2 boot-count (\d+)").group(1), "1")
            check("config drive", g.wait(r"berth-guest: config-drive (\S+)").group(1), "config-2")
            check("lease", g.wait(r"berth-guest: lease (\S+)").group(1), "10.0.2.15")
            check("user-data", g.wait(r"berth-guest: user-data done (\S+ rc=\d+)").group(1), "script rc=0")
            check("GET /", g.get("/"), "pet-one\n")
            check("GET /value", g.get("/value"), "value-one\n")
            check("GET /userdata", g.get("/userdata").splitlines()[0], "#!/bin/sh")
            with socket.create_connection(("127.0.0.1", g.echo), timeout=10) as s:
                s.sendall(b"tcp-echo\n")
                check("TCP echo", s.recv(100), b"tcp-echo\n")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(10)
                s.sendto(b"udp-echo", ("127.0.0.1", g.echo))
                check("UDP echo", s.recv(100), b"udp-echo")

            mark = len(g.lines)
            g.qmp("blockdev-change-medium", device="cd0", filename=two, format="raw")
            check("changed drive", g.wait(r"berth-guest: config-drive changed (\S+)", 30, mark).group(1), "cidata")
            g.wait(r"berth-guest: user-data done cloud-config rc=0", 30, mark)
            check("GET / after change", g.get("/"), "pet-two\n")
            check("GET /value after change", g.get("/value"), "value-two\n")
            check("GET /ran after change", g.get("/ran"), "ran\n")

            t = time.monotonic()
            g.powerdown()
            print(f"ok   powered off {time.monotonic() - t:.1f}s after system_powerdown", flush=True)
        finally:
            if g.proc.poll() is None:
                g.proc.kill()

        print("boot 2 (same overlay)", flush=True)
        g = Guest(overlay, one, work)
        try:
            g.wait(r"berth-guest: ready", 120)
            check("boot-count", g.wait(r"berth-guest: data /dev/vda2 boot-count (\d+)").group(1), "2")
            check("GET /runs (written to /data on both boots)", g.get("/runs"), "run\nrun\n")
            g.powerdown()
        finally:
            if g.proc.poll() is None:
                g.proc.kill()
    print("all checks passed")


if __name__ == "__main__":
    main()
