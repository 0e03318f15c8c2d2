#!/usr/bin/env python3
"""Whole start-up, Berth against the baseline (bench/baseline/startvm.sh: the seed's approach with
ip, iptables, dnsmasq, genisoimage, curl and qemu-img), on the same guest, the same cached image
and the same pod-like namespace (test/e2e/podnet.sh, Calico style). Root only.

Each run gets a fresh pod (namespaces, runtime folder and pet disk); the image cache survives, so
every timed run starts with a cached image and creates its pet disk, as a pod does when it lands on
a node that already has the image. A first, untimed run per tool fills its cache. Runs alternate
between the tools so that load on the machine hits both alike. Times are from just before the tool
is started (`ip netns exec POD TOOL`) to:
  exec      QEMU's exec: a wrapper named qemu-system-x86_64 first in PATH stamps the time and
            execs the real one (both tools find QEMU through PATH);
  lease     the guest's console line `berth-guest: lease ...` (it took its DHCP lease);
  service   the first HTTP 200 from the guest's web server at the pod IP, asked from the node
            namespace every 10 ms (connect timeout 50 ms).
Memory (separate runs, since sampling costs CPU): every 2 ms, the sum of VmHWM of every process in
the pod's network namespace except QEMU; the largest such sum, and the same 2 s after the service
answered (what stays resident). Processes that live less than 2 ms can be missed.

With --cloud-image the guest is the Debian cloud image that test/cloudimage builds (cloud-init,
sshd; cached under /var/cache/berth/cloudimage), "service" is sshd's banner at the pod IP's port
22, there is no "lease" line, both get --memory and --cpus, and berth runs with --accel (default
auto, as a new user would: the first, uncounted run pays a failed KVM try once per node).

Every run also records QEMU's CPU time (user + system, all its threads, from /proc) when the
service first answers: the work the boot took, which the machine's load changes far less than the
wall time (a loaded machine delays a TCG guest; it does not make it do more).

--keep DIR keeps, per run (0-berth, 1-baseline, ...): the console with each line's time from the
start (.console), the tool's log (.log) and QEMU's arguments (.qemu-args); with --cloud-image the
user-data also holds a fresh SSH key, and once sshd answers the guest's own account of its boot is
fetched over SSH from the node (.guest: systemd-analyze, cloud-init analyze, networkd, resolved,
the journal), after the timing, so that stages can be compared side by side.

  bench/startup.py [--runs N] [--berth PATH] [--json OUT] [--keep DIR]
  bench/startup.py --cloud-image [--runs N] [--memory 1G] [--cpus 1] [--accel auto] [--json OUT]
"""
import argparse
import ctypes
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "bstart"
POD, NODE = f"{NAME}-pod", f"{NAME}-node"
POD_IP, NODE_IP = "10.77.0.5", "10.77.9.1"
CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL("libc.so.6", use_errno=True)


