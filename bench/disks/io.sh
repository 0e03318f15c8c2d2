#!/bin/sh
# The disk benchmark's measurement (bench/disks/run.sh), the same commands in the guest and on the
# host: busybox dd with O_DIRECT, 1 MiB blocks for a sequential write of SIZE MiB of random data
# (random: detect-zeroes would turn zeros into discards) and REPEAT sequential reads of it (long
# enough for the guest's 10 ms clock), then READS reads of 4 KiB at
# random offsets (one dd each, the same offsets everywhere), and as many 4 KiB dd reads of
# /dev/zero, which time the process start alone. Each target twice. One line per pass:
#   berth-disk-bench: LABEL pass P write W MiB/s read R MiB/s rand4k T ms/read spawn S ms/read
#
#   io.sh                                  the guest (its user-data): every virtio disk whose
#                                          serial starts with bench- (the serial is the label)
#   io.sh --host LABEL PATH [LABEL PATH]   the host: each PATH (a file or a device) is OVERWRITTEN
# Env: BENCH_SIZE_MIB (default 128), BENCH_REPEAT (default 4), BENCH_READS (default 200), TMPDIR
# (the random source's folder).
set -u
size=${BENCH_SIZE_MIB:-128}
reads=${BENCH_READS:-200}
repeat=${BENCH_REPEAT:-4}
dd="dd"
command -v busybox >/dev/null 2>&1 && dd="busybox dd"
say() { echo "berth-disk-bench: $*"; }
# Seconds: nanoseconds where date has them (the host), else /proc/uptime (10 ms; busybox's date).
now() {
  t=$(date +%s.%N)
  case $t in *N) cut -d' ' -f1 /proc/uptime ;; *) echo "$t" ;; esac
}
per_s() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { d = b - a; if (d <= 0) d = 0.01; printf "%.1f", n / d }'; }
per_read() { awk -v n="$reads" -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) * 1000 / n }'; }

src=${TMPDIR:-/tmp}/berth-disk-bench.random
offsets=${TMPDIR:-/tmp}/berth-disk-bench.offsets
$dd if=/dev/urandom of="$src" bs=1M count="$size" 2>/dev/null
awk -v n="$reads" -v max=$((size * 256)) 'BEGIN { srand(19); for (i = 0; i < n; i++) print int(rand() * max) }' >"$offsets"

bench() {  # bench LABEL PATH
  for pass in 1 2; do
    t0=$(now)
    $dd if="$src" of="$2" bs=1M count="$size" oflag=direct conv=notrunc,fsync 2>/dev/null || say "$1 write failed"
    t1=$(now)
    i=0
    while [ $i -lt "$repeat" ]; do
      $dd if="$2" of=/dev/null bs=1M count="$size" iflag=direct 2>/dev/null || say "$1 read failed"
      i=$((i + 1))
    done
    t2=$(now)
    while read -r off; do
      $dd if="$2" of=/dev/null bs=4096 count=1 skip="$off" iflag=direct 2>/dev/null
    done <"$offsets"
    t3=$(now)
    while read -r off; do
      $dd if=/dev/zero of=/dev/null bs=4096 count=1 2>/dev/null
    done <"$offsets"
    t4=$(now)
    say "$1 pass $pass write $(per_s "$size" "$t0" "$t1") MiB/s read $(per_s $((size * repeat)) "$t1" "$t2") MiB/s" \
      "rand4k $(per_read "$t2" "$t3") ms/read spawn $(per_read "$t3" "$t4") ms/read"
  done
}

if [ "${1:-}" = --host ]; then
  shift
  while [ $# -ge 2 ]; do
    bench "$1" "$2"
    shift 2
  done
else
  found=
  for dev in /sys/block/vd*; do
    serial=$(cat "$dev/serial" 2>/dev/null)
    case $serial in bench-*) ;; *) continue ;; esac
    found=1
    bench "$serial" "/dev/${dev##*/}"
  done
  [ -n "$found" ] || say "no virtio disk with a bench- serial: nothing measured"
fi
rm -f "$src" "$offsets"
say "done"
