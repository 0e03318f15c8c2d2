# Shared by the scripts that build Berth's test disk images (test/guest/build-guest.sh,
# test/cloudimage/build-cloud-image.sh); sourced, not run. Nothing here needs root or a loop
# device: file systems are made from files (mkfs.vfat -C, mkfs.ext4 -d), SYSLINUX is installed
# with its mtools-based installer, and the partitions are copied into the disk with dd.

# image_cache_check OUT HASH LOG_PREFIX: takes the build lock of OUT (held until the script
# exits) and, when OUT exists and OUT.stamp holds HASH, prints OUT and exits 0: the cached image
# is current. Set FORCE=1 to rebuild anyway.
image_cache_check() {
	local out=$1 hash=$2 prefix=$3
	exec 9> "$out.lock"
	flock 9 # one build at a time per output
	if [ -z "${FORCE:-}" ] && [ -f "$out" ] && [ "$(cat "$out.stamp" 2>/dev/null)" = "$hash" ]; then
		echo "$prefix: up to date: $out" >&2
		echo "$out"
		exit 0
	fi
}

# image_cache_store RAW OUT HASH: converts the raw disk RAW to qcow2 (compressed when
# QCOW2_COMPRESS=1) under a temporary name, renames it to OUT and writes OUT.stamp.
image_cache_store() {
	local raw=$1 out=$2 hash=$3
	local compress=()
	[ "${QCOW2_COMPRESS:-0}" = 1 ] && compress=(-c)
	qemu-img convert "${compress[@]}" -f raw -O qcow2 "$raw" "$out.tmp"
	mv -f "$out.tmp" "$out"
	echo "$hash" > "$out.stamp"
}

# syslinux_disk RAW DISK_MIB BOOT_MIB BOOT_LABEL PKG_DIR SECOND_IMG FILE=NAME...
# Writes RAW, an MBR disk of DISK_MIB MiB that SeaBIOS boots:
#   partition 1: FAT16 BOOT_LABEL of BOOT_MIB MiB, bootable, with SYSLINUX and each FILE copied
#                to NAME at its root (syslinux.cfg among them);
#   partition 2: the rest of the disk, SECOND_IMG copied in (make it with second_partition_kib).
# PKG_DIR holds the unpacked syslinux and syslinux-common packages (download_debs' DIR/pkg).
syslinux_disk() {
	local raw=$1 disk_mib=$2 boot_mib=$3 label=$4 pkg=$5 second=$6
	shift 6
	local boot_start=2048
	local boot_sectors=$((boot_mib * 2048))
	local second_start=$((boot_start + boot_sectors))
	local second_sectors=$((disk_mib * 2048 - second_start))
	local boot=$raw.boot pair
	rm -f "$boot"
	mkfs.vfat -F 16 -n "$label" -h "$boot_start" -C "$boot" $((boot_mib * 1024)) > /dev/null
	for pair in "$@"; do
		mcopy -i "$boot" "${pair%%=*}" "::${pair#*=}"
	done
	"$pkg/syslinux/usr/bin/syslinux" --install "$boot"
	rm -f "$raw"
	truncate -s "${disk_mib}M" "$raw"
	sfdisk -q "$raw" <<-SFDISK
		label: dos
		start=$boot_start, size=$boot_sectors, type=6, bootable
		start=$second_start, size=$second_sectors, type=83
	SFDISK
	dd if="$pkg/syslinux-common/usr/lib/syslinux/mbr/mbr.bin" of="$raw" conv=notrunc status=none
	dd if="$boot" of="$raw" bs=512 seek=$boot_start conv=notrunc,sparse status=none
	dd if="$second" of="$raw" bs=512 seek=$second_start conv=notrunc,sparse status=none
	rm -f "$boot"
}

# second_partition_kib DISK_MIB BOOT_MIB: the size in KiB of syslinux_disk's partition 2.
second_partition_kib() {
	echo $(((($1 - $2) * 2048 - 2048) / 2))
}

# download_debs DIR PACKAGE...: apt-get download of the candidate versions into DIR/debs, each
# unpacked into DIR/pkg/<package> (dpkg -x). Needs no root.
download_debs() {
	local dir=$1 deb name
	shift
	mkdir -p "$dir/debs" "$dir/pkg"
	(cd "$dir/debs" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "$@" >&2)
	for deb in "$dir"/debs/*.deb; do
		name=$(dpkg-deb -f "$deb" Package)
		dpkg -x "$deb" "$dir/pkg/$name"
	done
}
