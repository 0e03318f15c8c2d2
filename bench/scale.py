#!/usr/bin/env python3
"""Many VMs on one machine: N berth supervisors side by side, each in its own pod-like namespace
(test/e2e/podnet.sh), all sharing one image cache, with idle guests. Root only.

Once every guest is ready and the machine has settled, it watches an idle window and reports, per
supervisor: CPU time used (the scheduler's on-CPU time of every thread, in nanoseconds), wake-ups (context switches), RSS,
and PSS and private memory from /proc/PID/smaps_rollup (shared libraries count once across all
supervisors in PSS); QEMU's RSS beside it for scale. Idle means the guest runs and nobody talks to
it, which is the state of almost every VM most of the time; a supervisor that polled would show up
here as CPU time and wake-ups.

  bench/scale.py [--vms N] [--window SECONDS] [--memory MiB] [--json OUT]

--vms 0 (the default) picks N from memory: as many as fit in 80 % of MemAvailable, judged by the
first VM's measured footprint, capped at --max-vms (40: an idle guest under TCG still costs its
QEMU a few per cent of a CPU, so on a 2-CPU machine the cap, not memory, is what limits N; the
report says which did).
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def stat_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def cpu_seconds(pid):
    """On-CPU time of every thread of the process, in ns resolution (the scheduler's own
    accounting in /proc/PID/task/TID/schedstat; utime+stime count whole 10 ms ticks, too coarse
    for a supervisor that sleeps)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # the thread ended
    return total / 1e9


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.split()[0] if value.split() else ""
    return out


def rollup(pid):
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":"):
                try:
                    out[parts[0][:-1]] = int(parts[1])
                except ValueError:
                    pass
    return out


