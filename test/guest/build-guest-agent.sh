#!/bin/bash
# Builds the test guest with the QEMU guest agent: the built-in guest (build-guest.sh, built or
# reused first) with Debian's qemu-guest-agent, its libraries and the virtio_console module added
# to its initramfs, and the agent started at boot before "ready" (agent/agent-start).
#
#   test/guest/build-guest-agent.sh [OUTPUT]
#   default OUTPUT: ${BERTH_CACHE:-/var/cache/berth}/guest/berth-guest-agent.qcow2
#
# A variant under its own name: berth-guest.qcow2 and its stamp stay as build-guest.sh makes
# them. Prints OUTPUT on stdout; cached like build-guest.sh (OUTPUT.stamp: this script, agent/,
# the base image's stamp, the packages' candidate versions). Root is not needed. Host tools: those
# of build-guest.sh. Guest packages, downloaded, never installed: qemu-guest-agent and the
# libraries it links (libglib2.0-0 and its own), and the base image's kernel package (for
# virtio_console.ko).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib/disk-image.sh"
out=${1:-${BERTH_CACHE:-/var/cache/berth}/guest/berth-guest-agent.qcow2}
packages=(qemu-guest-agent libc6 libgcc-s1 libglib2.0-0 libnuma1 libudev1 liburing2 libffi8 libmount1 libblkid1
	libselinux1 libpcre2-8-0 zlib1g)
boot_start=2048 # build-guest.sh's layout (syslinux_disk): the FAT boot partition's first sector
boot_mib=32

log() { echo "build-guest-agent: $*" >&2; }
die() { log "error: $*"; exit 1; }

base=$("$here/build-guest.sh")
inputs_hash() {
	(
		cd "$here"
		find build-guest-agent.sh agent -printf '%p %m\n' | LC_ALL=C sort
		find build-guest-agent.sh agent -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
		cat "$base.stamp"
		apt-cache policy "${packages[@]}" | grep -E '^[^ ]|Candidate:'
	) | sha256sum | cut -d' ' -f1
}

mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
hash=$(inputs_hash)
FORCE=${BERTH_GUEST_FORCE:-} image_cache_check "$out" "$hash" build-guest-agent

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-guest-agent.XXXXXX")
trap 'rm -rf "$work" "$out.tmp"' EXIT
cd "$work"

log "unpacking $base"
qemu-img convert -f qcow2 -O raw "$base" disk.raw
dd if=disk.raw of=boot.img bs=512 skip=$boot_start count=$((boot_mib * 2048)) status=none
mcopy -i boot.img ::initrd.img initrd.old
root=$work/initrd
mkdir -p "$root"
(cd "$root" && gzip -dc ../initrd.old | cpio -idm --quiet)
kver=$(basename "$(ls -d "$root"/lib/modules/*)")

log "downloading linux-image-$kver ${packages[*]}"
download_debs "$work" "linux-image-$kver" "${packages[@]}"

# qemu-ga and every library it needs, found in the unpacked packages (the base has only libc).
install -m 755 pkg/qemu-guest-agent/usr/sbin/qemu-ga "$root/usr/bin/qemu-ga"
libdir=$root/lib/x86_64-linux-gnu
needed_of() { objdump -p "$1" | awk '$1 == "NEEDED" { print $2 }'; }
todo=$(needed_of "$root/usr/bin/qemu-ga")
while [ -n "$todo" ]; do
	next=
	for lib in $todo; do
		[ -e "$libdir/$lib" ] && continue
		file=$(find pkg/*/lib/x86_64-linux-gnu pkg/*/usr/lib/x86_64-linux-gnu -name "$lib" 2>/dev/null | head -n 1)
		[ -n "$file" ] || die "qemu-ga needs $lib, which no downloaded package holds"
		cp -L "$file" "$libdir/$lib"
		next="$next $(needed_of "$libdir/$lib")"
	done
	todo=$next
done

# virtio_console (the agent's port) from the base's kernel, with its dependencies' order kept.
mdir=lib/modules/$kver
module=$(cd "pkg/linux-image-$kver/$mdir" && find . -name 'virtio_console.ko*' | head -n 1)
[ -n "$module" ] || die "linux-image-$kver has no virtio_console module"
mkdir -p "$root/$mdir/$(dirname "$module")"
cp "pkg/linux-image-$kver/$mdir/$module" "$root/$mdir/$module"
"$root/bin/busybox" depmod -b "$root" "$kver"

install -m 755 "$here/agent/agent-start" "$root/etc/berth/agent-start"
install -m 755 "$here/agent/shutdown" "$root/sbin/shutdown"
install -m 644 "$here/agent/os-release" "$root/etc/os-release"
grep -qx 'say "ready"' "$root/etc/berth/boot" || die "the base's /etc/berth/boot has no 'say \"ready\"' line"
sed -i 's|^say "ready"$|/etc/berth/agent-start\nsay "ready"|' "$root/etc/berth/boot"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9 > initrd.img
mcopy -o -i boot.img initrd.img ::initrd.img
dd if=boot.img of=disk.raw bs=512 seek=$boot_start conv=notrunc status=none
image_cache_store disk.raw "$out" "$hash"
log "built $out ($(du -h "$out" | cut -f1), qemu-ga $(dpkg-deb -f debs/qemu-guest-agent_*.deb Version))"
echo "$out"
