#!/usr/bin/env bash
# Berth's main job: the built-in guest booting under berth. Installs and builds what it needs
# first, shows the guest's console, and shuts the guest down gracefully on Ctrl-C.
#   BERTH_RUN_DIR  where the pet disk and runtime files go (default: a fresh temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh >/dev/null
guest=$(test/guest/build-guest.sh)
dir=${BERTH_RUN_DIR:-$(mktemp -d /tmp/berth-run-XXXXXX)}
echo "run: pet disk and runtime files in $dir" >&2
echo "run: not built yet: the pod network namespace, NAT, DHCP/DNS, image download and config" >&2
echo "run: drive (issues 4-6, 9); the guest boots without a network. Ctrl-C powers it off." >&2
export IMG_SOURCE=$guest BERTH_DISK_DIR=$dir/disks BERTH_RUNTIME_DIR=$dir/run
export VM_MEMORY=${VM_MEMORY:-256M} NO_VNC=${NO_VNC:-1}
# berth is the foreground process: Ctrl-C reaches it (not QEMU, which has its own process group).
exec build/supervisor/berth
