#!/usr/bin/env python3
"""Turns the raw outputs of bench/run.sh (one folder) into docs/benchmarks.md on standard output.
Every figure comes from that folder; nothing here is typed in by hand except the targets, which
are the ones issues #10 and #24 set."""
import json
import os
import re
import subprocess
import sys


def first_line(*cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_gib = int(f.readline().split()[1]) / 1024 / 1024
    os_name = "?"
    if os.path.exists("/etc/os-release"):
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    kvm = "/dev/kvm present" if os.path.exists("/dev/kvm") else "no /dev/kvm"
    return (f"{os.cpu_count()} × {cpu}, {mem_gib:.0f} GiB, {os_name}, Linux {os.uname().release}; "
            f"{kvm} (Berth's guests run with VM_ACCEL=tcg, as the baseline's, where a section does not "
            "say otherwise)")


def ms(seconds):
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def ratio(baseline, berth, higher_is_better=False):
    if not baseline or not berth:
        return "–"
    r = berth / baseline if higher_is_better else baseline / berth
    return f"**{r:.1f}×**" if r >= 1 else f"{r:.2f}×"


def parse_dhcp(text):
    """{label: {...}} from bench/dhcp/run.sh's output."""
    out, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"== DNS: (\S+)", line)
        if m:
            cur = out.setdefault(m.group(1), {})
            continue
        m = re.match(r"== DHCP: (\S+): \d+ exchanges: DISCOVER-to-ACK median=([\d.]+)ms "
                     r"p90=([\d.]+)ms.*server turnaround median=([\d.]+)ms p90=([\d.]+)ms.*VmHWM:\s+(\d+)",
                     line)
        if m:
            out.setdefault("dhcp-" + m.group(1), {}).update(
                d2a=float(m.group(2)), d2a_p90=float(m.group(3)), turn=float(m.group(4)),
                turn_p90=float(m.group(5)), hwm=int(m.group(6)))
            cur = None
            continue
        if cur is None:
            continue
        if "over TCP" in line:
            m = re.search(r"Queries per second:\s+([\d.]+)", line)
            if m:
                cur["tcp_qps"] = float(m.group(1))
        elif "Queries per second" in line:
            cur["qps"] = float(line.split(":")[1])
        elif "Queries lost" in line:
            cur["lost"] = int(line.split(":")[1].split()[0])
        elif "at 2000 qps" in line:
            for key in ("p50", "p99"):
                m = re.search(key + r"=([\d.]+)ms", line)
                if m:
                    cur[key] = float(m.group(1))
        elif "after load" in line:
            m = re.search(r"VmHWM:\s+(\d+)", line)
            if m:
                cur["hwm"] = int(m.group(1))
    return out


def parse_drive(text):
    out = {}
    pats = {
        "curl_file": r"curl -o file && sha256sum file:\s+([\d.]+)s\s+(\d+) MiB/s\s+peak RSS (\d+)",
        "curl_sha": r"curl \| tee file \| sha256sum:\s+([\d.]+)s\s+(\d+) MiB/s\s+peak RSS (\d+)",
        "curl_ossl": r"curl \| tee file \| openssl dgst:\s+([\d.]+)s\s+(\d+) MiB/s\s+peak RSS (\d+)",
        "berth": r"berth drive-tool fetch \(fsync incl.\):\s+([\d.]+)s\s+(\d+) MiB/s\s+peak RSS (\d+)",
    }
    for key, pat in pats.items():
        m = re.search(pat, text)
        if m:
            out[key] = {"s": float(m.group(1)), "mibs": int(m.group(2)), "rss": int(m.group(3))}
    m = re.search(r"fetch: (\d+) MiB", text)
    out["size_mib"] = int(m.group(1)) if m else None
    m = re.search(r"berth peak RSS for a 64 MiB image:\s+(\d+)", text)
    out["rss_small"] = int(m.group(1)) if m else None
    for key, pat in {"iso_inproc": r"berth in-process.*?([\d.]+) ms",
                     "iso_proc": r"berth drive-tool iso process.*?([\d.]+) ms",
                     "iso_gen": r"genisoimage -J -R process.*?([\d.]+) ms"}.items():
        m = re.search(pat, text)
        out[key] = float(m.group(1)) if m else None
    return out


def parse_net(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r"(.+?)\s{2,}([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)$", line)
        if m:
            out[m.group(1).strip()] = [float(m.group(i)) for i in range(2, 6)] + [int(m.group(6))]
    m = re.match(r"(\d+) rounds", text)
    out["rounds"] = int(m.group(1)) if m else None
    return out


