#!/usr/bin/env bash
# Data disks, inside the guest against the host: one VM (the built-in test guest, TCG unless
# BENCH_ACCEL=kvm) with three data disks from VM_DISKS, a qcow2 file and a raw file in a folder
# and a loop device (a Block volume's stand-in), measured by bench/disks/io.sh as the guest's
# user-data; then the same script on the host, against a file in the same folder and against the
# loop device itself once QEMU has let go of it. The figure is the guest's rate over the host's.
#   bench/disks/run.sh [BUILD_DIR] [OUT_DIR]    (root; defaults: build, a fresh /var/tmp folder)
# Writes OUT_DIR/disks.txt (the berth-disk-bench lines, guest then host) and prints them.
# Env: BENCH_SIZE_MIB (MiB written per pass, default 128), BENCH_REPEAT (times it is read back,
# default 4), BENCH_READS (random 4 KiB reads per pass, default 200), BENCH_ACCEL (default tcg).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-build}
out=${2:-$(mktemp -d /var/tmp/berth-disks-bench-XXXXXX)}
mkdir -p "$out"
[[ $build = /* ]] || build=$root/$build
berth=$build/supervisor/berth
[[ -x $berth ]] || { echo "disks bench: no $berth; build first (scripts/build.sh)" >&2; exit 1; }
size=${BENCH_SIZE_MIB:-128}
export BENCH_SIZE_MIB=$size BENCH_READS=${BENCH_READS:-200} BENCH_REPEAT=${BENCH_REPEAT:-4}
disk_mib=$((size * 2))
guest=$("$root/test/guest/build-guest.sh")

name=bdk$$
# On disk, not tmpfs: O_DIRECT needs a real file system, and the host's figure is that disk's.
work=$(mktemp -d /var/tmp/berth-disks-bench-XXXXXX)
chmod 0711 "$work"  # QEMU runs as its own user and opens the disks below here
loop=
cleanup() {
  if [[ -n ${pid:-} ]]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  "$root/test/e2e/podnet.sh" down "$name"
  [[ -z $loop ]] || losetup -d "$loop"
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/vol-qcow2" "$work/vol-raw"
chmod 0711 "$work/vol-qcow2" "$work/vol-raw"
truncate -s "${disk_mib}M" "$work/block.img"
loop=$(losetup --find --show "$work/block.img")
cp "$here/io.sh" "$work/userdata"
"$root/test/e2e/podnet.sh" up "$name"
disks="bench-qcow2=$work/vol-qcow2:${disk_mib}Mi,bench-raw=$work/vol-raw:${disk_mib}Mi:raw,bench-blk=$loop"
echo "disks bench: VM_DISKS=$disks, $size MiB sequential, $BENCH_READS random reads per pass" >&2
IMG_SOURCE=$guest BERTH_DISK_DIR=$work/disks BERTH_RUNTIME_DIR=$work/run BERTH_USERDATA=$work/userdata \
VM_ACCEL=${BENCH_ACCEL:-tcg} VM_MEMORY=512M VM_CPUS=2 VM_DISKS=$disks NO_VNC=1 BERTH_VIEWER=no \
  ip netns exec "$name-pod" "$berth" >"$work/console.log" 2>"$work/berth.log" &
pid=$!
started=$(date +%s)
until grep -qs "berth-disk-bench: done" "$work/console.log"; do
  kill -0 "$pid" 2>/dev/null || { tail -20 "$work/berth.log" >&2; echo "disks bench: berth exited early" >&2; exit 1; }
  (($(date +%s) - started < 1800)) || { tail -20 "$work/console.log" >&2; echo "disks bench: no result within 30 min" >&2; exit 1; }
  sleep 1
done
grep -o 'aio=[a-z_]*' "$work/berth.log" | head -1 >"$out/aio" || true
kill -TERM "$pid"
wait "$pid" || true
pid=
grep -o 'berth-disk-bench: bench-.*' "$work/console.log" | tr -d '\r' | sed 's/^berth-disk-bench: /guest /' >"$out/disks.txt"
TMPDIR=$work "$here/io.sh" --host host-file "$work/vol-raw/host.file" host-blk "$loop" |
  grep -v ' done$' | sed 's/^berth-disk-bench: /host /' >>"$out/disks.txt"
echo "$size $BENCH_READS ${BENCH_ACCEL:-tcg} $BENCH_REPEAT" >"$out/disks.params"
cat "$out/disks.txt"
