#!/usr/bin/env python3
"""The burst and the report of bench/density/run.sh (which sets up the cluster and renders the chart).

Applies every rendered object but the StatefulSets, then creates the StatefulSets one every
--gap-ms, waits until every VM's pod is Ready (or --timeout), and reports per VM and as
P50/P95/max: pod created -> QEMU running (berth's "QEMU running as pid" line), -> the guest's DHCP
lease (berth's "the guest took its lease" line), -> pod Ready (the Ready condition). The log
lines' times are the container runtime's (kubectl logs --timestamps, ns); the pod's creation and
Ready times are the API's (1 s resolution). Memory from each pod's cgroup (v1 memory controller):
working set (usage minus inactive file pages, what kubelet evicts on), and the RSS of berth and of
QEMU inside it; beside KubeVirt's formula for the same VM.
"""
import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

MIB = 1024 * 1024


def log(msg):
    print(f"density: {msg}", file=sys.stderr, flush=True)


def ts(text):
    """RFC 3339 (API or runtime, up to ns) -> seconds since the epoch."""
    text = text.strip().replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        frac = "".join(c for c in rest if c.isdigit())
        tz = rest[len(frac):]
        text = f"{head}.{frac[:6]}{tz}"
    return datetime.datetime.fromisoformat(text).timestamp()


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def kubevirt_overhead_mib(ram_mib, vcpus):
    """KubeVirt's virt-launcher overhead: 240 MiB fixed + RAM/512 (page tables) + 8 MiB per vCPU
    + ~40 MiB (the compute container's extras: virt-launcher's monitor, QEMU's own allocations)."""
    return 240 + ram_mib / 512 + 8 * vcpus + 40


