#!/usr/bin/env python3
"""Smoke test of the test guest: boots it twice under QEMU (TCG, user-mode network)
and checks markers, DHCP, hostname, user-data, HTTP, echo, config-drive media change,
power button and /data persistence.

    test/guest/check-guest.py [IMAGE]     (default: whatever build-guest.sh prints)
    test/guest/check-guest.py --uefi      (the UEFI variants under OVMF, see check_uefi)

Needs qemu-system-x86, qemu-utils and genisoimage (and ovmf for --uefi). Exit status 0 when
all checks pass.
"""
import json, os, re, shutil, socket, subprocess, sys, tempfile, threading, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
OVMF = "/usr/share/OVMF"
# Refusal of an unsigned boot loader under Secure Boot, on the serial console (OVMF's BdsDxe).
REFUSED = r"BdsDxe: failed to load Boot\d+ .*: Access Denied"


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
    def __init__(self, overlay, iso, work, firmware=(), memory=256):
        self.http, self.echo = free_port(), free_port()
        self.qmp_path = os.path.join(work, "qmp.sock")
        self.lines, self.start = [], time.monotonic()
        fwd = f"hostfwd=tcp:127.0.0.1:{self.http}-:80,hostfwd=tcp:127.0.0.1:{self.echo}-:7,hostfwd=udp:127.0.0.1:{self.echo}-:7"
        self.proc = subprocess.Popen([
            "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", str(memory),
            "-nodefaults", "-nographic", "-serial", "stdio", *firmware,
            "-drive", f"file={overlay},if=none,id=disk0,format=qcow2",
            "-device", "virtio-blk-pci,drive=disk0,bootindex=0",
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


def ovmf(vars_file, secure):
    """QEMU arguments for OVMF with the EFI variables in vars_file (copied from Debian's
    template on first use): plain UEFI, or Secure Boot with Microsoft's keys enrolled."""
    code, template = ("OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd") if secure else \
                     ("OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd")
    if not os.path.exists(vars_file):
        shutil.copyfile(os.path.join(OVMF, template), vars_file)
    args = ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={os.path.join(OVMF, code)}",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_file}"]
    if secure:  # the secboot build keeps its variables in SMM: q35 with SMM, pflash writable only there
        args[0:0] = ["-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"]
    return args


def swtpm(state, work):
    """A TPM 2.0 emulator for one QEMU run (it exits when QEMU does) and QEMU's arguments for it."""
    sock = os.path.join(work, "swtpm.sock")
    os.makedirs(state, exist_ok=True)
    proc = subprocess.Popen(["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
                             "--ctrl", f"type=unixio,path={sock}", "--terminate"])
    while not os.path.exists(sock):
        time.sleep(0.05)
    return proc, ["-chardev", f"socket,id=tpmchar,path={sock}", "-tpmdev", "emulator,id=tpm0,chardev=tpmchar",
                  "-device", "tpm-crb,tpmdev=tpm0"]


# TPM2_PCR_Extend of PCR 16 (zeros at VM start) by uefi/tpm: sha256(32 zero bytes || its 32 bytes).
PCR16 = "dea075f0ecb5be94ca5e1ec65728b50854cda6e7d0812dcdcd2857290ebd0bbd"


def boot_uefi(name, image, work, secure, iso, boots=1, memory=512, tpm=False):
    """Boots image under OVMF boots times on one overlay and one VARS file (and one TPM state
    when tpm); checks the markers. Returns the seconds from QEMU's start to the first ready line."""
    overlay, vars_file = os.path.join(work, f"{name}.qcow2"), os.path.join(work, f"{name}.vars.fd")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image, overlay], check=True)
    ready = None
    for n in range(1, boots + 1):
        print(f"{name}: boot {n}", flush=True)
        emulator, tpm_args = swtpm(os.path.join(work, f"{name}.tpm"), work) if tpm else (None, [])
        g = Guest(overlay, iso, work, ovmf(vars_file, secure) + tpm_args, memory)
        try:
            g.wait(r"berth-guest: ready", 180)
            ready = ready or time.monotonic() - g.start
            print(f"ready after {time.monotonic() - g.start:.1f}s", flush=True)
            check(f"{name} secureboot", g.wait(r"berth-guest: secureboot=(\d)").group(1), "1" if secure else "0")
            check(f"{name} EFI variable (survives in the VARS file)", g.wait(r"berth-guest: efivar=(\d+)").group(1), str(n))
            check(f"{name} boot-count", g.wait(r"berth-guest: data /dev/vda2 boot-count (\d+)").group(1), str(n))
            if tpm:
                check(f"{name} PCR 16 extended", g.wait(r"berth-guest: tpm-pcr16=(\S+)").group(1), PCR16)
                check(f"{name} TPM NV counter (survives in the TPM state)", g.wait(r"berth-guest: tpm-nv=(\d+)").group(1), str(n))
            g.powerdown()
        finally:
            if g.proc.poll() is None:
                g.proc.kill()
            if emulator:
                emulator.wait(10)
    return ready


