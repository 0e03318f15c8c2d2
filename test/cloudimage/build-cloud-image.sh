#!/bin/bash
# Builds a stock-like Debian 12 "genericcloud" qcow2 image from Debian packages: the kind of image
# Berth's users boot (systemd, udev, cloud-init, sshd, netplan + systemd-networkd, Debian's cloud
# kernel), for the tests that prove a feature on a real distribution and not only on the busybox
# test guest (test/guest).
#
#   test/cloudimage/build-cloud-image.sh [--uefi] [OUTPUT]
#   default OUTPUT: ${BERTH_CACHE:-/var/cache/berth}/cloudimage/debian-12-genericcloud.qcow2
#                   (debian-12-genericcloud-uefi.qcow2 with --uefi)
#
# Prints OUTPUT on stdout; progress goes to stderr. Cached: when OUTPUT exists and OUTPUT.stamp
# holds the hash of this directory's files, of test/lib/disk-image.sh and of the packages'
# candidate versions, nothing is rebuilt (BERTH_CLOUDIMAGE_FORCE=1 rebuilds anyway). Needs root
# (mmdebstrap's root mode runs the packages' maintainer scripts in a chroot) and network access
# to Debian's archive; no loop device, no mount of the image.
#
# Disk (MBR, SeaBIOS boots it directly; 2 GiB virtual):
#   partition 1  FAT16 "DEBBOOT" 64 MiB: SYSLINUX, vmlinuz, initrd.img (copies of the chroot's
#                /boot; not mounted by the guest)
#   partition 2  ext4 "cloudimg-rootfs", the rest: the root file system, last on the disk so
#                cloud-init's growpart can grow it when the disk grows
# --uefi: the UEFI variant (GPT, OVMF boots it, Secure Boot passes; 2 GiB + 1 MiB for the backup
# GPT), with tpm2-tools, efibootmgr, efivar and mokutil in the root file system:
#   partition 1  EFI system partition, FAT16 "DEBEFI" 64 MiB: Debian's signed shim and GRUB,
#                \EFI\debian\grub.cfg, vmlinuz, initrd.img (test/lib/efi-disk.sh)
#   partition 2  ext4 "cloudimg-rootfs", as above
# Host tools: mmdebstrap (installed here when missing), apt, dpkg, qemu-utils, fdisk, dosfstools,
# mtools, e2fsprogs, util-linux.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib/disk-image.sh"
source "$here/../lib/efi-disk.sh"
variant=bios suffix=
if [ "${1:-}" = --uefi ]; then
	variant=uefi suffix=-uefi
	shift
fi
out=${1:-${BERTH_CACHE:-/var/cache/berth}/cloudimage/debian-12-genericcloud$suffix.qcow2}
suite=bookworm
# The archive this machine's apt uses for a suite (its sources, so a local mirror is honoured).
apt_archive() {
	apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' |
		awk -v suite="$1" '$2 == suite { print $1; exit }'
}
mirror=$(apt_archive "$suite")
security=$(apt_archive "$suite-security")
# What is installed on top of minbase (README.md says why each is there).
packages=(
	systemd-sysv udev dbus
	linux-image-cloud-amd64 initramfs-tools zstd
	cloud-init cloud-guest-utils
	netplan.io systemd-resolved
	openssh-server sudo
	e2fsprogs eject qemu-guest-agent
	locales
)
# The boot loader's packages, downloaded and used here, not installed.
boot_packages=(syslinux syslinux-common)
if [ "$variant" = uefi ]; then
	packages+=(tpm2-tools efibootmgr efivar mokutil)
	read -r -a boot_packages <<< "$(efi_packages signed)"
fi
disk_mib=2048
boot_mib=64

log() { echo "build-cloud-image: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap runs the packages' maintainer scripts in a chroot)"
if ! command -v mmdebstrap > /dev/null; then
	log "installing mmdebstrap"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap > /dev/null
fi

# Everything the image depends on: our files (names, modes, contents) and the candidate versions
# of the packages it is made of (their dependencies follow the same archive state).
inputs_hash() {
	(
		cd "$here"
		echo "$variant"
		find build-cloud-image.sh syslinux.cfg.in rootfs ../lib/disk-image.sh ../lib/efi-disk.sh -printf '%p %m\n' | LC_ALL=C sort
		find build-cloud-image.sh syslinux.cfg.in rootfs ../lib/disk-image.sh ../lib/efi-disk.sh -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
		apt-cache policy "${packages[@]}" "${boot_packages[@]}" | grep -E '^[^ ]|Candidate:'
	) | sha256sum | cut -d' ' -f1
}

mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
hash=$(inputs_hash)
FORCE=${BERTH_CLOUDIMAGE_FORCE:-} image_cache_check "$out" "$hash" build-cloud-image

started=$SECONDS
work=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-cloudimage.XXXXXX")
trap 'rm -rf "$work" "$out.tmp"' EXIT
root=$work/root
download_debs "$work" "${boot_packages[@]}"

# --- root file system ----------------------------------------------------------------------
# A filesystem UUID that follows from the inputs: the same inputs give the same image.
uuid=$(echo "$hash" | sed -E 's/^(.{8})(.{4}).(.{3}).(.{3})(.{12}).*/\1-\2-4\3-8\4-\5/')
printf '# <file system> <mount point> <type> <options> <dump> <pass>\nUUID=%s / ext4 rw,discard,errors=remount-ro,x-systemd.growfs 0 1\n' \
	"$uuid" > "$work/fstab"
[ -n "$mirror" ] && [ -n "$security" ] ||
	die "apt has no $suite and $suite-security sources here (apt-get update?)"
log "mmdebstrap $suite: minbase + ${packages[*]}"
# mmdebstrap's apt hooks name descriptors above 9 (cat >&11) when low ones are taken, which the
# chroot's dash cannot parse ("Bad fd number"): close what this script inherited, lock (9) aside.
for fd in /proc/$$/fd/*; do
	fd=${fd##*/}
	if [ "$fd" -gt 2 ] && [ "$fd" -ne 9 ]; then eval "exec $fd>&-"; fi
