#!/usr/bin/env bash
# Installs, from Debian's archive, every host tool the cluster tier (test/cluster/*.sh, *.py) calls
# that scripts/setup.sh does not already install, then checks that each command is there. Idempotent:
# when everything is installed it only runs dpkg-query and `command -v` (well under a second).
# Root; called by e2e.sh and `cluster.sh up` (a machine that never saw the tier needs nothing else).
# Go (>= 1.26, for build-kube.sh and scripts/install-helm.sh) comes with the machine image, not apt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LOG_PREFIX=cluster-setup
# shellcheck source=lib.sh
. "$here/lib.sh"  # log, die, ensure_packages

packages=(
  containerd runc                 # the node's container runtime (cluster.sh: containerd, ctr, runc)
  containernetworking-plugins     # the pod network's CNI plugins: ptp, host-local, portmap, loopback
  buildah fuse-overlayfs          # images: berth's, the helm-test image, the pause sandbox image
                                  # (fuse-overlayfs: buildah's recommend, present in every verified run)
  debootstrap debian-archive-keyring  # build-image.sh: the image's Debian base
  gcc libc6-dev                   # the static pause binary (pause.c)
  openssl                         # the cluster's PKI
  iptables nftables               # kube-proxy (iptables mode, nftables with KUBE_PROXY_MODE=nftables)
  iproute2 util-linux procps      # ip; nsenter, unshare, losetup, findmnt, flock; pgrep
  curl busybox python3 ca-certificates  # e2e: probes, the node's HTTP server, attach.py/ws_probe.py
)
ensure_packages "${packages[@]}"
log "packages: ${step_note}"

# Every command the tier's scripts run (a package that stopped shipping one is caught here).
CNI_BIN=/usr/lib/cni
missing=()
for need in containerd ctr runc buildah debootstrap gcc openssl iptables nft ip nsenter unshare losetup \
  findmnt flock pgrep curl busybox python3 sha256sum base64 setsid timeout tar \
  "$CNI_BIN/ptp" "$CNI_BIN/host-local" "$CNI_BIN/portmap" "$CNI_BIN/loopback"; do
  command -v "$need" >/dev/null || [[ -x $need ]] || missing+=("$need")
done
export PATH=$PATH:/usr/local/go/bin  # where the machine image keeps Go
command -v go >/dev/null || missing+=("go (Go >= 1.26, not packaged by Debian 12)")
((${#missing[@]} == 0)) || die "still missing after installing: ${missing[*]}"