def switches(pid):
    """Context switches of every thread of the process (a wake-up is at least one)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total


def qemu_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            for child in f.read().split():
                with open(f"/proc/{child}/comm") as c:
                    if c.read().startswith("qemu-system"):
                        return int(child)
    except OSError:
        pass
    return None


class Vm:
    def __init__(self, index, work, guest, berth, memory):
        self.name = f"bscale{index}"
        self.dir = os.path.join(work, self.name)
        os.makedirs(self.dir)
        subprocess.run([f"{ROOT}/test/e2e/podnet.sh", "up", self.name], check=True)
        password = os.path.join(self.dir, "vnc-password")
        with open(password, "w") as f:  # VNC is on, as in a pod, so it needs a password
            f.write("bench-vnc\n")
        env = dict(os.environ, IMG_SOURCE=guest, BERTH_IMAGE_DIR=os.path.join(work, "images"),
                   BERTH_VNC_PASSWORD_FILE=password,
                   BERTH_DISK_DIR=os.path.join(self.dir, "disks"),
                   BERTH_RUNTIME_DIR=os.path.join(self.dir, "run"),
                   BERTH_USERDATA=os.path.join(self.dir, "none"),
                   BERTH_METADATA=os.path.join(self.dir, "none"),
                   BERTH_NETWORKDATA=os.path.join(self.dir, "none"),
                   VM_ACCEL="tcg", VM_MEMORY=f"{memory}M")
        self.console = os.path.join(self.dir, "console")
        self.proc = subprocess.Popen(["ip", "netns", "exec", f"{self.name}-pod", berth], env=env,
                                     stdout=open(self.console, "w"),
                                     stderr=open(os.path.join(self.dir, "log"), "w"))

    def ready(self):
        with open(self.console, errors="replace") as f:
            return "berth-guest: ready" in f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        subprocess.run([f"{ROOT}/test/e2e/podnet.sh", "down", self.name])


def wait_ready(vms, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        dead = [v.name for v in vms if v.proc.poll() is not None]
        if dead:
            raise RuntimeError(f"supervisor exited early: {dead} (see its log)")
        if all(v.ready() for v in vms):
            return
        time.sleep(0.5)
    raise RuntimeError(f"not ready after {timeout} s: {[v.name for v in vms if not v.ready()]}")


def mem_available_mib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vms", type=int, default=0)
    ap.add_argument("--max-vms", type=int, default=40)
    ap.add_argument("--window", type=int, default=60)
    ap.add_argument("--memory", type=int, default=128, help="guest memory, MiB")
    ap.add_argument("--berth", default=os.path.join(ROOT, "build/supervisor/berth"))
    ap.add_argument("--json")
    args = ap.parse_args()
    berth = os.path.abspath(args.berth)
    guest = subprocess.run([f"{ROOT}/test/guest/build-guest.sh"], check=True, capture_output=True,
                           text=True).stdout.strip()
    work = tempfile.mkdtemp(prefix="berth-scale-", dir="/var/tmp")
    os.chmod(work, 0o711)  # traversable for QEMU's user, as /var/lib/berth on a node
    vms = []
    t_start = time.time()
    try:
        vms.append(Vm(0, work, guest, berth, args.memory))
        wait_ready(vms, 120)
        time.sleep(3)
        first_qemu = qemu_of(vms[0].proc.pid)
        footprint = (int(status(vms[0].proc.pid)["VmRSS"]) +
                     int(status(first_qemu)["VmRSS"])) // 1024 if first_qemu else 0
        by_memory = int(mem_available_mib() * 0.8 // max(footprint, 1)) + 1
        n = args.vms or min(by_memory, args.max_vms)
        limit = ("--vms" if args.vms else
                 "memory (80 % of MemAvailable)" if by_memory <= args.max_vms else
                 f"the --max-vms cap ({args.max_vms}); memory would allow {by_memory}")
        print(f"scale: first VM uses {footprint} MiB (berth + QEMU RSS); starting {n} VMs, limited "
              f"by {limit}", file=sys.stderr)
        for i in range(1, n):  # in waves of 4, so that TCG boots don't starve each other
            vms.append(Vm(i, work, guest, berth, args.memory))
            if i % 4 == 0:
                wait_ready(vms, 300)
        wait_ready(vms, 600)
        boot_s = time.time() - t_start
        print(f"scale: {n} guests ready after {boot_s:.0f} s; settling 10 s", file=sys.stderr)
        time.sleep(10)
        pids = [v.proc.pid for v in vms]
        qemus = [qemu_of(p) for p in pids]
        t0 = time.time()
        cpu0 = [cpu_seconds(p) for p in pids]
        sw0 = [switches(p) for p in pids]
        q0 = [stat_ticks(q) for q in qemus if q]
        time.sleep(args.window)
        elapsed = time.time() - t0
        cpu = [cpu_seconds(p) - a for p, a in zip(pids, cpu0)]
        wakeups = [(switches(p) - a) / elapsed for p, a in zip(pids, sw0)]
        qcpu = [(stat_ticks(q) - a) / TICK for q, a in zip([q for q in qemus if q], q0)]
        rss = [int(status(p)["VmRSS"]) for p in pids]
        roll = [rollup(p) for p in pids]
        pss = [r.get("Pss", 0) for r in roll]
        private = [r.get("Private_Clean", 0) + r.get("Private_Dirty", 0) for r in roll]
        qrss = [int(status(q)["VmRSS"]) for q in qemus if q]
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
        med = statistics.median
        out = {
            "vms": n, "limited_by": limit, "guest_mib": args.memory, "window_s": round(elapsed, 1),
            "boot_all_s": round(boot_s), "load1": float(load),
            "cpu_percent_median": 100 * med(cpu) / elapsed,
            "cpu_percent_max": 100 * max(cpu) / elapsed,
            "cpu_seconds_total": sum(cpu),
            "wakeups_per_s_median": med(wakeups), "wakeups_per_s_max": max(wakeups),
            "rss_kib_median": med(rss), "rss_kib_max": max(rss),
            "pss_kib_median": med(pss), "private_kib_median": med(private),
            "qemu_rss_kib_median": med(qrss) if qrss else None,
            "qemu_cpu_percent_median": 100 * med(qcpu) / elapsed if qcpu else None,
        }
        print(f"{n} idle VMs ({args.memory} MiB guests, TCG), {elapsed:.0f} s window, load {load}:")
        print(f"  berth CPU per supervisor: median {out['cpu_percent_median']:.4f} %, max "
              f"{out['cpu_percent_max']:.4f} % ({sum(cpu):.2f} CPU-s for all {n})")
        print(f"  berth wake-ups per supervisor: median {out['wakeups_per_s_median']:.2f}/s, max "
              f"{out['wakeups_per_s_max']:.2f}/s")
        print(f"  berth memory per supervisor: RSS median {med(rss) / 1024:.1f} MiB (max "
              f"{max(rss) / 1024:.1f}), PSS {med(pss) / 1024:.1f} MiB, private "
              f"{med(private) / 1024:.1f} MiB")
        if qrss:
            print(f"  QEMU per VM, for scale: RSS median {med(qrss) / 1024:.0f} MiB, CPU "
                  f"{out['qemu_cpu_percent_median']:.1f} %")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1)
        return 0
    finally:
        for v in vms:
            v.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
