#!/usr/bin/env bash
# Firmware, side by side: boot time from berth's start to the test guest's `berth-guest: ready`
# under VM_FIRMWARE=bios, uefi, uefi-secure and uefi with VM_TPM=yes, and the memory swtpm adds.
#   bench/firmware/run.sh [BUILD_DIR] [RUNS] [OUT_DIR]   (root; defaults: build 5, a fresh folder)
# The same system boots in every mode: the built-in guest (test/guest/build-guest.sh) for bios, its
# UEFI variant (build-guest-uefi.sh: the same kernel and initramfs behind shim and GRUB) for the
# others. Each boot is a fresh pod (test/e2e/podnet.sh) and a fresh work folder (pet disk, EFI
# variables, TPM state, runtime folder), so UEFI's variables come from the template and the TPM is
# new every time; the image cache is shared and filled by one untimed boot per mode first. Rounds
# alternate the modes, so load on the machine hits all alike. TCG, VM_MEMORY=512M (uefi-secure
# needs 384 MiB or more), NO_VNC=1. The ready line is polled every 50 ms. With the TPM, swtpm's
# VmHWM and VmRSS (/proc/PID/status) are read once the guest is ready (it has then extended a PCR and
# written an NV index, and OVMF has measured the boot). The 1-minute load average and the number of
# other QEMUs are noted as each guest gets ready. Writes OUT_DIR/firmware.json and prints a summary; berth is stopped with SIGTERM (a bash script's background jobs ignore SIGQUIT).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-build}
[[ $build = /* ]] || build=$root/$build
berth=$build/supervisor/berth
[[ -x $berth ]] || { echo "firmware bench: no $berth; build first (scripts/build.sh)" >&2; exit 1; }
runs=${2:-5}
out=${3:-$(mktemp -d /var/tmp/berth-firmware-bench-XXXXXX)}
mkdir -p "$out"
command -v swtpm >/dev/null || { echo "firmware bench: swtpm is not installed (scripts/setup.sh)" >&2; exit 1; }
bios_guest=$("$root/test/guest/build-guest.sh")
uefi_guest=$("$root/test/guest/build-guest-uefi.sh")
modes=(bios uefi uefi-secure uefi-tpm)

name=bfw$$
bench=$(mktemp -d /var/tmp/berth-fwbench-XXXXXX)
chmod 0711 "$bench"  # QEMU runs as its own user and opens the pet disk below here
pid=
cleanup() {
  if [[ -n $pid ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  "$root/test/e2e/podnet.sh" down "$name"
  rm -rf "$bench"
}
trap cleanup EXIT
results=$out/firmware.tsv
: >"$results"
qemus() { pgrep -c -x qemu-system-x86 || true; }

# one_boot MODE LABEL: boots once in a fresh pod and work folder; appends a line to $results.
one_boot() {
  local mode=$1 label=$2 work image env=() t0 ready= hwm=- rss=- check=ok swtpm_pid load others
  work=$(mktemp -d "$bench/boot-XXXXXX")
  chmod 0711 "$work"
  case $mode in
    bios) image=$bios_guest env=(VM_FIRMWARE=bios) ;;
    uefi) image=$uefi_guest env=(VM_FIRMWARE=uefi) ;;
    uefi-secure) image=$uefi_guest env=(VM_FIRMWARE=uefi-secure) ;;
    uefi-tpm) image=$uefi_guest env=(VM_FIRMWARE=uefi VM_TPM=yes) ;;
  esac
  "$root/test/e2e/podnet.sh" up "$name"
  t0=$EPOCHREALTIME
  env IMG_SOURCE="$image" "${env[@]}" VM_ACCEL=tcg VM_MEMORY=512M NO_VNC=1 BERTH_SHUTDOWN_TIMEOUT=30 \
    BERTH_IMAGE_DIR="$bench/images" BERTH_DISK_DIR="$work/disks" BERTH_RUNTIME_DIR="$work/run" \
    BERTH_USERDATA="$work/none" BERTH_METADATA="$work/none" BERTH_NETWORKDATA="$work/none" \
    ip netns exec "$name-pod" "$berth" >"$work/console.log" 2>"$work/berth.log" &
  pid=$!
  for _ in $(seq 1 6000); do  # 300 s
    if grep -qs "berth-guest: ready" "$work/console.log"; then
      ready=$(echo "$EPOCHREALTIME - $t0" | bc)
      load=$(cut -d' ' -f1 /proc/loadavg)
      others=$(($(qemus) - 1))  # besides this boot's
      break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if [[ -z $ready ]]; then
    tail -n 20 "$work/berth.log" "$work/console.log" >&2
    echo "firmware bench: $mode ($label) never got ready" >&2
    exit 1
  fi
  case $mode in
    uefi-secure) grep -qs "berth-guest: secureboot=1" "$work/console.log" || check="no secureboot=1" ;;
    uefi | uefi-tpm) grep -qs "berth-guest: secureboot=0" "$work/console.log" || check="no secureboot=0" ;;
  esac
  if [[ $mode = uefi-tpm ]]; then
    grep -qs "berth-guest: tpm-pcr16=" "$work/console.log" || check="no tpm-pcr16 line"
    swtpm_pid=$(sed -n 's/.*swtpm running as pid \([0-9]*\).*/\1/p' "$work/berth.log" | head -n 1)
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$swtpm_pid/status")
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$swtpm_pid/status")
  fi
  kill -TERM "$pid"
  local rc=0
  wait "$pid" || rc=$?
  pid=
  ((rc == 0)) || check="berth exited $rc after SIGTERM"
  "$root/test/e2e/podnet.sh" down "$name"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$label" "$ready" "$hwm" "$rss" "$check" "$load" \
    "$others" | tee -a "$results" >&2
  rm -rf "$work"
}

for mode in "${modes[@]}"; do one_boot "$mode" warm-up; done
for round in $(seq 1 "$runs"); do
  for mode in "${modes[@]}"; do one_boot "$mode" "$round"; done
done

python3 - "$out" "$runs" "$(swtpm --version | head -n 1 | sed 's/, Copyright.*//')" <<'PY'
import json, statistics, sys
out, runs, swtpm = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [line.rstrip("\n").split("\t") for line in open(f"{out}/firmware.tsv")]
loads = sorted(float(r[6]) for r in rows)
result = {"runs": runs, "swtpm": swtpm, "modes": {},
          "load": {"median": statistics.median(loads), "min": loads[0], "max": loads[-1],
                   "other_qemus_max": max(int(r[7]) for r in rows)}}
for mode in ("bios", "uefi", "uefi-secure", "uefi-tpm"):
    timed = [r for r in rows if r[0] == mode and r[1] != "warm-up"]
    s = sorted(float(r[2]) for r in timed)
    entry = {"median_s": statistics.median(s), "min_s": s[0], "max_s": s[-1],
             "samples_s": [float(r[2]) for r in timed],
             "checks": sorted({r[5] for r in rows if r[0] == mode})}
    if mode == "uefi-tpm":
        hwm = sorted(int(r[3]) for r in rows if r[0] == mode)
        rss = sorted(int(r[4]) for r in rows if r[0] == mode)
        entry["swtpm_hwm_kib"] = {"median": statistics.median(hwm), "min": hwm[0], "max": hwm[-1]}
        entry["swtpm_rss_kib"] = {"median": statistics.median(rss), "min": rss[0], "max": rss[-1]}
    result["modes"][mode] = entry
json.dump(result, open(f"{out}/firmware.json", "w"), indent=1)
bios = result["modes"]["bios"]["median_s"]
print(f"berth start -> berth-guest: ready, {runs} runs each (median, min-max):")
for mode, e in result["modes"].items():
    print(f"  {mode:12s} {e['median_s']:6.2f} s ({e['min_s']:.2f}-{e['max_s']:.2f})  "
          f"{e['median_s'] - bios:+6.2f} s vs bios   checks: {', '.join(e['checks'])}")
h, r = result["modes"]["uefi-tpm"]["swtpm_hwm_kib"], result["modes"]["uefi-tpm"]["swtpm_rss_kib"]
print(f"swtpm ({swtpm}): VmHWM median {h['median'] / 1024:.1f} MiB ({h['min']}-{h['max']} KiB), "
      f"VmRSS median {r['median'] / 1024:.1f} MiB ({r['min']}-{r['max']} KiB); KubeVirt budgets 53 MiB")
l = result["load"]
print(f"load average (1 min) when each guest was ready: median {l['median']:.1f}, "
      f"{l['min']:.1f}-{l['max']:.1f}; up to {l['other_qemus_max']} other QEMUs running")
PY
echo "firmware bench: raw results in $out/firmware.json" >&2
