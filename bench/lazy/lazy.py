#!/usr/bin/env python3
"""IMG_LAZY side by side: start -> the guest's service at the pod IP for one large image served over
a rate-limited link, with a cold image cache every run, for three methods in turn:
  lazy      berth with IMG_LAZY=yes (QEMU starts at once and reads the image through berth's NBD
            export while the rest downloads behind it);
  full      berth with IMG_LAZY=no (the whole image is downloaded and checked, then QEMU starts);
  baseline  bench/baseline/startvm.sh (the seed's way: curl, sha256sum, then QEMU).
The image is the built-in test guest (test/guest/build-guest.sh) copied and padded with zeros to
--mib MiB (the file grows; QEMU never reads past the qcow2 clusters, so the padding only makes the
download long; the shared cache is never touched). It is served by busybox httpd (answers Range)
in the node namespace of a Calico-style pod network (test/e2e/podnet.sh, via bench/startup.py's
Pod), with `tc tbf` at --mbit on the node's veth (node -> pod). Each run is a fresh pod, a fresh
image cache, pet disk and runtime folder. Times are from just before the tool starts to the first
HTTP 200 from the guest's web server at the pod IP (polled from the node every 10 ms), as in
bench/startup.py. For berth, /metrics (pod IP, port 9250) is read when the service answers; for
lazy, again once berth_image_lazy_verified is 1 (the fill ended and matched IMG_CHECKSUM), which
gives the guest's on-demand share of the bytes.

  bench/lazy/lazy.py [--runs 3] [--mbit 200] [--mib 1024] [--berth PATH] [--json OUT]
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
import startup  # noqa: E402  (Pod, enter_netns and the pod's addresses)

METHODS = ("lazy", "full", "baseline")
METRICS = ("berth_image_lazy_on_demand_bytes_total", "berth_image_lazy_fill_bytes_total",
           "berth_image_lazy_present_bytes", "berth_image_lazy_size_bytes",
           "berth_image_lazy_verified")


def metrics():
    """The lazy-image counters from berth's /metrics at the pod IP, asked from the node."""
    out = subprocess.run(["ip", "netns", "exec", startup.NODE, "curl", "-s", "-m", "5",
                          f"http://{startup.POD_IP}:9250/metrics"], capture_output=True, text=True)
    values = {}
    for line in out.stdout.splitlines():
        m = re.match(r"^(\w+)(?:\{[^}]*\})?\s+(\S+)$", line)
        if m and m.group(1) in METRICS:
            values[m.group(1)] = float(m.group(2))
    return values