def console_section(p, c):
    n, b = c["native"], c["browser"]
    p("## The screen: browser viewer beside a native VNC client")
    p()
    p(f"`bench/console/run.sh`: the built-in guest's text console, the same VM for both. Native: "
      f"vncdotool {c['vncdotool']} straight to QEMU's VNC (the pod's 127.0.0.1:5900). Browser: "
      "Berth's screen page (noVNC) in headless Chromium, through berth's authenticated WebSocket "
      "proxy to QEMU's viewer socket. Keystroke to screen: from the key event (the keydown's "
      "timestamp in the page; the write of the key event for vncdotool) to the first paint of "
      "the echo (noVNC's flip onto the visible canvas; the end of the decoded update for "
      f"vncdotool), {n['latency']['n']} keys each, 'x' and Backspace in turn, each held 30 ms "
      "(released at once, any client's echo arrives ~80 ms later: QEMU's doing), with the "
      "guest's cursor hidden so that the echo is the only change. Idle: bytes received while nothing "
      "but the shell's blinking cursor changes.")
    p()
    p("| | native (vncdotool) | browser (noVNC via berth) | browser − native |")
    p("|---|---|---|---|")
    for key, label in (("median_ms", "keystroke to screen, median"), ("p90_ms", "p90"),
                       ("min_ms", "min"), ("max_ms", "max")):
        nv, bv = n["latency"][key], b["latency"][key]
        p(f"| {label} | {nv:.1f} ms | {bv:.1f} ms | {bv - nv:+.1f} ms |")
    ni, bi = n["idle"]["bytes_per_s"], b["idle"]["bytes_per_s"]
    p(f"| idle screen | {ni:.0f} B/s | {bi:.0f} B/s | {bi - ni:+.0f} B/s |")
    if "first_paint_ms" in b:
        p(f"| page load to first paint (cookie set, no login form) | | {b['first_paint_ms']:.0f} ms | |")
    p()
    p("Most of either latency is the guest (TCG) echoing the key and QEMU's display refresh "
      "(it polls the emulated VGA every 30 ms while there are changes); the column on the right "
      "is what the browser path adds: Chromium's input dispatch, the WebSocket hop through "
      "berth and noVNC's decoding and paint.")
    p()


def firmware_section(p, fw, separate_run=False):
    m = fw["modes"]
    bios = m["bios"]["median_s"]
    p(f"## Firmware: boot time per `VM_FIRMWARE`, and the memory a TPM adds ({fw['runs']} runs each)")
    p()
    p("`bench/firmware/run.sh`: berth's start to the guest's `berth-guest: ready` line, the same "
      "system in every mode (the built-in guest for `bios`; its UEFI variant, the same kernel and "
      "initramfs behind shim and GRUB, for the others), TCG, `VM_MEMORY=512M`, each boot in a "
      "fresh pod with a fresh pet disk (so UEFI's variables come from the template and the TPM is "
      "new), the modes in turn in each round. The guest's own lines are checked too: "
      "`secureboot=1` under `uefi-secure`, `secureboot=0` under `uefi`, a PCR extended with the TPM.")
    if separate_run:
        p()
        p("*Measured in a run of its own (`sudo bench/firmware/run.sh build "
          f"{fw['runs']}`), not in the run that wrote the rest of this page.*")
    p()
    p("| `VM_FIRMWARE` | start → ready, median | min–max | over `bios` |")
    p("|---|---|---|---|")
    labels = {"bios": "`bios` (SeaBIOS)", "uefi": "`uefi` (OVMF)",
              "uefi-secure": "`uefi-secure` (OVMF, Secure Boot, SMM)",
              "uefi-tpm": "`uefi` + `VM_TPM=yes` (swtpm, tpm-crb)"}
    for mode, label in labels.items():
        e = m[mode]
        over = "" if mode == "bios" else f"{e['median_s'] - bios:+.1f} s"
        p(f"| {label} | {e['median_s']:.1f} s | {e['min_s']:.1f}–{e['max_s']:.1f} s | {over} |")
    p()
    h, r = m["uefi-tpm"]["swtpm_hwm_kib"], m["uefi-tpm"]["swtpm_rss_kib"]
    p(f"swtpm ({fw['swtpm']}), read from `/proc/PID/status` once the guest is ready (OVMF has "
      "measured the boot, the guest has extended a PCR and written an NV index): peak resident "
      f"(VmHWM) {h['median'] / 1024:.1f} MiB ({h['min']}–{h['max']} KiB), resident (VmRSS) "
      f"{r['median'] / 1024:.1f} MiB, against the 53 MiB KubeVirt budgets for its swtpm. "
      "`vmconfig.tpm` in the chart asks for 16Mi more.")
    p()
    load = fw["load"]
    p(f"Load: other sessions' builds and QEMUs shared the 2 CPUs: the 1-minute load average as each "
      f"guest got ready was {load['median']:.1f} at the median ({load['min']:.1f}–{load['max']:.1f}), "
      f"with up to {load['other_qemus_max']} other QEMU(s) running, so the absolute times are "
      "longer than on an idle machine; the modes alternated, so the differences are fairer than "
      "the totals. Under TCG, OVMF's own start dominates what UEFI adds; Secure Boot adds SMM and "
      "the signature checks; the TPM adds swtpm's start and OVMF's measurements into it.")


