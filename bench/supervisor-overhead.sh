#!/usr/bin/env bash
# Supervisor overhead: time from berth's exec to QEMU's exec with a cached image (pet disk present
# after the first run; the run includes pod discovery, the config drive, bridge/tap/NAT and the
# DHCP/DNS servers), and berth's resident memory while the guest runs. In a pod-like namespace.
#   bench/supervisor-overhead.sh [RUNS]       (root; builds the test guest if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
berth=${BERTH_BINARY:-build/supervisor/berth}
guest=$(test/guest/build-guest.sh)
work=$(mktemp -d)
ns=berth-bench
test/e2e/podnet.sh up "$ns"
trap 'test/e2e/podnet.sh down "$ns"; rm -rf "$work"' EXIT

# Nanoseconds since boot at which a process started (from /proc/<pid>/stat, clock ticks).
ticks=$(getconf CLK_TCK)
started_ns() { awk -v t="$ticks" '{ print int($22 * 1e9 / t) }' "/proc/$1/stat"; }
now_ns() { awk '{ print int($1 * 1e9) }' /proc/uptime; }

exec_to_exec=()
for i in $(seq 0 "$runs"); do
  rm -f "$work/log" "$work/console"
  IMG_SOURCE=$guest BERTH_IMAGE_DIR=$work/images BERTH_DISK_DIR=$work/disks \
    BERTH_RUNTIME_DIR=$work/run BERTH_USERDATA=$work/none BERTH_METADATA=$work/none \
    BERTH_NETWORKDATA=$work/none VM_ACCEL=tcg VM_MEMORY=256M NO_VNC=1 \
    ip netns exec "$ns-pod" "$berth" >"$work/console" 2>"$work/log" &
  pid=$!
  # The berth log line just before fork/exec of QEMU and QEMU's own log line carry ms timestamps.
  until grep -qs "QEMU running as pid" "$work/log"; do sleep 0.01; done
  t0=$(grep -m1 "starting as pid" "$work/log" | cut -c12-23)
  t1=$(grep -m1 "QEMU running as pid" "$work/log" | cut -c12-23)
  ms=$(python3 -c "import sys;h0,m0,s0=sys.argv[1].split(':');h1,m1,s1=sys.argv[2].split(':');print(round(((int(h1)-int(h0))*3600+(int(m1)-int(m0))*60+float(s1)-float(s0))*1000,1))" "$t0" "$t1")
  if [[ $i -gt 0 ]]; then exec_to_exec+=("$ms"); fi  # run 0 creates the pet disk: not counted
  if [[ $i -eq "$runs" ]]; then
    until grep -qs "berth-guest: ready" "$work/console"; do sleep 0.1; done
    sleep 2
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    qemu_rss=$(awk '/VmRSS/ {print $2}' "/proc/$(pgrep -f "qemu-system-x86_64 -name berth" | head -1)/status")
  fi
  kill -TERM "$pid"
  wait "$pid" || true
done
printf '%s\n' "${exec_to_exec[@]}" | sort -n | awk '{a[NR]=$1} END {printf "berth start -> QEMU exec (cached image, existing pet disk), %d runs: median %.1f ms, min %.1f ms, max %.1f ms\n", NR, a[int((NR+1)/2)], a[1], a[NR]}'
echo "berth RSS while the guest runs: ${rss} KiB (peak ${hwm} KiB); QEMU RSS for comparison: ${qemu_rss} KiB"
