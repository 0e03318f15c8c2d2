#!/bin/bash
# Builds the test guest with busybox's DHCPv6 client: the built-in guest (build-guest.sh, built
# or reused first) with a static udhcpc6, compiled from Debian's own busybox source package (the
# version of the busybox binary package apt would install; Debian builds it without udhcpc6), and
# its event script dhcpv6/default6.script and dhcpv6/wait-for-ll6 (waits for eth0's link-local
# address to leave DAD, to run before udhcpc6) added to its initramfs (a second cpio archive appended
# to the base's). Nothing runs it at boot: a test's user-data does.
#
#   test/guest/build-guest-dhcpv6.sh [OUTPUT]
#   default OUTPUT: ${BERTH_CACHE:-/var/cache/berth}/guest/berth-guest-dhcpv6.qcow2
#
# A variant under its own name: berth-guest.qcow2 and its stamp stay as build-guest.sh makes
# them. Prints OUTPUT on stdout; cached like build-guest.sh (OUTPUT.stamp: this script, dhcpv6/,
# the base image's stamp). The udhcpc6 binary is cached beside OUTPUT (OUTPUT's directory,
# busybox-udhcpc6 and its stamp: the recipe and the source version). Root is not needed. Host
# tools: those of build-guest.sh, dpkg-source, a C compiler, make and glibc's static libc (libc6-dev).
# The source package is fetched with apt-get source through a private deb-src list made from the
# archive and suite the busybox candidate comes from; the system's apt configuration is untouched.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/../lib/disk-image.sh"
out=${1:-${BERTH_CACHE:-/var/cache/berth}/guest/berth-guest-dhcpv6.qcow2}
boot_start=2048 # build-guest.sh's layout (syslinux_disk): the FAT boot partition's first sector
script=/usr/share/udhcpc/default6.script # udhcpc6's default -s

log() { echo "build-guest-dhcpv6: $*" >&2; }
die() { log "error: $*"; exit 1; }

base=$("$here/build-guest.sh")
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
bin=$(dirname "$out")/busybox-udhcpc6
work=$(mktemp -d "${TMPDIR:-/tmp}/berth-guest-dhcpv6.XXXXXX")
trap 'rm -rf "$work" "$out.tmp" "$bin.tmp"' EXIT

# The source version behind the busybox binary package's candidate ("busybox (1:1.35.0-4+deb12u1)"
# for a binNMU, or just "busybox" when both versions agree).
candidate=$(apt-cache policy busybox | awk '$1 == "Candidate:" { print $2 }')
if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then die "apt knows no busybox candidate"; fi
source_version=$(apt-cache show "busybox=$candidate" | awk -F'[()]' '/^Source:/ { print $2; exit }')
source_version=${source_version:-$candidate}