DISK_LINE = re.compile(r"^(guest|host) (\S+) pass (\d+) write ([\d.]+) MiB/s read ([\d.]+) MiB/s "
                       r"rand4k ([\d.]+) ms/read spawn ([\d.]+) ms/read")


def parse_disks(text):
    """{label: {"write", "read", "rand", "spawn"}} from bench/disks/run.sh's disks.txt: the best
    of the passes for the rates, the lowest time per read (the passes warm caches alike on both
    sides)."""
    out = {}
    for line in text.splitlines():
        m = DISK_LINE.match(line.strip())
        if not m:
            continue
        d = out.setdefault(m.group(2), {"write": 0, "read": 0, "rand": None, "spawn": None})
        d["write"] = max(d["write"], float(m.group(4)))
        d["read"] = max(d["read"], float(m.group(5)))
        for key, value in (("rand", float(m.group(6))), ("spawn", float(m.group(7)))):
            d[key] = value if d[key] is None else min(d[key], value)
    return out


def disks_section(p, d, params, aio):
    size, reads, accel, repeat = (params.split() + ["?"] * 4)[:4]
    p("## Data disks: inside the guest against the host")
    p()
    p(f"`bench/disks/run.sh`: one VM (the built-in test guest, {accel.upper()}, 2 vCPUs, 512 MiB) "
      "with three data disks from `VM_DISKS`: a qcow2 file and a raw file, each in a folder, and a "
      f"loop device standing in for a Block volume (`host_device`, raw, `cache=none`, {aio or 'aio=?'}). "
      f"`bench/disks/io.sh`, the guest's user-data, runs busybox `dd` with O_DIRECT on each: "
      f"{size} MiB of random data written and read back {repeat} times in 1 MiB blocks, then {reads} reads of "
      "4 KiB at random offsets (one `dd` each), and as many 4 KiB `dd` reads of /dev/zero, which "
      "time a `dd`'s start alone. Then the same script on the host, against a file in the same "
      "folder (for the two files) and against the loop device itself (for the block disk). Best "
      "of two passes each. Ratio: guest ÷ host for rates, host ÷ guest for times.")
    p()
    p("| disk | seq. write | ratio | seq. read | ratio | random 4 KiB read, one dd each | ratio | "
      "a dd of /dev/zero |")
    p("|---|---|---|---|---|---|---|---|")
    host_of = {"bench-qcow2": "host-file", "bench-raw": "host-file", "bench-blk": "host-blk"}
    for label, title in (("bench-qcow2", "qcow2 file"), ("bench-raw", "raw file"),
                         ("bench-blk", "block (loop) device")):
        g, h = d.get(label), d.get(host_of[label])
        if not g or not h:
            continue
        p(f"| {title} | {g['write']:.0f} MiB/s | {ratio(h['write'], g['write'], True)} | "
          f"{g['read']:.0f} MiB/s | {ratio(h['read'], g['read'], True)} | "
          f"{g['rand']:.2f} ms | {ratio(h['rand'], g['rand'])} | {g['spawn']:.2f} ms |")
    for label, title in (("host-file", "host: a file in the same folder"),
                         ("host-blk", "host: the loop device")):
        h = d.get(label)
        if h:
            p(f"| {title} | {h['write']:.0f} MiB/s | | {h['read']:.0f} MiB/s | | "
              f"{h['rand']:.2f} ms | | {h['spawn']:.2f} ms |")
    p()
    if accel.lower() == "tcg":
        p("Under TCG the guest's CPU is emulated: the guest's kernel and busybox spend most of "
          "these times on instructions, not on the disk path, so the ratios say how much slower a "
          "TCG guest is, not what the virtio path costs; under KVM they are the figure to watch "
          "(this run used TCG).")
    p("busybox has no random-read tool, so each random read is a `dd` of its "
      "own: the random column is mostly that process's start (the last column: a `dd` of "
      "/dev/zero alone), and is a rough figure; fio is not in the shared test guest. O_DIRECT keeps "
      "the guest's page cache out of the way; on the host, `cache=none` keeps QEMU off the page "
      "cache for the block disk, while the two files go through it (`cache=writeback`), which is "
      "why their reads can come close to or beat the host's O_DIRECT reads. The loop device reads its backing file through "
      "the host's page cache too (a loop without direct I/O), so its reads, the guest's and the "
      "host's, come from memory: a real block volume's would not.")
    p()