def throttle(mbit):
    """tc tbf on the node's veth: everything from the node to the pod (the image) at MBIT."""
    burst = max(64 * 1024, mbit * 1_000_000 // 8 // 100)  # at least 10 ms of the rate
    startup.sh("ip", "netns", "exec", startup.NODE, "tc", "qdisc", "add", "dev", "cali0", "root",
               "tbf", "rate", f"{mbit}mbit", "burst", str(burst), "latency", "50ms")


def stop(method, proc, runtime):
    if method == "baseline":
        proc.terminate()
        try:
            with open(os.path.join(runtime, "dnsmasq.pid")) as f:
                os.kill(int(f.read()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
    else:
        proc.send_signal(signal.SIGQUIT)  # berth's fast stop
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def one_run(method, cmd, env, work, mbit, limit, fill_limit):
    run_dir = tempfile.mkdtemp(dir=work)
    os.chmod(run_dir, 0o711)  # berth's QEMU runs as BERTH_QEMU_USER and opens its disk below here
    env = dict(env, BERTH_IMAGE_DIR=os.path.join(run_dir, "images"),  # a cold cache every run
               BERTH_DISK_DIR=os.path.join(run_dir, "disks"),
               BERTH_RUNTIME_DIR=os.path.join(run_dir, "run"))
    if method != "baseline":
        env["IMG_LAZY"] = "yes" if method == "lazy" else "no"
    result = {"method": method}
    done = threading.Event()
    try:
        with startup.Pod(env["_WWW"]):
            throttle(mbit)
            log_path = os.path.join(run_dir, "log")
            log = open(log_path, "w")
            t0 = time.time()
            proc = subprocess.Popen(["ip", "netns", "exec", startup.POD] + cmd, env=env,
                                    stdout=subprocess.PIPE, stderr=log, text=True,
                                    errors="replace")

            def console():
                for line in proc.stdout:
                    if "berth-guest: ready" in line and "ready" not in result:
                        result["ready"] = time.time() - t0

            def service():
                startup.enter_netns(startup.NODE)
                while not done.is_set():
                    try:
                        with socket.create_connection((startup.POD_IP, 80), timeout=0.05) as s:
                            s.settimeout(2)
                            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                            if b" 200 " in s.recv(64):
                                result["service"] = time.time() - t0
                                return
                    except OSError:
                        pass
                    time.sleep(0.01)

            threads = [threading.Thread(target=f, daemon=True) for f in (console, service)]
            for t in threads:
                t.start()
            deadline = t0 + limit
            while time.time() < deadline and proc.poll() is None and "service" not in result:
                time.sleep(0.05)
            done.set()
            if "service" in result and method != "baseline":
                result["at_service"] = metrics()
            if "service" in result and method == "lazy":
                # The fill goes on behind the guest: wait until it is complete and verified.
                end = time.time() + fill_limit
                while time.time() < end and proc.poll() is None:
                    m = metrics()
                    if m.get("berth_image_lazy_verified") == 1:
                        result["fill_done"] = time.time() - t0
                        result["after_fill"] = m
                        break
                    time.sleep(0.5)
            stop(method, proc, env["BERTH_RUNTIME_DIR"])
            log.close()
            for t in threads:
                t.join(timeout=2)
            with open(log_path, errors="replace") as f:
                text = f.read()
            if method == "lazy" and "IMG_LAZY: a full download first" in text:
                result["error"] = "IMG_LAZY fell back to the full download:\n" + text[-2000:]
            elif "service" not in result:
                result["error"] = text[-2000:]
            elif method == "lazy" and "after_fill" not in result:
                result["error"] = "the lazy fill did not end verified:\n" + text[-2000:]
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    return result


def spread(values):
    values = sorted(values)
    return {"median": statistics.median(values), "min": values[0], "max": values[-1],
            "all": values}


def summarize(runs, args, size):
    s = {"runs": args.runs, "mbit": args.mbit, "image_bytes": size, "target_speedup": 5.0,
         "per_run": runs}
    for method in METHODS:
        s[method] = spread([r["service"] for r in runs[method]])
    lazy = runs["lazy"]
    s["lazy_fill_done"] = spread([r["fill_done"] for r in lazy])
    s["lazy_ready"] = spread([r["ready"] for r in lazy if "ready" in r] or [0])
    on_demand = [r["after_fill"]["berth_image_lazy_on_demand_bytes_total"] for r in lazy]
    fill = [r["after_fill"]["berth_image_lazy_fill_bytes_total"] for r in lazy]
    at_service = [r["at_service"].get("berth_image_lazy_on_demand_bytes_total", 0) for r in lazy]
    s["on_demand_bytes"] = spread(on_demand)
    s["on_demand_bytes_at_service"] = spread(at_service)
    s["fill_bytes"] = spread(fill)
    s["on_demand_share"] = spread([o / (o + f) for o, f in zip(on_demand, fill)])
    s["speedup_full"] = s["full"]["median"] / s["lazy"]["median"]
    s["speedup_baseline"] = s["baseline"]["median"] / s["lazy"]["median"]
    s["target_met"] = s["speedup_full"] >= s["target_speedup"]
    return s


def print_summary(s):
    mib = s["image_bytes"] / 2**20
    print(f"lazy image: {mib:.0f} MiB image at {s['mbit']} Mbit/s, {s['runs']} runs per method, "
          "start -> guest service at the pod IP (median, min-max):")
    for method in METHODS:
        e = s[method]
        print(f"  {method:8s} {e['median']:7.2f} s  ({e['min']:.2f}-{e['max']:.2f} s)  runs: "
              + ", ".join(f"{r['service']:.2f}" for r in s["per_run"][method]))
    f = s["lazy_fill_done"]
    print(f"  lazy fill complete and verified after {f['median']:.2f} s ({f['min']:.2f}-"
          f"{f['max']:.2f} s)")
    od, share = s["on_demand_bytes"], s["on_demand_share"]
    print(f"  on demand: {s['on_demand_bytes_at_service']['median'] / 2**20:.1f} MiB when the "
          f"service answered, {od['median'] / 2**20:.1f} MiB in all "
          f"({od['min'] / 2**20:.1f}-{od['max'] / 2**20:.1f}); fill "
          f"{s['fill_bytes']['median'] / 2**20:.1f} MiB; on-demand share {share['median'] * 100:.2f} % "
          f"({share['min'] * 100:.2f}-{share['max'] * 100:.2f} %)")
    print(f"  speed-up full/lazy {s['speedup_full']:.2f}x, baseline/lazy "
          f"{s['speedup_baseline']:.2f}x; target lazy >= {s['target_speedup']:.0f}x faster than "
          f"the full download: {'met' if s['target_met'] else 'not met'}")


def report(s, json_path):
    print_summary(s)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(s, f, indent=1)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mbit", type=int, default=200)
    ap.add_argument("--mib", type=int, default=1024, help="the padded image's size")
    ap.add_argument("--berth", default=os.path.join(ROOT, "build/supervisor/berth"))
    ap.add_argument("--json")
    args = ap.parse_args()
    guest = subprocess.run([f"{ROOT}/test/guest/build-guest.sh"], check=True,
                           capture_output=True, text=True).stdout.strip()
    work = tempfile.mkdtemp(prefix="berth-lazy-bench-", dir="/var/tmp")
    os.chmod(work, 0o711)
    try:
        www = os.path.join(work, "www")
        os.makedirs(www)
        image = os.path.join(www, "guest.qcow2")
        shutil.copy(guest, image)
        size = max(os.path.getsize(image), args.mib * 2**20)
        os.truncate(image, size)  # zeros past the qcow2's end: QEMU never reads them
        sha = subprocess.run(["sha256sum", image], check=True, capture_output=True,
                             text=True).stdout.split()[0]
        with open(os.path.join(work, "user.sh"), "w") as f:
            f.write('#!/bin/sh\necho "hello from user-data" > /www/value\n')
        with open(os.path.join(work, "meta.json"), "w") as f:
            f.write('{"uuid": "bench-0", "hostname": "bench-vm"}\n')
        startup.sh(f"{ROOT}/test/e2e/configmap.sh", f"{work}/userdata", f"userdata={work}/user.sh")
        startup.sh(f"{ROOT}/test/e2e/configmap.sh", f"{work}/metadata",
                   f"metadata={work}/meta.json")
        with open(f"{work}/vnc-password", "w") as f:
            f.write("bench-vnc\n")
        env = dict(os.environ, _WWW=www, IMG_SOURCE=f"http://{startup.NODE_IP}:8080/guest.qcow2",
                   IMG_CHECKSUM=f"sha256:{sha}", BERTH_USERDATA=f"{work}/userdata",
                   BERTH_METADATA=f"{work}/metadata", BERTH_NETWORKDATA=f"{work}/none",
                   VM_ACCEL="tcg", VM_MEMORY="256M", VM_CPUS="1",
                   BERTH_VNC_PASSWORD_FILE=f"{work}/vnc-password")
        cmds = {"lazy": [os.path.abspath(args.berth)], "full": [os.path.abspath(args.berth)],
                "baseline": [os.path.join(ROOT, "bench/baseline/startvm.sh")]}
        download = size * 8 / (args.mbit * 1e6)
        limit, fill_limit = 3 * download + 240, 3 * download + 120
        runs = {m: [] for m in METHODS}
        for i in range(1, args.runs + 1):
            for method in METHODS:
                r = one_run(method, cmds[method], env, work, args.mbit, limit, fill_limit)
                if "error" in r:
                    print(f"lazy bench: {method} run {i} failed: {r['error']}", file=sys.stderr)
                    return 1
                extra = ""
                if method == "lazy":
                    extra = (f", fill verified at {r['fill_done']:.2f} s, on demand "
                             f"{r['after_fill']['berth_image_lazy_on_demand_bytes_total'] / 2**20:.1f}"
                             f" MiB, fill "
                             f"{r['after_fill']['berth_image_lazy_fill_bytes_total'] / 2**20:.1f} MiB")
                print(f"lazy bench: {method:8s} run {i}: service {r['service']:.2f} s{extra}",
                      file=sys.stderr, flush=True)
                runs[method].append(r)
        return report(summarize(runs, args, size), args.json)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
