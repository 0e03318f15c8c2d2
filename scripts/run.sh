#!/usr/bin/env bash
# Berth's main job: a VM booting in a pod-like network namespace on the built-in guest, reachable
# at the pod IP. Installs and builds what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
echo "run: the VM path is not built yet (QEMU supervision, networking, DHCP/DNS and the drive" >&2
echo "run: land in issues 3-6; the pod-like demo in issue 9). What exists: configuration and the" >&2
echo "run: supervisor skeleton. Try: IMG_SOURCE=/dev/null build/supervisor/berth config" >&2
exit 1