def cgroup_memory(uid):
    base = "/sys/fs/cgroup/memory/berth-cluster/kubepods"
    for qos in ("", "burstable", "besteffort"):
        d = os.path.join(base, qos, f"pod{uid}")
        if os.path.isdir(d):
            break
    else:
        return None
    with open(os.path.join(d, "memory.usage_in_bytes")) as f:
        usage = int(f.read())
    stat = {}
    with open(os.path.join(d, "memory.stat")) as f:
        for line in f:
            k, v = line.split()
            stat[k] = int(v)
    rss = {}
    for dirpath, _, files in os.walk(d):
        if "cgroup.procs" not in files:
            continue
        with open(os.path.join(dirpath, "cgroup.procs")) as f:
            for pid in f.read().split():
                try:
                    with open(f"/proc/{pid}/comm") as c:
                        comm = c.read().strip()
                    with open(f"/proc/{pid}/status") as s:
                        kb = next(int(l.split()[1]) for l in s if l.startswith("VmRSS:"))
                except (OSError, StopIteration):
                    continue
                rss[comm] = rss.get(comm, 0) + kb * 1024
    return {
        "working_set": usage - stat.get("total_inactive_file", 0),
        "rss": stat.get("total_rss", 0),
        "cache": stat.get("total_cache", 0),
        "qemu_rss": sum(v for k, v in rss.items() if k.startswith("qemu")),
        "berth_rss": rss.get("berth", 0),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rendered", required=True)
    ap.add_argument("--ram", type=int, required=True)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--gap-ms", type=int, default=100)
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--json")
    args = ap.parse_args()
    kubectl = shlex.split(args.kubectl)

    def kc(*a, **kw):
        return subprocess.run(kubectl + list(a), check=True, capture_output=True, text=True, **kw).stdout

    docs = [d for d in yaml.safe_load_all(open(args.rendered)) if d]
    sets = [d for d in docs if d["kind"] == "StatefulSet"]
    rest = [d for d in docs if d["kind"] != "StatefulSet"]
    tmp = tempfile.mkdtemp(prefix="density-")
    with open(os.path.join(tmp, "rest.yaml"), "w") as f:
        yaml.safe_dump_all(rest, f)
    kc("apply", "-f", os.path.join(tmp, "rest.yaml"))
    files = []
    for s in sets:
        p = os.path.join(tmp, s["metadata"]["name"] + ".yaml")
        with open(p, "w") as f:
            yaml.safe_dump(s, f)
        files.append((s["metadata"]["name"], p))

    log(f"burst: {len(files)} StatefulSets, one every {args.gap_ms} ms")
    procs, t_burst = [], time.time()
    for i, (name, p) in enumerate(files):
        delay = t_burst + i * args.gap_ms / 1000 - time.time()
        if delay > 0:
            time.sleep(delay)
        procs.append(subprocess.Popen(kubectl + ["create", "-f", p], stdout=subprocess.DEVNULL))
    for pr in procs:
        if pr.wait() != 0:
            sys.exit("density: kubectl create failed")
    log(f"burst submitted in {time.time() - t_burst:.1f} s")

    pods = {name: f"{name}-0" for name, _ in files}
    deadline = t_burst + args.timeout
    ready = {}
    while time.time() < deadline:
        items = json.loads(kc("get", "pods", "-o", "json"))["items"]
        for it in items:
            for c in it["status"].get("conditions", []):
                if c["type"] == "Ready" and c["status"] == "True":
                    ready[it["metadata"]["name"]] = it
        if len(ready) == len(pods):
            break
        time.sleep(5)
    log(f"{len(ready)} of {len(pods)} pods Ready {time.time() - t_burst:.0f} s after the burst began")
    time.sleep(20)  # memory after the guests settled

    rows = []
    for name, pod in pods.items():
        it = json.loads(kc("get", "pod", pod, "-o", "json"))
        created = ts(it["metadata"]["creationTimestamp"])
        row = {"vm": name, "pod": pod, "ready": pod in ready}
        for c in it["status"].get("conditions", []):
            if c["type"] == "Ready" and c["status"] == "True":
                row["to_ready"] = ts(c["lastTransitionTime"]) - created
        logs = subprocess.run(kubectl + ["logs", "--timestamps", pod], capture_output=True, text=True).stdout
        for line in logs.splitlines():
            stamp, _, msg = line.partition(" ")
            if "QEMU running as pid" in msg and "to_qemu" not in row:
                row["to_qemu"] = ts(stamp) - created
            if "the guest took its lease" in msg and "to_lease" not in row:
                row["to_lease"] = ts(stamp) - created
        mem = cgroup_memory(it["metadata"]["uid"])
        if mem:
            row.update(mem)
            row["overhead_mib"] = mem["working_set"] / MIB - args.ram
        rows.append(row)

    kv = kubevirt_overhead_mib(args.ram, 1)
    print(f"\nN={len(pods)} VMs, {args.ram} MiB and 1 vCPU each, TCG; {len(ready)} Ready")
    print(f"{'':26} {'P50':>8} {'P95':>8} {'max':>8}")
    summary = {}
    for key, label in (("to_qemu", "created -> QEMU running"), ("to_lease", "created -> guest lease"),
                       ("to_ready", "created -> pod Ready")):
        v = [r[key] for r in rows if key in r]
        summary[key] = {"p50": pct(v, 50), "p95": pct(v, 95), "max": max(v) if v else float("nan"), "n": len(v)}
        s = summary[key]
        print(f"{label:26} {s['p50']:7.1f}s {s['p95']:7.1f}s {s['max']:7.1f}s  (n={s['n']})")
    for key, label in (("working_set", "pod working set"), ("qemu_rss", "QEMU RSS"), ("berth_rss", "berth RSS"),
                       ("overhead_mib", "working set - guest RAM")):
        v = [r[key] / (1 if key == "overhead_mib" else MIB) for r in rows if key in r]
        summary[key] = {"p50": pct(v, 50), "max": max(v) if v else float("nan")}
        print(f"{label:26} {pct(v, 50):7.1f} MiB median, {summary[key]['max']:.1f} MiB max")
    print(f"{'KubeVirt formula':26} {kv:7.1f} MiB (240 + {args.ram}/512 + 8 x 1 + 40)")
    summary["kubevirt_overhead_mib"] = kv
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "summary": summary, "ram_mib": args.ram}, f, indent=1)
    if len(ready) != len(pods):
        sys.exit(1)


if __name__ == "__main__":
    main()