def cloud_section(p, cloud):
    p(f"## A Debian cloud image to SSH: Berth against the seed's script ({cloud['runs']} runs "
      "each, alternating)")
    p()
    p(f"`bench/startup.py --cloud-image`: the Debian 12 cloud image test/cloudimage builds from "
      "Debian packages (cloud-init, sshd), the same cached image, the same user-data, "
      f"VM_MEMORY={cloud['memory_size']} and VM_CPUS={cloud['cpus']} for both, each run in a fresh "
      "pod with a fresh pet disk (so cloud-init's first boot runs every time), timed from the "
      "start of the tool to sshd's banner at the pod IP's port 22. The baseline is "
      "`bench/baseline/startvm.sh` (bash, curl, qemu-img, genisoimage, ip, iptables, dnsmasq, "
      "then `qemu-system-x86_64 -machine q35,accel=tcg -cpu max`); Berth ran with "
      f"VM_ACCEL={cloud['berth_accel']}. A first run of each, not counted, filled the caches.")
    p()
    p("| from start to | Berth | baseline | ratio |")
    p("|---|---|---|---|")
    rows = [("exec", "QEMU exec"), ("service", "sshd answering at the pod IP")]
    if "berth_qemu_cpu" in cloud:  # the CPU time QEMU used up to sshd's banner: the boot's work
        rows.append(("qemu_cpu", "sshd answering, in QEMU's CPU time (user + system)"))
    for key, what in rows:
        b, s = cloud[f"berth_{key}"], cloud[f"baseline_{key}"]
        p(f"| {what} | {ms(b['median'])} ({ms(b['min'])}–{ms(b['max'])}) | {ms(s['median'])} "
          f"({ms(s['min'])}–{ms(s['max'])}) | {ratio(s['median'], b['median'])} |")
    p()
    for tool in ("berth", "baseline"):
        p(f"Every run, {tool}: " + ", ".join(f"{v:.1f} s" for v in cloud["all"][tool]) + ".")
        p()


def lazy_section(p, lz):
    mib = lz["image_bytes"] / 2**20
    p(f"## First start over a slow link: `IMG_LAZY` against the full download ({lz['runs']} runs "
      "each, alternating)")
    p()
    p(f"`bench/lazy/run.sh`: the built-in test guest padded with zeros to a {mib:.0f} MiB image "
      "(QEMU never reads the padding), served by busybox httpd (Range) from the node namespace "
      f"with `tc tbf` at {lz['mbit']} Mbit/s on the node's veth; every run a fresh pod and a cold "
      "image cache; timed from the start of the tool to the guest's web server answering at the "
      "pod IP. Berth with `IMG_LAZY=yes` starts QEMU at once and serves the image to it over NBD "
      "while the rest downloads; with `IMG_LAZY=no` it downloads and checks the whole image "
      "first; the baseline (`bench/baseline/startvm.sh`) curls and sha256sums it first.")
    p()
    p("| method | start → service, median | min–max | ÷ lazy |")
    p("|---|---|---|---|")
    for key, label in (("lazy", "Berth, `IMG_LAZY=yes`"), ("full", "Berth, `IMG_LAZY=no`"),
                       ("baseline", "baseline (curl, then QEMU)")):
        e = lz[key]
        over = "" if key == "lazy" else f"{e['median'] / lz['lazy']['median']:.1f}×"
        p(f"| {label} | {e['median']:.1f} s | {e['min']:.1f}–{e['max']:.1f} s | {over} |")
    p()
    f, od, share = lz["lazy_fill_done"], lz["on_demand_bytes"], lz["on_demand_share"]
    p(f"With `IMG_LAZY=yes` the background fill was complete and verified against "
      f"`IMG_CHECKSUM` after {f['median']:.1f} s (median); by then the guest had pulled "
      f"{od['median'] / 2**20:.1f} MiB on demand ({lz['on_demand_bytes_at_service']['median'] / 2**20:.1f} "
      f"MiB when its service answered) and the fill {lz['fill_bytes']['median'] / 2**20:.1f} MiB: "
      f"an on-demand share of {share['median'] * 100:.2f} % of the bytes "
      "(`berth_image_lazy_on_demand_bytes_total` and `berth_image_lazy_fill_bytes_total`).")
    p()
    for key in ("lazy", "full", "baseline"):
        p(f"Every run, {key}: " + ", ".join(f"{v:.1f} s" for v in lz[key]["all"]) + ".")
        p()