done
# Documentation, manual pages and translations are left out (dpkg path-exclude, as in Debian's
# docker images); copyright files stay. en_US.UTF-8 is generated: cloud-init's locale module sets
# it on Debian, and update-locale refuses a locale that does not exist.
mmdebstrap --variant=minbase --mode=root --format=directory \
	--include="$(IFS=,; echo "${packages[*]}")" \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-include=/usr/share/locale/locale.alias' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/info/*' \
	--essential-hook="echo 'locales locales/locales_to_be_generated multiselect en_US.UTF-8 UTF-8' | chroot \"\$1\" debconf-set-selections" \
	--customize-hook="cp -a $here/rootfs/. \"\$1/\" && cp $work/fstab \"\$1/etc/fstab\"" \
	--customize-hook='chroot "$1" update-initramfs -u -k all' \
	--customize-hook='chroot "$1" apt-get clean' \
	"$suite" "$root" \
	"deb $mirror $suite main" "deb $mirror $suite-updates main" "deb $security $suite-security main" \
	>&2

log "configuring"
(cd "$here/rootfs" && find . -type f) | while read -r file; do
	chown 0:0 "$root/$file"
	chmod 644 "$root/$file"
done
chmod 600 "$root"/etc/netplan/*.yaml # netplan's files hold secrets (Wi-Fi keys) and say so
# What every instance must make for itself (as Debian's image build cleans up): the machine id
# (systemd, first boot), the SSH host keys (cloud-init), the resolver (systemd-resolved's stub).
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/*.log \
	"$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old "$root"/tmp/* "$root"/root/.bash_history

kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -n 1)
kver=${kernel##*/vmlinuz-}
[ -f "$root/boot/initrd.img-$kver" ] || die "no initramfs for $kver in the chroot"
cp "$kernel" "$work/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$work/initrd.img"
if [ "$variant" = uefi ]; then
	# /dev/tpmrm0 under QEMU's tpm-crb (UEFI) or tpm-tis: the kernel's TPM drivers, built in or
	# modules (Debian's cloud kernel has them).
	for option in TCG_TPM TCG_CRB TCG_TIS; do
		grep -Eq "^CONFIG_$option=[ym]" "$root/boot/config-$kver" || die "kernel $kver has no CONFIG_$option"
	done
fi
log "kernel $kver; root file system $(du -sh --apparent-size "$root" | cut -f1)"

# --- disk --------------------------------------------------------------------------------
log "making the disk"
sed "s/@ROOT_UUID@/$uuid/" "$here/syslinux.cfg.in" > "$work/syslinux.cfg"
boot_start=2048 # syslinux_disk's and gpt_disk's first partition
mkfs.ext4 -q -F -b 4096 -L cloudimg-rootfs -U "$uuid" -d "$root" \
	-E lazy_itable_init=0,lazy_journal_init=0 \
	"$work/root.img" "$(second_partition_kib "$disk_mib" "$boot_mib")k" > /dev/null
rm -rf "$root"
if [ "$variant" = uefi ]; then
	efi_esp "$work/esp.img" "$boot_mib" DEBEFI "$boot_start" "$work/pkg" signed \
		"$(sed -n 's/^ *APPEND //p' "$work/syslinux.cfg")" "$work/vmlinuz=vmlinuz" "$work/initrd.img=initrd.img"
	gpt_disk "$work/disk.raw" "$boot_start" "$work/esp.img" "$work/root.img" cloudimg-rootfs
else
	syslinux_disk "$work/disk.raw" "$disk_mib" "$boot_mib" DEBBOOT "$work/pkg" "$work/root.img" \
		"$work/vmlinuz=vmlinuz" "$work/initrd.img=initrd.img" "$work/syslinux.cfg=syslinux.cfg"
fi
QCOW2_COMPRESS=1 image_cache_store "$work/disk.raw" "$out" "$hash"
log "built $out ($(du -h "$out" | cut -f1), $variant, kernel $kver) in $((SECONDS - started)) s"
echo "$out"