# The static udhcpc6, built once per source version and recipe (this function's text: edits
# elsewhere in this script do not recompile it).
build_udhcpc6() {
	# The archive and suite of the candidate ("500 http://... bookworm/main amd64 Packages").
	local origin uri suite keyring apt_opts
	origin=$(apt-cache policy busybox | awk -v v="$candidate" '
		/^ (\*\*\*|   ) [^ ]/ { f = $1 == v || ($1 == "***" && $2 == v); next } # a version line
		f && /Packages$/ { print $2, $3; exit }')
	[ -n "$origin" ] || die "no archive offers busybox $candidate"
	uri=${origin% *}
	suite=${origin#* }
	suite=${suite%%/*}
	keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/src"
	echo "deb-src [signed-by=$keyring] $uri $suite main" > "$work/apt/sources.list"
	apt_opts=(-q -o Dir::Etc::SourceList="$work/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o Dir::State::Lists="$work/apt/lists" -o Dir::Cache="$work/apt/cache"
		-o APT::Sandbox::User="$(id -un)")
	log "fetching busybox $source_version's source ($suite)"
	apt-get "${apt_opts[@]}" update >&2
	(cd "$work/src" && apt-get "${apt_opts[@]}" source --download-only "busybox=$source_version" >&2)
	dpkg-source -x "$work/src"/busybox_*.dsc "$work/busybox" >&2 # Debian's patches applied
	cd "$work/busybox"
	make -s allnoconfig > /dev/null
	# Only udhcpc6 (RFC 3646: DNS servers and search list), static; the guest's own busybox has
	# the ip, grep, sed and awk its script needs.
	sed -i -E '/^(# )?CONFIG_(STATIC|FEATURE_IPV6|UDHCPC6|FEATURE_UDHCPC6_RFC3646|UDHCPC_DEFAULT_SCRIPT|UDHCPC_DEFAULT_INTERFACE)[= ]/d' .config
	cat >> .config <<-CONFIG
		CONFIG_STATIC=y
		CONFIG_FEATURE_IPV6=y
		CONFIG_UDHCPC6=y
		CONFIG_FEATURE_UDHCPC6_RFC3646=y
		CONFIG_UDHCPC_DEFAULT_SCRIPT="$script"
		CONFIG_UDHCPC_DEFAULT_INTERFACE="eth0"
	CONFIG
	{ yes '' || :; } | make -s oldconfig > /dev/null 2>&1
	grep -qx 'CONFIG_UDHCPC6=y' .config || die "busybox $source_version's config has no CONFIG_UDHCPC6"
	grep -qx 'CONFIG_STATIC=y' .config || die "busybox $source_version's config refused CONFIG_STATIC"
	log "compiling udhcpc6 (busybox $source_version)"
	make -s -j"$(nproc)" busybox > "$work/make.log" 2>&1 || { tail -n 30 "$work/make.log" >&2; die "make failed"; }
	cp busybox "$bin.tmp"
	mv -f "$bin.tmp" "$bin"
	echo "$bin_hash" > "$bin.stamp"
	cd "$work"
}
bin_hash=$( (declare -f build_udhcpc6; echo "script $script busybox $source_version") | sha256sum | cut -d' ' -f1)
(
	exec 8> "$bin.lock"
	flock 8
	if [ ! -f "$bin" ] || [ "$(cat "$bin.stamp" 2>/dev/null)" != "$bin_hash" ]; then
		build_udhcpc6
	fi
)

inputs_hash() {
	(
		cd "$here"
		find build-guest-dhcpv6.sh dhcpv6 -printf '%p %m\n' | LC_ALL=C sort
		find build-guest-dhcpv6.sh dhcpv6 -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
		cat "$base.stamp" "$bin.stamp"
	) | sha256sum | cut -d' ' -f1
}
hash=$(inputs_hash)
FORCE=${BERTH_GUEST_FORCE:-} image_cache_check "$out" "$hash" build-guest-dhcpv6

cd "$work"
log "adding udhcpc6 to $base"
qemu-img convert -f qcow2 -O raw "$base" disk.raw
boot="disk.raw@@$((boot_start * 512))" # mtools reads and writes the FAT partition in place
mcopy -i "$boot" ::initrd.img initrd.img
zcat initrd.img | cpio -it --quiet > base.list
if grep -qx 'usr/bin/udhcpc6' base.list; then die "the base already has a udhcpc6"; fi
# A second cpio archive after the base's: the kernel unpacks both, in order.
install -D -m 755 "$bin" overlay/usr/bin/udhcpc6 # busybox runs the applet its name says
install -D -m 755 "$here/dhcpv6/default6.script" "overlay$script"
install -D -m 755 "$here/dhcpv6/wait-for-ll6" overlay/usr/sbin/wait-for-ll6
(cd overlay && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9 >> initrd.img
mcopy -o -i "$boot" initrd.img ::initrd.img
image_cache_store disk.raw "$out" "$hash"
log "built $out ($(du -h "$out" | cut -f1), udhcpc6 of busybox $source_version)"
echo "$out"
