#!/bin/sh
# User-data for the hidden data-disk benchmark (disks_test.cpp, [disks-bench]), run by the test
# guest (never on the host): 64 MiB written and read back with O_DIRECT on each data disk, timed
# by /proc/uptime (busybox dd prints no rate). Random data: detect-zeroes would turn zeros into
# discards.
say() { echo "berth-bench: $*"; }
now() { cut -d' ' -f1 /proc/uptime; }
# MiB/s of 64 MiB between two uptimes.
rate() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f MiB/s", 64 / (b - a + 0.005) }'; }
dd if=/dev/urandom of=/tmp/random bs=1M count=64 2>/dev/null
for dev in /sys/block/vd*; do
  serial=$(cat "$dev/serial" 2>/dev/null)
  [ -n "$serial" ] || continue
  disk=/dev/${dev##*/}
  for pass in 1 2; do
    t0=$(now)
    dd if=/tmp/random of="$disk" bs=1M count=64 oflag=direct 2>/dev/null
    t1=$(now)
    dd if="$disk" of=/dev/null bs=1M count=64 iflag=direct 2>/dev/null
    t2=$(now)
    say "$serial pass $pass write $(rate "$t0" "$t1") read $(rate "$t1" "$t2")"
  done
done
say "done"
