#!/bin/sh
# User-data of the data-disk VM in the cluster test (test/cluster/e2e.sh), run by the test guest
# at every boot (never on the host): the disk with serial "fsdata" (a qcow2 file on a Filesystem
# claim) gets an ext4 file system once and a marker file in it; the disk with serial "blkdata" (a
# Block claim on a loop device) gets a marker in its first bytes. Each marker is made once, with a
# fresh UUID, and then only read; the guest's web server shows them as /fsdata and /blkdata.
by_serial() {
  for dev in /sys/block/vd*; do
    [ "$(cat "$dev/serial" 2>/dev/null)" = "$1" ] && echo "/dev/${dev##*/}"
  done
}
disk=$(by_serial blkdata)
if [ -n "$disk" ]; then
  have=$(head -c 48 "$disk" | tr -dc 'a-z0-9-')
  case $have in
    blk-*) ;;
    *)
      have=blk-$(cat /proc/sys/kernel/random/uuid)
      printf '%s\n' "$have" | dd of="$disk" conv=fsync 2>/dev/null
      ;;
  esac
  echo "$have" >/www/blkdata
fi
disk=$(by_serial fsdata)
if [ -n "$disk" ]; then
  mkdir -p /mnt/fsdata
  if ! mount -t ext4 "$disk" /mnt/fsdata 2>/dev/null; then
    mke2fs -F "$disk" >/dev/null 2>&1
    mount -t ext4 "$disk" /mnt/fsdata
  fi
  [ -s /mnt/fsdata/marker ] || cat /proc/sys/kernel/random/uuid >/mnt/fsdata/marker
  sync
  cp /mnt/fsdata/marker /www/fsdata
fi