def check_uefi(work, iso):
    """The UEFI variants: the signed one boots under plain UEFI and under Secure Boot (twice, on
    the same VARS file: the guest's EFI variable persists); the unsigned one boots under plain
    UEFI and is refused under Secure Boot with OVMF's message; with swtpm, a Secure Boot run with a
    TPM extends PCR 16 and finds its NV counter again. Prints BIOS vs UEFI boot times."""
    def build(*args):
        return subprocess.run([os.path.join(HERE, "build-guest-uefi.sh"), *args], check=True,
                              stdout=subprocess.PIPE, text=True).stdout.strip()
    signed, unsigned = build(), build("--unsigned")
    bios = subprocess.run([os.path.join(HERE, "build-guest.sh")], check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip()
    times = {"uefi": boot_uefi("uefi", signed, work, False, iso, boots=2),
             "uefi-secure": boot_uefi("uefi-secure", signed, work, True, iso, boots=2)}
    if shutil.which("swtpm"):
        times["uefi-secure-tpm"] = boot_uefi("uefi-secure-tpm", signed, work, True, iso, boots=2, tpm=True)
    else:
        print("skipped: TPM (no swtpm)", flush=True)
    boot_uefi("unsigned-uefi", unsigned, work, False, iso)

    print("unsigned-uefi-secure: boot 1", flush=True)
    overlay = os.path.join(work, "refused.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", unsigned, overlay], check=True)
    g = Guest(overlay, iso, work, ovmf(os.path.join(work, "refused.vars.fd"), True), 512)
    try:
        m = g.wait(REFUSED, 120)
        print(f"ok   refused after {time.monotonic() - g.start:.1f}s: {m.group(0)}", flush=True)
        g.wait(r"BdsDxe: No bootable option or device was found", 30)
        check("unsigned under Secure Boot never ready", any("berth-guest:" in l for l in g.lines), False)
    finally:
        g.proc.kill()
        g.proc.wait()

    print("bios: boot 1 (for the time)", flush=True)
    overlay = os.path.join(work, "bios.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", bios, overlay], check=True)
    g = Guest(overlay, iso, work, (), 512)
    try:
        g.wait(r"berth-guest: ready", 120)
        times["bios"] = time.monotonic() - g.start
    finally:
        g.proc.kill()
        g.proc.wait()
    print("QEMU start to ready, 512 MiB, TCG: " + ", ".join(f"{k} {v:.1f}s" for k, v in sorted(times.items())))


def main():
    if sys.argv[1:] == ["--uefi"]:
        with tempfile.TemporaryDirectory() as work:
            iso = os.path.join(work, "cidata.iso")
            make_iso(iso, "cidata", {"meta-data": "instance-id: u-1\n", "user-data": "#!/bin/sh\ntrue\n"})
            check_uefi(work, iso)
        print("all checks passed")
        return
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
