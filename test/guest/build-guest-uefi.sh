#!/bin/bash
# Builds the UEFI variant of Berth's test guest from the BIOS one and Debian's signed boot chain.
#
#   test/guest/build-guest-uefi.sh [--unsigned] [OUTPUT]
#   default OUTPUT: ${BERTH_CACHE:-/var/cache/berth}/guest/berth-guest-uefi.qcow2
#                   (berth-guest-uefi-unsigned.qcow2 with --unsigned)
#
# Prints OUTPUT on stdout; progress goes to stderr. Cached like build-guest.sh: OUTPUT.stamp holds
# the hash of this script, uefi/, the BIOS image's stamp and the package versions
# (BERTH_GUEST_FORCE=1 rebuilds it, not the BIOS image). Root is not needed.
#
# It runs build-guest.sh (cached) and takes from the BIOS image its kernel (Debian's signed cloud
# kernel), its initramfs and its empty /data file system, so the two guests run the same system.
# Disk layout (GPT, OVMF boots it):
#   partition 1  EFI system partition, FAT16 "BERTHEFI" 32 MiB:
#                \EFI\BOOT\BOOTX64.EFI  Debian's shim, signed by Microsoft's UEFI CA
#                \EFI\BOOT\grubx64.efi  Debian's GRUB, signed by Debian (shim checks it)
#                \EFI\BOOT\mmx64.efi    shim's MokManager, signed by Debian
#                \EFI\debian\grub.cfg   read by GRUB (its prefix is /EFI/debian)
#                \vmlinuz \initrd.img   GRUB checks the kernel's signature through shim
#   partition 2  ext4 "berth-data", mounted at /data (as on the BIOS guest)
# --unsigned: \EFI\BOOT\BOOTX64.EFI is the same GRUB unsigned (grub-efi-amd64-bin's monolithic
# grubx64.efi, no shim): plain UEFI boots it, Secure Boot refuses it.
#
# The initramfs is the BIOS one with a second cpio archive appended (the kernel unpacks both; later
# files replace earlier ones): uefi/efi as /etc/berth/efi, run first by etc/inittab, uefi/tpm
# which it runs, and the efivarfs module it loads.
#
# Host tools: as build-guest.sh. Guest packages, downloaded, never installed: shim-signed,
# shim-helpers-amd64-signed, grub-efi-amd64-signed (grub-efi-amd64-bin with --unsigned) and the
# BIOS image's kernel package (for efivarfs.ko).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib/disk-image.sh"
source "$here/../lib/efi-disk.sh"
variant=signed suffix=
if [ "${1:-}" = --unsigned ]; then
	variant=unsigned suffix=-unsigned
	shift
fi
out=${1:-${BERTH_CACHE:-/var/cache/berth}/guest/berth-guest-uefi$suffix.qcow2}
read -r -a packages <<< "$(efi_packages "$variant")"
esp_mib=32

log() { echo "build-guest-uefi: $*" >&2; }
die() { log "error: $*"; exit 1; }

bios=$(BERTH_GUEST_FORCE= "$here/build-guest.sh") # BERTH_GUEST_FORCE rebuilds only the UEFI image

inputs_hash() {
	(
		cd "$here"
		echo "$variant"
		find build-guest-uefi.sh uefi ../lib/efi-disk.sh -printf '%p %m\n' | LC_ALL=C sort
		find build-guest-uefi.sh uefi ../lib/efi-disk.sh -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
		cat "$bios.stamp"
		apt-cache policy "${packages[@]}" | grep -E '^[^ ]|Candidate:'
	) | sha256sum | cut -d' ' -f1
}

mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
hash=$(inputs_hash)
FORCE=${BERTH_GUEST_FORCE:-} image_cache_check "$out" "$hash" build-guest-uefi

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-guest-uefi.XXXXXX")
trap 'rm -rf "$work" "$out.tmp"' EXIT
cd "$work"

# --- the BIOS image's parts --------------------------------------------------------------
log "unpacking $bios"
qemu-img convert -f qcow2 -O raw "$bios" bios.raw
# build-guest.sh's layout: partition 1 from sector 2048, partition 2 after it to the disk's end.
read -r boot_start _ data_start data_sectors < <(
	sfdisk -d bios.raw | sed -n 's/.*start= *\([0-9]*\), size= *\([0-9]*\),.*/\1 \2/p' | tr '\n' ' '; echo)
mcopy -i "bios.raw@@$((boot_start * 512))" ::vmlinuz ::initrd.img ::syslinux.cfg .
dd if=bios.raw of=data.img bs=512 skip="$data_start" count="$data_sectors" status=none
rm bios.raw
kver=$(zcat initrd.img | cpio -it --quiet 'lib/modules/*' | sed -n 's|^lib/modules/\([^/]*\)/.*|\1|p' | head -n 1)
cmdline=$(sed -n 's/^ *APPEND //p' syslinux.cfg)
if [ -z "$kver" ] || [ -z "$cmdline" ]; then die "unexpected BIOS image $bios"; fi

log "downloading linux-image-$kver ${packages[*]}"
download_debs "$work" "linux-image-$kver" "${packages[@]}"

# --- initramfs overlay -------------------------------------------------------------------
overlay=$work/overlay
mkdir -p "$overlay/etc/berth"
(cd "$overlay" && zcat "$work/initrd.img" | cpio -i --quiet etc/inittab)
sed -i '0,/^::sysinit:/s||::sysinit:/etc/berth/efi\n&|' "$overlay/etc/inittab"
grep -q '^::sysinit:/etc/berth/efi$' "$overlay/etc/inittab" || die "cannot add efi to etc/inittab"
install -m 755 "$here"/uefi/* "$overlay/etc/berth/"
install -m 644 "pkg/linux-image-$kver/lib/modules/$kver/kernel/fs/efivarfs/efivarfs.ko" "$overlay/etc/berth/"
(cd "$overlay" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9 >> initrd.img

# --- disk: GPT, the ESP, then /data; 1 MiB more than the BIOS disk for the backup GPT ---------
log "making the disk"
efi_esp esp.img "$esp_mib" BERTHEFI "$boot_start" pkg "$variant" "$cmdline" vmlinuz=vmlinuz initrd.img=initrd.img
gpt_disk disk.raw "$boot_start" esp.img data.img berth-data
image_cache_store disk.raw "$out" "$hash"
log "built $out ($(du -h "$out" | cut -f1), $variant, kernel $kver)"
echo "$out"