def main(folder):
    read = lambda name: open(os.path.join(folder, name)).read()
    st = json.loads(read("startup.json"))
    scale = json.loads(read("scale.json"))
    dhcp = parse_dhcp(read("dhcp.txt"))
    drive = parse_drive(read("drive.txt"))
    net = parse_net(read("net.txt"))
    console_path = os.path.join(folder, "console.json")
    console = json.loads(read("console.json")) if os.path.exists(console_path) else None
    firmware_path = os.path.join(folder, "firmware.json")
    firmware = json.loads(read("firmware.json")) if os.path.exists(firmware_path) else None
    cloud = (json.loads(read("cloud.json")) if os.path.exists(os.path.join(folder, "cloud.json"))
             else None)
    lazy = (json.loads(read("lazy.json")) if os.path.exists(os.path.join(folder, "lazy.json"))
            else None)
    seconds = int(read("seconds")) if os.path.exists(os.path.join(folder, "seconds")) else None
    commit = read("commit").strip() if os.path.exists(os.path.join(folder, "commit")) else "?"
    p = print

    p("# Benchmarks: Berth beside what users would otherwise run")
    p()
    p("Written by `sudo bench/run.sh` (or `cmake --build build --target bench`); every figure below "
      "comes from one run of it, and each is measured beside its baseline in that same run. "
      "Ratios are baseline ÷ Berth for times and Berth ÷ baseline for rates, so **above 1× means "
      "Berth is better**.")
    p()
    p(f"- Machine: {machine()}.")
    p(f"- Build: {first_line('build/supervisor/berth', '--version')}, commit {commit}, Release.")
    p(f"- Baselines: {first_line('dnsmasq', '--version')}; {first_line('curl', '--version')}; "
      f"{first_line('genisoimage', '--version')}; {first_line('iptables', '--version')}; "
      f"{first_line('qemu-system-x86_64', '--version')}.")
    if seconds:
        p(f"- The whole run took {seconds // 60} min {seconds % 60} s.")
    p()

    # ---- targets ----
    b_exec, s_exec = st["berth_exec"]["median"], st["baseline_exec"]["median"]
    dn, dm = dhcp.get("berth", {}), dhcp.get("dnsmasq-nocache", {})
    curls = {k: drive[k] for k in ("curl_file", "curl_sha", "curl_ossl") if k in drive}
    best_curl = max(curls.values(), key=lambda v: v["mibs"]) if curls else None
    fetch_ratio = drive["berth"]["mibs"] / best_curl["mibs"] if best_curl and "berth" in drive else 0
    rss_mib = scale["rss_kib_max"] / 1024

    def verdict(ok):
        return "met" if ok else "**not met**"

    p("## Targets")
    p()
    p("| target | measured | |")
    p("|---|---|---|")
    p(f"| Berth's own start-up work ≥ 20× faster than the baseline's (start → QEMU exec) | "
      f"{ms(b_exec)} vs {ms(s_exec)}: {s_exec / b_exec:.1f}× | {verdict(s_exec / b_exec >= 20)} |")
    if dn and dm:
        p(f"| DNS forwarding ≥ dnsmasq's qps (UDP, no cache on either side) | {dn['qps']:.0f} vs "
          f"{dm['qps']:.0f} qps: {dn['qps'] / dm['qps']:.2f}× | {verdict(dn['qps'] >= dm['qps'])} |")
        p(f"| … with no worse p99 (at 2000 qps) | {dn['p99']:.2f} vs {dm['p99']:.2f} ms | "
          f"{verdict(dn['p99'] <= dm['p99'])} |")
    if best_curl:
        p(f"| Image fetch ≥ 0.9× curl's throughput (fastest curl pipeline, both with SHA-256) | "
          f"{drive['berth']['mibs']} vs {best_curl['mibs']} MiB/s: {fetch_ratio:.2f}× | "
          f"{verdict(fetch_ratio >= 0.9)} |")
        p(f"| … with bounded memory | peak RSS {drive['rss_small'] / 1024:.1f} MiB for 64 MiB, "
          f"{drive['berth']['rss'] / 1024:.1f} MiB for {drive['size_mib']} MiB | "
          f"{verdict(drive['berth']['rss'] < 1.2 * drive['rss_small'])} |")
    p(f"| Idle supervisor CPU ≈ 0 ({scale['vms']} VMs, {scale['window_s']:.0f} s) | median "
      f"{scale['cpu_percent_median']:.4f} %, max {scale['cpu_percent_max']:.4f} %; "
      f"{scale['wakeups_per_s_max']:.2f} wake-ups/s at most | "
      f"{verdict(scale['cpu_percent_max'] < 0.1)} |")
    p(f"| Idle supervisor RSS ≤ 16 MiB | max {rss_mib:.1f} MiB (PSS "
      f"{scale['pss_kib_median'] / 1024:.1f}, private {scale['private_kib_median'] / 1024:.1f}) | "
      f"{verdict(rss_mib <= 16)} |")
    if cloud:
        cb, cs = cloud["berth_service"]["median"], cloud["baseline_service"]["median"]
        p(f"| A Debian cloud image reaches SSH at the pod IP no later than under the seed's script "
          f"(median of {cloud['runs']}) | {cb:.1f} vs {cs:.1f} s | {verdict(cb <= cs)} |")
    if lazy:
        lf, ll, goal = lazy["full"]["median"], lazy["lazy"]["median"], lazy["target_speedup"]
        p(f"| A first start with `IMG_LAZY=yes` ≥ {goal:.0f}× faster than the full download at "
          f"{lazy['mbit']} Mbit/s ({lazy['image_bytes'] / 2**20:.0f} MiB image, start → service) | "
          f"{ll:.1f} vs {lf:.1f} s: {lf / ll:.1f}×; the guest pulled "
          f"{lazy['on_demand_share']['median'] * 100:.2f} % of the bytes on demand | "
          f"{verdict(lf / ll >= goal)} |")
    p()

    # ---- start-up ----
    p(f"## Whole start-up: Berth against the original approach ({st['runs']} runs each, median, "
      "min–max)")
    p()
    p("The baseline is `bench/baseline/startvm.sh`, a short bash entrypoint that does what the seed "
      "README describes: curl and sha256sum for the image, qemu-img for the pet overlay, "
      "genisoimage for a config-2 drive, ip for br0 and tap0, iptables for the 1:1 NAT (VNC "
      "excepted) and the MSS clamp, dnsmasq for DHCP and DNS, then `exec` QEMU with the same "
      "machine Berth starts. Both start in the same Calico-style pod namespace "
      "(`test/e2e/podnet.sh`), on the same 18 MB test guest, with the image already in their "
      "cache and no pet disk yet (a pod landing on a node that has the image); VM_ACCEL=tcg and "
      "256 MiB for both. Both hand the guest the same lease:")
    p()
    p(f"    berth:    {st['lease_lines']['berth']}")
    p(f"    baseline: {st['lease_lines']['baseline']}")
    p()
    p("| from start to | Berth | baseline | ratio |")
    p("|---|---|---|---|")
    for key, what in (("exec", "QEMU exec (the tool's own work)"),
                      ("lease", "the guest's first DHCP lease"),
                      ("service", "the guest's web server answering at the pod IP")):
        b, s = st[f"berth_{key}"], st[f"baseline_{key}"]
        p(f"| {what} | {ms(b['median'])} ({ms(b['min'])}–{ms(b['max'])}) | {ms(s['median'])} "
          f"({ms(s['min'])}–{ms(s['max'])}) | {ratio(s['median'], b['median'])} |")
    p()
    mem = st["memory"]

    def mib(kib):
        return f"{kib / 1024:.1f} MiB"

    def breakdown(d):
        return ", ".join(f"{k} {mib(v)}" for k, v in sorted(d.items(), key=lambda kv: -kv[1]))

    p("Memory of everything in the pod that is not QEMU (sampled every 2 ms: the largest sum of the "
      "processes' peak RSS; then what stays resident once the guest serves):")
    p()
    p("| | Berth | baseline |")
    p("|---|---|---|")
    p(f"| peak during start-up | {mib(mem['berth']['peak']['sum'])} "
      f"({breakdown(mem['berth']['peak']['by'])}) | {mib(mem['baseline']['peak']['sum'])} "
      f"({breakdown(mem['baseline']['peak']['by'])}) |")
    p(f"| resident while the VM runs | {mib(sum(mem['berth']['resident'].values()))} "
      f"({breakdown(mem['berth']['resident'])}) | "
      f"{mib(sum(mem['baseline']['resident'].values()))} "
      f"({breakdown(mem['baseline']['resident'])}) |")
    p()
    p("Berth's resident process does more than the baseline's dnsmasq: it also serves the health, "
      "metrics and control endpoints, holds QMP, watches the ConfigMaps and rebuilds the drive, and "
      "cleans up on exit. The baseline has none of these (no probes, no graceful shutdown, no "
      "config-drive updates, nothing removed when it stops).")
    p()

    if cloud:
        cloud_section(p, cloud)
    if lazy:
        lazy_section(p, lazy)

    # ---- components ----
    p("## Components, each against its baseline")
    p()
    if dn and dm:
        dc = dhcp.get("dnsmasq-cache150", {})
        p("DNS forwarding (`bench/dhcp/run.sh`; dnsperf from the VM's namespace through the "
          "server under test to an upstream in the node namespace; 20 000 distinct names):")
        p()
        p("| | Berth | dnsmasq `--cache-size=0` | ratio | dnsmasq, default cache |")
        p("|---|---|---|---|---|")
        p(f"| UDP qps, flat out (4 clients, 200 in flight, 10 s) | {dn['qps']:.0f} | {dm['qps']:.0f} | "
          f"{ratio(dm['qps'], dn['qps'], True)} | {dc.get('qps', 0):.0f} |")
        p(f"| queries lost | {dn.get('lost', '?')} | {dm.get('lost', '?')} | | {dc.get('lost', '?')} |")
        p(f"| p50 at 2000 qps | {dn['p50']:.3f} ms | {dm['p50']:.3f} ms | "
          f"{ratio(dm['p50'], dn['p50'])} | {dc.get('p50', 0):.3f} ms |")
        p(f"| p99 at 2000 qps | {dn['p99']:.3f} ms | {dm['p99']:.3f} ms | "
          f"{ratio(dm['p99'], dn['p99'])} | {dc.get('p99', 0):.3f} ms |")
        p(f"| TCP qps (4 pipelined connections) | {dn.get('tcp_qps', 0):.0f} | "
          f"{dm.get('tcp_qps', 0):.0f} | {ratio(dm.get('tcp_qps'), dn.get('tcp_qps'), True)} | "
          f"{dc.get('tcp_qps', 0):.0f} |")
        p(f"| peak RSS of the server after load | {mib(dn.get('hwm', 0))} | {mib(dm.get('hwm', 0))} "
          f"| | {mib(dc.get('hwm', 0))} |")
        p()
    bd, md = dhcp.get("dhcp-berth"), dhcp.get("dhcp-dnsmasq")
    if bd and md:
        p("DHCP (20 × `busybox udhcpc` in the VM's namespace, timed on the wire with tcpdump):")
        p()
        p("| | Berth | dnsmasq | ratio |")
        p("|---|---|---|---|")
        p(f"| DISCOVER → ACK, median (p90) | {bd['d2a']:.1f} ms ({bd['d2a_p90']:.1f}) | "
          f"{md['d2a']:.1f} ms ({md['d2a_p90']:.1f}) | {ratio(md['d2a'], bd['d2a'])} |")
        p(f"| server turnaround (DISCOVER → OFFER, REQUEST → ACK), median (p90) | "
          f"{bd['turn']:.3f} ms ({bd['turn_p90']:.3f}) | {md['turn']:.3f} ms ({md['turn_p90']:.3f}) | "
          f"{ratio(md['turn'], bd['turn'])} |")
        p()
        p("DISCOVER → ACK is mostly udhcpc's own pause between OFFER and REQUEST; the server's share "
          "is the turnaround row.")
        p()
    if "berth" in drive:
        p(f"Image fetch (`bench/drive/bench.sh`; {drive['size_mib']} MiB over HTTP on loopback, "
          "SHA-256 checked, best of 3; Berth's figure includes fsync and the rename, curl's do not):")
        p()
        p("| | time | throughput | peak RSS (largest process) | Berth ÷ it |")
        p("|---|---|---|---|---|")
        b = drive["berth"]
        p(f"| Berth (stream, hash, sparse write, fsync, rename) | {b['s']:.2f} s | {b['mibs']} MiB/s | "
          f"{mib(b['rss'])} | |")
        for key, label in (("curl_file", "`curl -o file && sha256sum file` (the seed's way)"),
                           ("curl_sha", "`curl \\| tee file \\| sha256sum`"),
                           ("curl_ossl", "`curl \\| tee file \\| openssl dgst -sha256`")):
            if key in drive:
                c = drive[key]
                p(f"| {label} | {c['s']:.2f} s | {c['mibs']} MiB/s | {mib(c['rss'])} | "
                  f"{ratio(c['mibs'], b['mibs'], True)} |")
        p()
        p("Config drive (the same three files, configdrive layout):")
        p()
        p("| | per build | genisoimage ÷ it (process against process) |")
        p("|---|---|---|")
        p(f"| Berth, in-process, 200 builds in one process (what the supervisor does per build: "
          f"read, validate, build, write the file atomically) | {drive['iso_inproc']:.2f} ms | |")
        p(f"| Berth's drive-tool as a process, once per build (the same, plus exec and dynamic "
          f"linking) | {drive['iso_proc']:.2f} ms | {ratio(drive['iso_gen'], drive['iso_proc'])} |")
        p(f"| `genisoimage -J -R` as a process, once per build | {drive['iso_gen']:.2f} ms | |")
        p()
    if net:
        p(f"Bridge, tap and NAT (`net_bench`, {net.get('rounds')} rounds in a scratch namespace "
          "shaped like a Calico pod; p50, p90 in ms):")
        p()
        p("| | setup p50 | setup p90 | teardown p50 | teardown p90 | processes run | setup: "
          "baseline ÷ Berth |")
        p("|---|---|---|---|---|---|---|")
        berth_row = next((v for k, v in net.items() if k.startswith("berth")), None)
        for k, v in net.items():
            if k == "rounds":
                continue
            r = "" if k.startswith("berth") or not berth_row else ratio(v[0], berth_row[0])
            p(f"| {k} | {v[0]:.2f} | {v[1]:.2f} | {v[2]:.2f} | {v[3]:.2f} | {v[4]} | {r} |")
        p()
        teardowns = {k: v[2] for k, v in net.items() if k != "rounds"}
        if teardowns:
            low, high = min(teardowns.values()), max(teardowns.values())
            fastest = min(teardowns, key=teardowns.get)
            slowest = max(teardowns, key=teardowns.get)
            p(f"Teardown p50 ranges from {low:.2f} ms ({fastest}) to {high:.2f} ms ({slowest}) in "
              "this run; every method's teardown includes the kernel deleting the bridge and tap "
              "(an RCU grace period each).")
            p()

    if console:
        console_section(p, console)
    if firmware:
        firmware_section(p, firmware)
    if os.path.exists(os.path.join(folder, "disks.txt")):
        params = read("disks.params") if os.path.exists(os.path.join(folder, "disks.params")) else ""
        aio = read("aio").strip() if os.path.exists(os.path.join(folder, "aio")) else ""
        disks_section(p, parse_disks(read("disks.txt")), params, aio)

    # ---- scale ----
    p(f"## Many VMs on one machine ({scale['vms']} idle VMs side by side)")
    p()
    p(f"`bench/scale.py`: {scale['vms']} supervisors, each in its own pod namespace, sharing one "
      f"image cache, {scale['guest_mib']} MiB guests under TCG; all ready after "
      f"{scale['boot_all_s']} s; then {scale['window_s']:.0f} s of idle. N was limited by "
      f"{scale['limited_by']}.")
    p()
    p("| per supervisor | median | max |")
    p("|---|---|---|")
    p(f"| CPU while its guest idles (on-CPU time of all its threads) | "
      f"{scale['cpu_percent_median']:.4f} % | {scale['cpu_percent_max']:.4f} % |")
    p(f"| wake-ups (context switches, all threads) | {scale['wakeups_per_s_median']:.2f}/s | "
      f"{scale['wakeups_per_s_max']:.2f}/s |")
    p(f"| RSS | {scale['rss_kib_median'] / 1024:.1f} MiB | {scale['rss_kib_max'] / 1024:.1f} MiB |")
    p(f"| PSS (shared libraries counted once across supervisors) | "
      f"{scale['pss_kib_median'] / 1024:.1f} MiB | |")
    p(f"| private memory (Berth's own per VM) | {scale['private_kib_median'] / 1024:.1f} MiB | |")
    if scale.get("qemu_rss_kib_median"):
        p(f"| for scale: QEMU's RSS / CPU | {scale['qemu_rss_kib_median'] / 1024:.0f} MiB / "
          f"{scale['qemu_cpu_percent_median']:.1f} % | |")
    p()
    p("## Reading the figures")
    p()
    exec_ratio = s_exec / b_exec
    service_ratio = st["baseline_service"]["median"] / st["berth_service"]["median"]
    p(f"- **Start-up.** Berth's own work before QEMU starts took {ms(b_exec)} against the "
      f"baseline's {ms(s_exec)} ({exec_ratio:.1f}×); from start to a serving guest the ratio is "
      f"{service_ratio:.2f}×, because QEMU and the guest's boot under TCG take "
      f"{ms(st['berth_service']['median'] - b_exec)} of Berth's {ms(st['berth_service']['median'])}.")
    if dn and dm:
        qps_ratio = dn["qps"] / dm["qps"]
        p(f"- **DNS.** Berth sends each forwarded query with a random ID from a random source port "
          f"(RFC 5452), from a rotating pool of upstream sockets; its UDP rate was "
          f"{qps_ratio:.2f}× dnsmasq's without a cache, p99 at 2000 qps {dn['p99']:.3f} against "
          f"{dm['p99']:.3f} ms"
          + (f", and over TCP {dn['tcp_qps'] / dm['tcp_qps']:.1f}× dnsmasq's rate."
             if dn.get("tcp_qps") and dm.get("tcp_qps") else "."))
    p("- **Memory.** Berth is one resident process that also serves probes, metrics, the control "
      "API and QMP; the baseline leaves only dnsmasq running. Across many VMs, what each "
      "supervisor adds is its private memory (the PSS and private rows of the scale test): the "
      "libraries are shared.")
    p()
    p("## Reproduce")
    p()
    p("```sh")
    p("sudo bench/run.sh        # about 30 min; writes this file. Pieces: bench/startup.py, "
      "bench/dhcp/run.sh,")
    p("                         # bench/drive/bench.sh, build/bench/net/net_bench, bench/scale.py,")
    p("                         # bench/console/run.sh, bench/firmware/run.sh, bench/disks/run.sh")
    p("```")
    p()
    p("Wall-clock figures move by ±20 % between runs on a shared 2-CPU machine; the ratios, "
      "measured side by side in one run, move less.")


if __name__ == "__main__":
    if sys.argv[1] == "--firmware":  # the firmware section alone, from bench/firmware/run.sh's folder
        firmware_section(print, json.load(open(os.path.join(sys.argv[2], "firmware.json"))), True)
    else:
        main(sys.argv[1])
