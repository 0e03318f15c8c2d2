#!/usr/bin/env bash
# Every benchmark in one run, each figure beside the tool a user would otherwise use, written to
# docs/benchmarks.md (and the raw outputs to BENCH_OUT, default a fresh folder under /var/tmp).
# Root; installs what it needs; about 35 minutes on 2 CPUs. Run it on an otherwise idle machine:
# the figures are wall-clock times.
#   bench/run.sh                 or   cmake --build build --target bench
# Env: BENCH_RUNS (start-up runs per tool, default 7), BENCH_VMS (scale test VMs, default: as many
# as memory allows, capped at 40), BENCH_WINDOW (idle window of the scale test, s, default 60),
# BENCH_FETCH_MIB (image size of the fetch benchmark, default 1024), BENCH_KEYS (keystrokes per
# client of the screen benchmark, default 40), BENCH_IDLE (its idle window, s, default 30),
# BENCH_FIRMWARE_RUNS (boots per firmware of the firmware benchmark, default 5), BENCH_CLOUD_RUNS
# (cloud image boots to SSH per tool, default 5; about a minute each under TCG), BENCH_DOC (output
# file); bench/disks/run.sh reads BENCH_SIZE_MIB, BENCH_REPEAT, BENCH_READS; bench/lazy/run.sh
# BENCH_LAZY_RUNS, BENCH_LAZY_MBIT, BENCH_LAZY_MIB (about 3 min per round at the defaults).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/as-root.sh
berth_as_root "$PWD/bench/run.sh" "$@"
./scripts/setup.sh
# Tools that only the benchmarks use: the baseline's iptables and the load and timing tools.
missing=()
for pkg in dnsperf tcpdump time iptables; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
./scripts/build.sh >/dev/null
build=${BERTH_BUILD_DIR:-build}
out=${BENCH_OUT:-$(mktemp -d /var/tmp/berth-bench-XXXXXX)}
doc=${BENCH_DOC:-docs/benchmarks.md}
mkdir -p "$out" "$(dirname "$doc")"
step() { printf '\nbench: %s  (%s)\n' "$1" "$(date -u +%H:%M:%S)" >&2; }
# What was measured, recorded now (the report may be written from a later checkout).
{
  git rev-parse --short HEAD 2>/dev/null || echo unknown
  git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo "with local changes"
} | paste -sd' ' >"$out/commit"
started=$(date +%s)

step "whole start-up, berth vs the baseline script (bench/startup.py)"
python3 bench/startup.py --runs "${BENCH_RUNS:-7}" --berth "$build/supervisor/berth" \
  --json "$out/startup.json" | tee "$out/startup.txt"
step "a Debian cloud image to SSH, berth vs the baseline script (bench/startup.py --cloud-image)"
python3 bench/startup.py --cloud-image --runs "${BENCH_CLOUD_RUNS:-5}" \
  --berth "$build/supervisor/berth" --json "$out/cloud.json" | tee "$out/cloud.txt"
step "DNS and DHCP, berth vs dnsmasq (bench/dhcp/run.sh)"
BERTH_BUILD_DIR=$build bench/dhcp/run.sh 10 | tee "$out/dhcp.txt"
step "image fetch vs curl, config drive vs genisoimage (bench/drive/bench.sh)"
RUNS=3 SIZE_MIB=${BENCH_FETCH_MIB:-1024} bench/drive/bench.sh "$build" | tee "$out/drive.txt"
step "first start over a slow link, IMG_LAZY vs full download vs the baseline (bench/lazy/run.sh)"
bench/lazy/run.sh "$build" "$out"
step "bridge, tap and NAT vs ip + iptables (net_bench)"
"$build/bench/net/net_bench" 30 | tee "$out/net.txt"
step "the screen: browser viewer vs a native VNC client (bench/console/run.sh)"
bench/console/run.sh "$build" "${BENCH_KEYS:-40}" "${BENCH_IDLE:-30}" "$out" | tee "$out/console.txt"
step "boot time per firmware and swtpm's memory (bench/firmware/run.sh)"
bench/firmware/run.sh "$build" "${BENCH_FIRMWARE_RUNS:-5}" "$out" | tee "$out/firmware.txt"
step "data disks in the guest vs the host (bench/disks/run.sh)"
bench/disks/run.sh "$build" "$out" | tee "$out/disks-run.txt"
step "idle supervisors side by side (bench/scale.py)"
python3 bench/scale.py ${BENCH_VMS:+--vms "$BENCH_VMS"} --window "${BENCH_WINDOW:-60}" \
  --berth "$build/supervisor/berth" --json "$out/scale.json" | tee "$out/scale.txt"

echo "$(($(date +%s) - started))" >"$out/seconds"
python3 bench/report.py "$out" >"$doc.tmp"
mv "$doc.tmp" "$doc"
step "wrote $doc (raw outputs in $out)"
