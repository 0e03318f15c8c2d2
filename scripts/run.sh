#!/usr/bin/env bash
# Berth's main job: the built-in guest booting under berth in a pod-like network namespace
# (Calico style: /32 pod IP 10.77.0.5, default via 169.254.1.1, MTU 1450) beside a "node"
# namespace. Installs and builds what it needs first, shows the guest's console, and shuts the
# guest down gracefully on Ctrl-C; the namespaces are removed afterwards, also after a failure.
#   BERTH_RUN_DIR  where the pet disk and runtime files go (default: a fresh temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh >/dev/null
guest=$(test/guest/build-guest.sh)
dir=${BERTH_RUN_DIR:-$(mktemp -d /tmp/berth-run-XXXXXX)}
name=berth-run
test/e2e/podnet.sh up "$name"
trap 'test/e2e/podnet.sh down "$name"' EXIT
echo "run: pod namespace $name-pod (pod IP 10.77.0.5), node namespace $name-node" >&2
echo "run: pet disk and runtime files in $dir; Ctrl-C powers the guest off" >&2
echo "run: not built yet: DHCP/DNS for the guest, the image download, the config drive" >&2
export IMG_SOURCE=$guest BERTH_DISK_DIR=$dir/disks BERTH_RUNTIME_DIR=$dir/run
export VM_MEMORY=${VM_MEMORY:-256M}
status=0
ip netns exec "$name-pod" build/supervisor/berth || status=$?
echo "run: berth exited with $status" >&2
exit "$status"
