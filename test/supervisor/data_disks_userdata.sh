#!/bin/sh
# User-data for the data-disk test (test/supervisor/disks_test.cpp), run by the test guest at
# every boot (never on the host): prints each virtio disk's serial and size, reads and writes a
# marker on each data disk, and on the first boot fills, deletes and trims a file on the disk
# whose serial is "data"; then prints the serials whenever a disk comes or goes (hot-plug).
say() { echo "berth-disks: $*"; }
# The serials of the disks that have one, sorted, on one line (serial files end without newline).
serials() {
  for file in /sys/block/vd*/serial; do echo "$(cat "$file" 2>/dev/null)"; done | grep . | sort |
    tr '\n' ' '
}
by_serial() {
  for dev in /sys/block/vd*; do
    [ "$(cat "$dev/serial" 2>/dev/null)" = "$1" ] && echo "/dev/${dev##*/}"
  done
}
for dev in /sys/block/vd*; do
  say "disk ${dev##*/} serial=$(cat "$dev/serial" 2>/dev/null) bytes=$(($(cat "$dev/size") * 512))"
done

# Raw disks: the marker is the first bytes of the disk itself.
for serial in scratch blk; do
  disk=$(by_serial $serial)
  [ -n "$disk" ] || continue
  have=$(head -c 32 "$disk" | tr -dc 'a-z-')
  say "marker $serial=${have:-none}"
  [ -n "$have" ] || printf 'berth-marker-%s' $serial | dd of="$disk" conv=fsync 2>/dev/null
done

# Hot-plug: the data disks' serials, printed again whenever they change, in the background.
(
  last=$(serials)
  while sleep 1; do
    now=$(serials)
    [ "$now" = "$last" ] || say "serials now: ${now% }"
    last=$now
  done
) &

# The qcow2 disk: a file system, a marker file, and on the first boot a trimmed 32 MiB file.
disk=$(by_serial data)
[ -n "$disk" ] || exit 0
mkdir -p /mnt/data
if ! mount -t ext4 "$disk" /mnt/data 2>/dev/null; then
  mke2fs -F "$disk" >/dev/null 2>&1
  mount -t ext4 "$disk" /mnt/data || { say "mount failed"; exit 1; }
fi
if [ -f /mnt/data/marker ]; then
  say "marker data=$(cat /mnt/data/marker)"
else
  say "marker data=none"
  echo berth-marker-data >/mnt/data/marker
  dd if=/dev/urandom of=/mnt/data/fill bs=1M count=32 2>/dev/null
  sync
  say "filled"
  sleep 15
  rm /mnt/data/fill
  sync
  fstrim /mnt/data
  say "trimmed rc=$?"
fi
umount /mnt/data
