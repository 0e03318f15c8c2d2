#!/bin/bash
# Builds Berth's test guest: a small bootable qcow2 disk made from Debian packages only.
#
#   test/guest/build-guest.sh [OUTPUT]
#   default OUTPUT: ${BERTH_CACHE:-/var/cache/berth}/guest/berth-guest.qcow2
#
# Prints OUTPUT on stdout; progress goes to stderr. Cached: when OUTPUT exists and
# OUTPUT.stamp holds the hash of this directory's files and of the package versions,
# nothing is rebuilt (BERTH_GUEST_FORCE=1 rebuilds anyway). Root is not needed.
#
# Disk layout (MBR, SeaBIOS boots it directly):
#   partition 1  FAT16 "BERTHBOOT" 32 MiB: SYSLINUX, vmlinuz, initrd.img
#   partition 2  ext4 "berth-data", rest of the 512 MiB disk: mounted at /data
# The initramfs (busybox + rootfs/ + kernel modules) is the guest's whole root.
#
# Host tools: apt (apt-get download, apt-cache), dpkg, qemu-utils (qemu-img), fdisk (sfdisk),
# dosfstools (mkfs.vfat), mtools (used by syslinux), e2fsprogs (mkfs.ext4), cpio, gzip,
# coreutils, util-linux (flock). Booting and testing it also needs qemu-system-x86 and,
# to make a config drive by hand, genisoimage.
# Guest packages, downloaded, never installed: linux-image-cloud-amd64's kernel package,
# busybox-static, syslinux, syslinux-common, inetutils-inetd and libc6 (for inetd).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib/disk-image.sh"
out=${1:-${BERTH_CACHE:-/var/cache/berth}/guest/berth-guest.qcow2}
kernel_meta=linux-image-cloud-amd64
packages=(busybox-static syslinux syslinux-common inetutils-inetd libc6)
disk_mib=512
boot_mib=32

log() { echo "build-guest: $*" >&2; }
die() { log "error: $*"; exit 1; }

# Everything the image depends on: our files (names, modes, contents) and the candidate
# versions of the packages it is made of.
inputs_hash() {
	(
		cd "$here"
		find build-guest.sh modules syslinux.cfg rootfs ../lib/disk-image.sh -printf '%p %m\n' | LC_ALL=C sort
		find build-guest.sh modules syslinux.cfg rootfs ../lib/disk-image.sh -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
		apt-cache policy "$kernel_meta" "${packages[@]}" | grep -E '^[^ ]|Candidate:'
	) | sha256sum | cut -d' ' -f1
}

mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
hash=$(inputs_hash)
FORCE=${BERTH_GUEST_FORCE:-} image_cache_check "$out" "$hash" build-guest

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-guest.XXXXXX")
trap 'rm -rf "$work" "$out.tmp"' EXIT
cd "$work"

# --- packages --------------------------------------------------------------------------
kernel_pkg=$(apt-cache depends "$kernel_meta" | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n 1)
[ -n "$kernel_pkg" ] || die "cannot resolve $kernel_meta to a kernel package (apt-get update?)"
log "downloading $kernel_pkg ${packages[*]}"
download_debs "$work" "$kernel_pkg" "${packages[@]}"
kdir=pkg/$kernel_pkg
kver=$(basename "$(ls -d "$kdir"/lib/modules/*)")
busybox=pkg/busybox-static/bin/busybox
log "kernel $kver"

# --- initramfs: the guest's root file system ---------------------------------------
log "assembling the initramfs"
root=$work/initrd
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,data,www,root,var/log}
ln -s ../run "$root/var/run"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list-full); do
	[ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done
ln -s bin/busybox "$root/init" # busybox init, configured by etc/inittab

cp -a "$here/rootfs/." "$root/"
cp "$here/modules" "$root/etc/berth/modules"
chmod 755 "$root"/etc/berth/* "$root"/etc/acpi/*/*
chmod 644 "$root/etc/berth/lib.sh" "$root/etc/berth/cloud-config.awk" "$root/etc/berth/modules"

# inetd (TCP and UDP echo) is the one dynamically linked program.
cp pkg/inetutils-inetd/usr/sbin/inetutils-inetd "$root/usr/sbin/"
mkdir -p "$root/lib/x86_64-linux-gnu" "$root/lib64"
cp pkg/libc6/lib/x86_64-linux-gnu/{libc.so.6,ld-linux-x86-64.so.2} "$root/lib/x86_64-linux-gnu/"
ln -s /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"

# Kernel modules: the listed ones and everything they depend on, from modules.dep.
"$busybox" depmod -b "$work/$kdir" "$kver"
wanted=$(grep -v '^#' "$here/modules" | tr '\n' ' ')
needed=$(awk -v wanted="$wanted" '
	BEGIN { n = split(wanted, w, " "); for (i = 1; i <= n; i++) want[w[i]] = 1 }
	{
		mod = $1; sub(/:$/, "", mod)
		name = mod; sub(/.*\//, "", name); sub(/\.ko.*$/, "", name); gsub(/-/, "_", name)
		if (name in want) { found[name] = 1; for (i = 1; i <= NF; i++) { f = $i; sub(/:$/, "", f); print f } }
	}
	END { for (m in want) if (!(m in found)) { print "missing module " m > "/dev/stderr"; exit 1 } }
' "$kdir/lib/modules/$kver/modules.dep" | sort -u)
mdir=lib/modules/$kver
mkdir -p "$root/$mdir"
for m in $needed; do
	mkdir -p "$root/$mdir/$(dirname "$m")"
	cp "$kdir/$mdir/$m" "$root/$mdir/$m"
done
cp "$kdir/$mdir"/modules.{order,builtin} "$root/$mdir/"
"$busybox" depmod -b "$root" "$kver"
log "$(echo "$needed" | wc -w) kernel modules"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9 > initrd.img

# --- disk --------------------------------------------------------------------------------
log "making the disk"
mkfs.ext4 -q -F -b 4096 -L berth-data -E lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0 \
	data.img "$(second_partition_kib "$disk_mib" "$boot_mib")k" > /dev/null
syslinux_disk disk.raw "$disk_mib" "$boot_mib" BERTHBOOT "$work/pkg" data.img \
	"$kdir/boot/vmlinuz-$kver=vmlinuz" initrd.img=initrd.img "$here/syslinux.cfg=syslinux.cfg"
image_cache_store disk.raw "$out" "$hash"
log "built $out ($(du -h "$out" | cut -f1), kernel $kver)"
echo "$out"