def enter_netns(name):
    """Moves the calling thread (only) into a named network namespace."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
    finally:
        os.close(fd)


def sh(*args, **kw):
    subprocess.run(args, check=True, **kw)


class Pod:
    """podnet.sh namespaces plus the node's services: an HTTP server with the guest image and a
    DNS server (dnsmasq) that the pod's resolv.conf names."""

    def __init__(self, www):
        self.www = www
        self.procs = []

    def __enter__(self):
        sh(f"{ROOT}/test/e2e/podnet.sh", "up", NAME)
        # busybox httpd, not Python's http.server: that one looks up its own name before it
        # listens, which in a namespace without DNS stalls it for 5 s.
        self.procs.append(subprocess.Popen(
            ["ip", "netns", "exec", NODE, "busybox", "httpd", "-f", "-p", f"{NODE_IP}:8080", "-h",
             self.www], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.procs.append(subprocess.Popen(
            ["ip", "netns", "exec", NODE, "dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts",
             "--bind-interfaces", f"--listen-address={NODE_IP}", f"--address=/berth.test/{NODE_IP}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        # Ready when the pod reaches the image server (a fresh veth takes a moment to carry).
        for _ in range(200):
            if subprocess.run(["ip", "netns", "exec", POD, "curl", "-s", "-o", "/dev/null", "-m", "1",
                               f"http://{NODE_IP}:8080/"]).returncode == 0:
                return self
            time.sleep(0.05)
        raise RuntimeError(f"the pod cannot reach the image server at {NODE_IP}:8080")

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()
        subprocess.run([f"{ROOT}/test/e2e/podnet.sh", "down", NAME])


def pod_processes(pod_ino):
    """(pid, comm) of every process whose network namespace is the pod's."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{pid}/ns/net") != pod_ino:
                continue
            with open(f"/proc/{pid}/comm") as f:
                out.append((int(pid), f.read().strip()))
        except OSError:
            pass
    return out


def status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def non_qemu(pod_ino, field):
    """{comm: KiB} summed over the pod's processes except QEMU."""
    by = {}
    for pid, comm in pod_processes(pod_ino):
        if comm.startswith("qemu-system"):
            continue
        by[comm] = by.get(comm, 0) + status_kib(pid, field)
    return by


def qemu_cpu_seconds(pid_file):
    """The CPU time (user + system, all threads) QEMU has used so far: the work the boot took,
    which the machine's load changes much less than the wall time."""
    try:
        with open(pid_file) as f:
            pid = int(f.read())
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def guest_report(key, out):
    """What the guest says about its own boot, over SSH from the node (user debian, the key that
    --keep put in the user-data): systemd's and cloud-init's stage times and the network's state.
    Guest-CPU relative and noisy under TCG; differences between the tools' stages are the point."""
    commands = [
        "systemd-analyze", "systemd-analyze critical-chain", "systemd-analyze blame | head -25",
        "cloud-init analyze show", "cloud-init analyze blame | head -20",
        "networkctl status --no-pager -n 0 | head -30", "cat /etc/resolv.conf",
        "resolvectl status --no-pager | head -30", "ls /etc/netplan /run/systemd/network",
        "cat /run/systemd/network/*",
        "journalctl -b --no-pager -o short-monotonic -u systemd-networkd -u "
        "systemd-networkd-wait-online -u cloud-init-local -u cloud-init -u systemd-resolved",
        "journalctl -b --no-pager -o short-monotonic | grep -iE 'timed out|timeout|resolv|dhcp|"
        "carrier|wait-online|Reached target|Finished cloud-init|ssh' | head -80",
        "grep -iE 'resolv|dns|timed out|Traceback|WARNING|took' /var/log/cloud-init.log | head -60",
        "journalctl -b --no-pager -o short-monotonic",
    ]
    script = "".join(f"echo {shlex.quote('### ' + c)}; {c} 2>&1\n" for c in commands)
    with open(out, "w") as f:
        for _ in range(20):
            r = subprocess.run(
                ["ip", "netns", "exec", NODE, "ssh", "-i", key, "-o", "StrictHostKeyChecking=no",
                 "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=20", "-o",
                 "BatchMode=yes", f"debian@{POD_IP}", "sudo", "sh"], input=script, capture_output=True, text=True,
                errors="replace", timeout=300)
            if r.returncode != 255:
                f.write(r.stdout + r.stderr)
                return
            time.sleep(3)
        f.write("ssh failed: " + r.stderr)


def one_run(tool, cmd, env, work, measure_memory, probe="http", limit=120, keep=None, key=None):
    """Starts the tool in a fresh pod and returns its milestones (seconds from start) and memory.
    keep: a path prefix; the console (each line with its time from start), the tool's log and
    QEMU's command line are kept there, and with key the guest's own boot report (guest_report)."""
    run_dir = tempfile.mkdtemp(dir=work)
    os.chmod(run_dir, 0o711)  # berth's QEMU runs as BERTH_QEMU_USER and opens its disk below here
    stamp = os.path.join(run_dir, "qemu-exec")
    open(stamp, "w").close()
    os.chmod(stamp, 0o666)  # the wrapper below runs as QEMU's user
    for extra in ("args", "pid"):
        open(f"{stamp}.{extra}", "w").close()
        os.chmod(f"{stamp}.{extra}", 0o666)
    wrap = os.path.join(run_dir, "bin")
    os.makedirs(wrap)
    with open(os.path.join(wrap, "qemu-system-x86_64"), "w") as f:
        f.write(f'#!/bin/bash\necho "$EPOCHREALTIME" >>{stamp}\n'
                f'printf "%s\\n" "$@" >{stamp}.args\necho $$ >{stamp}.pid\n'
                f'exec {shutil.which("qemu-system-x86_64")} "$@"\n')
    os.chmod(os.path.join(wrap, "qemu-system-x86_64"), 0o755)
    env = dict(env, PATH=f"{wrap}:{os.environ['PATH']}",
               BERTH_DISK_DIR=os.path.join(run_dir, "disks"),
               BERTH_RUNTIME_DIR=os.path.join(run_dir, "run"))
    result = {"tool": tool}
    done = threading.Event()
    with Pod(env["_WWW"]):
        pod_ino = f"net:[{os.stat(f'/run/netns/{POD}').st_ino}]"
        log = open(os.path.join(run_dir, "log"), "w")
        t0 = time.time()
        proc = subprocess.Popen(["ip", "netns", "exec", POD] + cmd, env=env, stdout=subprocess.PIPE,
                                stderr=log, text=True, errors="replace")

        console_log = open(f"{keep}.console", "w") if keep else None

        def console():
            for line in proc.stdout:
                now = time.time()
                if console_log:
                    console_log.write(f"{now - t0:8.3f} {line}")
                if "berth-guest: lease" in line and "lease" not in result:
                    result["lease"] = now - t0
                    result["lease_line"] = line.strip()[line.find("berth-guest"):]
                if "berth-guest: ready" in line and "ready" not in result:
                    result["ready"] = now - t0

        def service():
            enter_netns(NODE)
            while not done.is_set():
                try:
                    # A short timeout: a SYN that reaches the guest before it has configured its
                    # address is dropped, and waiting for it would measure the poller.
                    with socket.create_connection((POD_IP, 22 if probe == "ssh" else 80),
                                                  timeout=0.05) as s:
                        s.settimeout(2)  # the answer itself may take a while under TCG
                        if probe == "ssh":
                            head = s.recv(64)  # sshd speaks first: "SSH-2.0-OpenSSH..."
                        else:
                            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                            head = s.recv(64)
                        if (probe == "ssh" and head.startswith(b"SSH-")) or b" 200 " in head:
                            result["service"] = time.time() - t0
                            cpu = qemu_cpu_seconds(f"{stamp}.pid")
                            if cpu is not None:
                                result["qemu_cpu"] = cpu
                            return
                except OSError:
                    pass
                time.sleep(0.01)

        peak = {"sum": 0, "by": {}}

        def sampler():
            while not done.is_set():
                by = non_qemu(pod_ino, "VmHWM")
                total = sum(by.values())
                if total > peak["sum"]:
                    peak.update(sum=total, by=by)
                time.sleep(0.002)

        threads = [threading.Thread(target=console, daemon=True),
                   threading.Thread(target=service, daemon=True)]
        if measure_memory:
            threads.append(threading.Thread(target=sampler, daemon=True))
        for t in threads:
            t.start()
        deadline = time.time() + limit
        while time.time() < deadline and proc.poll() is None and "service" not in result:
            time.sleep(0.05)
        if "service" in result:
            time.sleep(2)
            if measure_memory:
                result["resident_kib"] = non_qemu(pod_ino, "VmRSS")
            if keep and key:
                guest_report(key, f"{keep}.guest")
        done.set()
        try:
            with open(stamp) as f:
                result["exec"] = float(f.readline()) - t0
        except (OSError, ValueError):
            pass
        if measure_memory:
            result["peak_kib"] = peak
        # Stop: berth's fast stop (SIGQUIT); the baseline's QEMU (its exec'd entrypoint) and dnsmasq.
        if tool == "berth":
            proc.send_signal(signal.SIGQUIT)
        else:
            proc.terminate()
            try:
                with open(os.path.join(env["BERTH_RUNTIME_DIR"], "dnsmasq.pid")) as f:
                    os.kill(int(f.read()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        for t in threads:
            t.join(timeout=2)
        if keep:
            console_log.close()
            shutil.copy(os.path.join(run_dir, "log"), f"{keep}.log")
            shutil.copy(f"{stamp}.args", f"{keep}.qemu-args")
        if "service" not in result:
            with open(os.path.join(run_dir, "log")) as f:
                result["error"] = f.read()[-2000:]
    shutil.rmtree(run_dir, ignore_errors=True)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--berth", default=os.path.join(ROOT, "build/supervisor/berth"))
    ap.add_argument("--json")
    ap.add_argument("--cloud-image", action="store_true",
                    help="boot the Debian cloud image to sshd instead of the test guest")
    ap.add_argument("--memory", default=None, help="VM_MEMORY for both (default 256M, 1G cloud)")
    ap.add_argument("--cpus", default="1", help="VM_CPUS for both")
    ap.add_argument("--keep", help="a folder to keep each run's console (timed), log, QEMU command "
                    "line and, for the cloud image, the guest's boot report over SSH")
    ap.add_argument("--accel", default=None, help="berth's VM_ACCEL (default tcg; auto for the "
                    "cloud image); the baseline always runs accel=tcg")
    args = ap.parse_args()
    cloud = args.cloud_image
    memory_size = args.memory or ("1G" if cloud else "256M")
    accel = args.accel or ("auto" if cloud else "tcg")
    probe, limit = ("ssh", 400) if cloud else ("http", 120)
    if cloud:
        guest = subprocess.run([f"{ROOT}/test/cloudimage/build-cloud-image.sh"], check=True,
                               capture_output=True, text=True).stdout.strip().splitlines()[-1]
    else:
        guest = subprocess.run([f"{ROOT}/test/guest/build-guest.sh"], check=True,
                               capture_output=True, text=True).stdout.strip()
    work = tempfile.mkdtemp(prefix="berth-startup-", dir="/var/tmp")
    os.chmod(work, 0o711)  # traversable for QEMU's user, as /var/lib/berth on a node
    try:
        www = os.path.join(work, "www")
        os.makedirs(www)
        shutil.copy(guest, os.path.join(www, "guest.qcow2"))
        sha = subprocess.run(["sha256sum", os.path.join(www, "guest.qcow2")], check=True,
                             capture_output=True, text=True).stdout.split()[0]
        key = None
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
        if args.keep and cloud:
            key = os.path.join(work, "key")
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
        with open(os.path.join(work, "user.sh"), "w") as f:
            if cloud:
                f.write("#cloud-config\nruncmd:\n  - [sh, -c, 'echo bench > /var/tmp/bench']\n")
                if key:
                    with open(f"{key}.pub") as pub:
                        f.write(f"ssh_authorized_keys:\n  - {pub.read().strip()}\n")
            else:
                f.write('#!/bin/sh\necho "hello from user-data" > /www/value\n')
        with open(os.path.join(work, "meta.json"), "w") as f:
            f.write('{"uuid": "bench-0", "hostname": "bench-vm"}\n')
        sh(f"{ROOT}/test/e2e/configmap.sh", f"{work}/userdata", f"userdata={work}/user.sh")
        sh(f"{ROOT}/test/e2e/configmap.sh", f"{work}/metadata", f"metadata={work}/meta.json")
        tools = {
            "berth": [os.path.abspath(args.berth)],
            "baseline": [os.path.join(ROOT, "bench/baseline/startvm.sh")],
        }
        envs = {}
        with open(f"{work}/vnc-password", "w") as f:  # VNC is on, as in a pod: it needs a password
            f.write("bench-vnc\n")
        for tool in tools:
            envs[tool] = dict(os.environ, _WWW=www, IMG_SOURCE=f"http://{NODE_IP}:8080/guest.qcow2",
                              IMG_CHECKSUM=f"sha256:{sha}", BERTH_IMAGE_DIR=f"{work}/{tool}-images",
                              BERTH_USERDATA=f"{work}/userdata", BERTH_METADATA=f"{work}/metadata",
                              BERTH_NETWORKDATA=f"{work}/none", VM_ACCEL=accel, VM_MEMORY=memory_size,
                              VM_CPUS=args.cpus,
                              BERTH_VNC_PASSWORD_FILE=f"{work}/vnc-password")
        runs = {tool: [] for tool in tools}
        for i in range(args.runs + 1):
            for tool, cmd in tools.items():
                keep = os.path.join(args.keep, f"{i}-{tool}") if args.keep else None
                r = one_run(tool, cmd, envs[tool], work, measure_memory=False, probe=probe,
                            limit=limit, keep=keep, key=key)
                if "error" in r:
                    print(f"startup: {tool} run {i} failed: {r['error']}", file=sys.stderr)
                    return 1
                label = "fills the cache, not counted" if i == 0 else f"run {i}"
                lease = f"{r['lease']:.2f} s" if "lease" in r else "-"
                cpu = f", QEMU CPU {r['qemu_cpu']:.2f} s" if "qemu_cpu" in r else ""
                print(f"startup: {tool:8s} {label}: exec {r['exec'] * 1000:.1f} ms, lease "
                      f"{lease}, service {r['service']:.2f} s{cpu}", file=sys.stderr)
                if i > 0:
                    runs[tool].append(r)
        memory = {}
        if not cloud:
            for tool, cmd in tools.items():
                r = one_run(tool, cmd, envs[tool], work, measure_memory=True)
                memory[tool] = {"peak": r.get("peak_kib"), "resident": r.get("resident_kib")}
                print(f"startup: {tool:8s} memory: peak {r['peak_kib']['sum']} KiB "
                      f"{r['peak_kib']['by']}, resident {r.get('resident_kib')}", file=sys.stderr)
        summary = {"runs": args.runs, "lease_lines": {}, "memory": memory, "guest":
                   "cloud" if cloud else "test", "probe": probe, "memory_size": memory_size,
                   "cpus": args.cpus, "berth_accel": accel,
                   "all": {tool: [r["service"] for r in runs[tool]] for tool in tools}}
        keys = [key for key in (("exec", "service", "qemu_cpu") if cloud else
                                ("exec", "lease", "service", "qemu_cpu"))
                if all(key in r for tool in tools for r in runs[tool])]
        for tool in tools:
            if not cloud:
                summary["lease_lines"][tool] = runs[tool][-1]["lease_line"]
            for key in keys:
                values = sorted(r[key] for r in runs[tool])
                summary[f"{tool}_{key}"] = {"median": statistics.median(values), "min": values[0],
                                            "max": values[-1]}
        for key in keys:
            b, s = summary[f"berth_{key}"]["median"], summary[f"baseline_{key}"]["median"]
            what = "QEMU CPU to service" if key == "qemu_cpu" else f"start -> {key}"
            print(f"{what:19s} median of {args.runs}: berth {b * 1000:8.1f} ms   baseline "
                  f"{s * 1000:8.1f} ms   baseline/berth {s / b:5.2f}x")
        for tool in summary["lease_lines"]:
            print(f"{tool} lease: {summary['lease_lines'][tool]}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(summary, f, indent=1)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
