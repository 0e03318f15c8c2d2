# The UEFI half of test/lib/disk-image.sh, shared by the scripts that build Berth's UEFI test disk
# images (test/guest/build-guest-uefi.sh, test/cloudimage/build-cloud-image.sh --uefi); sourced,
# not run. As there, nothing needs root, a loop device or a mount: the EFI system partition is
# made with mkfs.vfat -C and mtools, the GPT with sfdisk on a plain file, the partitions are
# copied in with dd.

# efi_esp ESP_IMG ESP_MIB LABEL START PKG_DIR SIGNED CMDLINE FILE=NAME...
# Writes ESP_IMG, a FAT16 file system of ESP_MIB MiB labelled LABEL for a partition that starts at
# sector START, holding Debian's boot chain from PKG_DIR (download_debs' DIR/pkg) and each FILE
# copied to NAME at its root (the kernel and initramfs, at least /vmlinuz and /initrd.img):
#   SIGNED=signed (PKG_DIR has shim-signed, shim-helpers-amd64-signed, grub-efi-amd64-signed):
#     \EFI\BOOT\BOOTX64.EFI  Debian's shim, signed by Microsoft's UEFI CA
#     \EFI\BOOT\grubx64.efi  Debian's GRUB, signed by Debian (shim checks it)
#     \EFI\BOOT\mmx64.efi    shim's MokManager, signed by Debian
#   SIGNED=unsigned (PKG_DIR has grub-efi-amd64-bin): \EFI\BOOT\BOOTX64.EFI is the monolithic
#     GRUB, unsigned: plain UEFI boots it, Secure Boot refuses it.
#   \EFI\debian\grub.cfg  read by GRUB (its prefix is /EFI/debian): /vmlinuz with CMDLINE and
#                         /initrd.img, at once (under Secure Boot GRUB checks the kernel through shim)
efi_esp() {
	local esp=$1 esp_mib=$2 label=$3 start=$4 pkg=$5 signed=$6 cmdline=$7 pair
	shift 7
	rm -f "$esp"
	mkfs.vfat -F 16 -n "$label" -h "$start" -C "$esp" $((esp_mib * 1024)) > /dev/null
	mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/debian
	if [ "$signed" = signed ]; then
		mcopy -i "$esp" "$pkg/shim-signed/usr/lib/shim/shimx64.efi.signed" ::/EFI/BOOT/BOOTX64.EFI
		mcopy -i "$esp" "$pkg/shim-helpers-amd64-signed/usr/lib/shim/mmx64.efi.signed" ::/EFI/BOOT/mmx64.efi
		mcopy -i "$esp" "$pkg/grub-efi-amd64-signed/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed" \
			::/EFI/BOOT/grubx64.efi
	else
		mcopy -i "$esp" "$pkg/grub-efi-amd64-bin/usr/lib/grub/x86_64-efi/monolithic/grubx64.efi" \
			::/EFI/BOOT/BOOTX64.EFI
	fi
	printf 'set timeout=0\nlinux /vmlinuz %s\ninitrd /initrd.img\nboot\n' "$cmdline" > "$esp.grub.cfg"
	mcopy -i "$esp" "$esp.grub.cfg" ::/EFI/debian/grub.cfg
	rm -f "$esp.grub.cfg"
	for pair in "$@"; do
		mcopy -i "$esp" "${pair%%=*}" "::${pair#*=}"
	done
}

# efi_packages SIGNED: the packages efi_esp takes its boot chain from.
efi_packages() {
	if [ "$1" = signed ]; then
		echo shim-signed shim-helpers-amd64-signed grub-efi-amd64-signed
	else
		echo grub-efi-amd64-bin
	fi
}

# gpt_disk RAW START ESP_IMG SECOND_IMG SECOND_NAME
# Writes RAW, a GPT disk that OVMF boots: partition 1, the EFI system partition, from sector START
# (ESP_IMG copied in), partition 2, a Linux file system named SECOND_NAME, right after it
# (SECOND_IMG copied in), and 1 MiB at the end for the backup GPT. The images' sizes are whole
# sectors.
gpt_disk() {
	local raw=$1 start=$2 esp=$3 second=$4 name=$5
	local esp_sectors second_sectors second_start
	esp_sectors=$(($(stat -c %s "$esp") / 512))
	second_sectors=$(($(stat -c %s "$second") / 512))
	second_start=$((start + esp_sectors))
	rm -f "$raw"
	truncate -s $(((second_start + second_sectors + 2048) * 512)) "$raw"
	sfdisk -q "$raw" <<-SFDISK
		label: gpt
		start=$start, size=$esp_sectors, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI system partition"
		start=$second_start, size=$second_sectors, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="$name"
	SFDISK
	dd if="$esp" of="$raw" bs=512 seek="$start" conv=notrunc,sparse status=none
	dd if="$second" of="$raw" bs=512 seek="$second_start" conv=notrunc,sparse status=none
}
