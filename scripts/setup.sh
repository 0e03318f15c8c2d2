#!/usr/bin/env bash
# Installs every build, run and test dependency of Berth from Debian's archive.
# Idempotent: when everything is already installed it only runs dpkg-query (well under a second).
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build pkg-config clang-format ccache
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libnl-3-dev libnl-route-3-dev libnftnl-dev libmnl-dev
  libisofs-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libssl-dev openssl
  zlib1g-dev liblzma-dev libzstd-dev  # streamed decompression of .gz, .xz, .zst images
  catch2
  # run
  qemu-system-x86 qemu-utils ca-certificates
  # the browser viewers' pinned libraries (scripts/build-web.sh: npm ci of supervisor/web); npm
  # below, unless the installed nodejs brings its own
  nodejs
  swtpm  # VM_TPM's TPM 2.0 emulator (swtpm_setup, in swtpm-tools, is not used)
  # test: real peers and inspection tools
  nftables iproute2 iputils-ping busybox isc-dhcp-client bind9-dnsutils util-linux procps curl genisoimage
  clang-14 libclang-rt-14-dev  # libFuzzer targets of the DHCP and DNS parsers (test/dhcp/fuzz)
  dnsmasq-base  # the upstream DNS of the node namespace in e2e tests and the demo (not used by berth)
  # test guest build (test/guest/build-guest.sh): partitions, filesystems, initramfs
  fdisk dosfstools mtools e2fsprogs cpio gzip
  # UEFI firmware (OVMF_CODE_4M*.fd, OVMF_VARS_4M*.fd in /usr/share/OVMF): the UEFI test guest's checks
  ovmf
  # Debian cloud image (test/cloudimage/build-cloud-image.sh) and its tests' SSH client
  mmdebstrap openssh-client
  # chart tests (test/chart/run.sh): manifests parsed with Debian's python3 (helm and kubeconform are built with the machine's Go)
  python3-yaml
  # console and screen tests (test/console, test/screen): headless Chromium driven by playwright-core from npm
  chromium
)
# Debian's npm, unless a nodejs that bundles npm (and conflicts with Debian's) is installed.
command -v npm >/dev/null || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "setup: missing packages: ${missing[*]}; run as root (or install them) and retry" >&2
  exit 1
fi

echo "setup: installing ${#missing[@]} packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done" >&2
