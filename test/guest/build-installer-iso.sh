#!/bin/bash
# Builds the test installer: a small bootable ISO, for installing from an ISO (IMG_SOURCE that is
# an ISO, VM_CDROM), made from Debian packages and the test guests.
#
#   test/guest/build-installer-iso.sh [OUTPUT]
#   default OUTPUT: ${BERTH_CACHE:-/var/cache/berth}/guest/berth-installer.iso
#
# Prints OUTPUT on stdout; progress goes to stderr. Cached like build-guest.sh: OUTPUT.stamp holds
# the hash of this script, installer/, the test guests' stamps and the package versions
# (BERTH_GUEST_FORCE=1 rebuilds it, not the guests). Root is not needed.
#
# It runs build-guest.sh and build-guest-uefi.sh --unsigned (both cached) and takes the BIOS
# guest's kernel and initramfs. The ISO boots under SeaBIOS (ISOLINUX, El Torito no-emulation) and
# under OVMF (an El Torito EFI image holding GRUB, which loads the same kernel and initramfs from
# the ISO 9660 file system):
#   /isolinux/    isolinux.bin, ldlinux.c32, isolinux.cfg (installer/isolinux.cfg)
#   /efiboot.img  FAT: \EFI\BOOT\BOOTX64.EFI (GRUB, unsigned), \EFI\debian\grub.cfg
#   /EFI/debian/grub.cfg  the same grub.cfg (installer/grub.cfg)
#   /vmlinuz      the test guest's kernel
#   /initrd.img   the test guest's initramfs, with a second cpio archive appended: installer/init
#                 (run as rdinit=/installer/init) and both test guests' disks (the 1 MiB
#                 chunks that hold data, gzip'd)
# The installer writes the BIOS guest's disk (the UEFI one when booted by UEFI) onto /dev/vda,
# prints "berth-installer: installed ..." on ttyS0 and powers off; the disk then boots the guest.
#
# Host tools: as build-guest.sh, and genisoimage. Guest packages, downloaded, never installed:
# isolinux, syslinux-common and grub-efi-amd64-bin.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib/disk-image.sh"
out=${1:-${BERTH_CACHE:-/var/cache/berth}/guest/berth-installer.iso}
packages=(isolinux syslinux-common grub-efi-amd64-bin)

log() { echo "build-installer-iso: $*" >&2; }
die() { log "error: $*"; exit 1; }

# BERTH_GUEST_FORCE rebuilds only the installer.
bios=$(BERTH_GUEST_FORCE= "$here/build-guest.sh")
uefi=$(BERTH_GUEST_FORCE= "$here/build-guest-uefi.sh" --unsigned)

inputs_hash() {
	(
		cd "$here"
		find build-installer-iso.sh installer -printf '%p %m\n' | LC_ALL=C sort
		find build-installer-iso.sh installer -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
		cat "$bios.stamp" "$uefi.stamp"
		apt-cache policy "${packages[@]}" | grep -E '^[^ ]|Candidate:'
	) | sha256sum | cut -d' ' -f1
}

mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
hash=$(inputs_hash)
FORCE=${BERTH_GUEST_FORCE:-} image_cache_check "$out" "$hash" build-installer-iso

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-installer.XXXXXX")
trap 'rm -rf "$work" "$out.tmp"' EXIT
cd "$work"
log "downloading ${packages[*]}"
download_debs "$work" "${packages[@]}"

# --- the ISO's files -----------------------------------------------------------------------
iso=$work/iso
mkdir -p "$iso/isolinux" overlay/installer
qemu-img convert -f qcow2 -O raw "$bios" bios.raw
qemu-img convert -f qcow2 -O raw "$uefi" uefi.raw
boot_start=$(sfdisk -d bios.raw | sed -n 's/.*start= *\([0-9]*\),.*/\1/p' | head -n 1)
[ -n "$boot_start" ] || die "unexpected BIOS image $bios"
mcopy -i "bios.raw@@$((boot_start * 512))" ::vmlinuz ::initrd.img "$iso/"
# Each guest disk as the 1 MiB chunks that hold data (qemu-img map of the qcow2: the rest reads
# as zeros, as the blank disk does), each gzip'd as <firmware>/<MiB index>.gz: the installer
# writes a few dozen MiB, not the whole 512 MiB disk, which is slow under TCG.
chunks() {
	local qcow2=$1 raw=$2 dir=$3 start length i
	mkdir -p "$dir"
	qemu-img map -f qcow2 --output=json "$qcow2" |
		sed -n 's/.*"start": \([0-9]*\), "length": \([0-9]*\),.*"data": true.*/\1 \2/p' |
		while read -r start length; do
			seq $((start >> 20)) $(((start + length - 1) >> 20))
		done | sort -un | while read -r i; do
			dd if="$raw" bs=1M skip="$i" count=1 status=none | gzip -1 > "$dir/$i.gz"
		done
}
log "taking the test guests' disks"
chunks "$bios" bios.raw overlay/installer/bios
chunks "$uefi" uefi.raw overlay/installer/uefi
rm bios.raw uefi.raw
install -m 755 "$here/installer/init" overlay/installer/init
# A second, uncompressed archive after the gzip'd one: the kernel unpacks both.
(cd overlay && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >> "$iso/initrd.img"

cp pkg/isolinux/usr/lib/ISOLINUX/isolinux.bin "$iso/isolinux/"
cp pkg/syslinux-common/usr/lib/syslinux/modules/bios/ldlinux.c32 "$iso/isolinux/"
cp "$here/installer/isolinux.cfg" "$iso/isolinux/"

mkfs.vfat -C "$iso/efiboot.img" 8192 > /dev/null
mmd -i "$iso/efiboot.img" ::/EFI ::/EFI/BOOT ::/EFI/debian
mcopy -i "$iso/efiboot.img" pkg/grub-efi-amd64-bin/usr/lib/grub/x86_64-efi/monolithic/grubx64.efi ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$iso/efiboot.img" "$here/installer/grub.cfg" ::/EFI/debian/grub.cfg
# GRUB's prefix is /EFI/debian on the device it was loaded from; from an El Torito image that
# device can be the whole CD (GRUB maps OVMF's CD-ROM partition to its disk): there too.
mkdir -p "$iso/EFI/debian"
cp "$here/installer/grub.cfg" "$iso/EFI/debian/"

# --- the ISO: El Torito for BIOS (ISOLINUX) and for UEFI (the FAT image) ------------------
log "making the ISO"
genisoimage -quiet -o "$out.tmp" -V BERTH_INSTALLER -J -R \
	-b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot -boot-load-size 4 -boot-info-table \
	-eltorito-alt-boot -efi-boot efiboot.img -no-emul-boot "$iso"
mv -f "$out.tmp" "$out"
echo "$hash" > "$out.stamp"
log "built $out ($(du -h "$out" | cut -f1))"
echo "$out"
