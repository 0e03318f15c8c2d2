#!/usr/bin/env bash
# IMG_LAZY side by side (bench/lazy/lazy.py): start -> the guest's service at the pod IP for one
# image of BENCH_LAZY_MIB MiB (default 1024: the built-in test guest, copied and padded) served over
# a link limited to BENCH_LAZY_MBIT Mbit/s (default 200, tc tbf on the node's veth), with a cold
# image cache every run, BENCH_LAZY_RUNS rounds (default 3) of: berth IMG_LAZY=yes, berth
# IMG_LAZY=no (full download first) and the seed-style baseline (bench/baseline/startvm.sh: curl,
# then QEMU). Also berth's lazy-image counters from /metrics when the service answers and after the
# fill (the guest's on-demand share of the bytes).
#   bench/lazy/run.sh [BUILD_DIR] [OUT_DIR]   (root; defaults: build, a fresh folder)
# Writes OUT_DIR/lazy.json and lazy.txt (the summary, also on standard output). A round takes
# about three downloads of the image at the link's rate (~45 s each for 1 GiB at 200 Mbit/s) plus
# three TCG boots.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
source "$root/scripts/as-root.sh"
berth_as_root "$here/run.sh" "$@"
build=${1:-build}
[[ $build = /* ]] || build=$root/$build
berth=$build/supervisor/berth
[[ -x $berth ]] || { echo "lazy bench: no $berth; build first (scripts/build.sh)" >&2; exit 1; }
out=${2:-$(mktemp -d /var/tmp/berth-lazy-bench-XXXXXX)}
mkdir -p "$out"
for tool in tc busybox dnsmasq curl genisoimage iptables qemu-img; do
  command -v "$tool" >/dev/null || { echo "lazy bench: $tool is missing (scripts/setup.sh)" >&2; exit 1; }
done
python3 "$here/lazy.py" --runs "${BENCH_LAZY_RUNS:-3}" --mbit "${BENCH_LAZY_MBIT:-200}" \
  --mib "${BENCH_LAZY_MIB:-1024}" --berth "$berth" --json "$out/lazy.json" | tee "$out/lazy.txt"
echo "lazy bench: raw outputs in $out" >&2
