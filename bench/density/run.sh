#!/usr/bin/env bash
# Density in the real cluster (test/cluster/): N Berth VMs created as a burst, one StatefulSet every
# 100 ms (the shape of KubeVirt's density test: small guests, one vCPU, NAT-like pod networking),
# timed from the pod's creation to QEMU running, to the guest's DHCP lease and to the pod Ready,
# and each pod's memory from its cgroup beside KubeVirt's published overhead formula.
# Root; builds what it needs like test/cluster/e2e.sh (images, cluster) and tears it down after.
#   bench/density/run.sh [--json OUT]
# Env: BENCH_DENSITY_VMS (N, default 8), BENCH_DENSITY_RAM (guest MiB, default 128),
#      BENCH_DENSITY_TIMEOUT (s for every pod to be Ready, default 900), BENCH_DENSITY_GAP_MS (100)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cluster=$root/test/cluster/cluster.sh
NODE_IP=10.250.0.1
n=${BENCH_DENSITY_VMS:-8}
ram=${BENCH_DENSITY_RAM:-128}

LOG_PREFIX=density
# shellcheck source=../../test/cluster/lib.sh
. "$root/test/cluster/lib.sh"  # log, die
[[ $(id -u) -eq 0 ]] || die "needs root"
"$root/test/cluster/setup.sh"
"$root/test/cluster/build-kube.sh" >/dev/null
image=$("$root/test/cluster/build-image.sh" | tail -1)
guest=$("$root/test/guest/build-guest.sh")
BERTH_CLUSTER_IMAGES=$image "$cluster" up
work=$(mktemp -d /var/tmp/berth-density-XXXXXX)
httpd=
cleanup() {
  [[ -z $httpd ]] || kill "$httpd" 2>/dev/null || true
  [[ -n ${BERTH_DENSITY_KEEP:-} ]] || "$cluster" down || log "cluster down reported leftovers"
  rm -rf "$work"
}
trap cleanup EXIT
kc() { "$cluster" kubectl "$@"; }

# The guest image from the node (busybox httpd), one hostPath PV per pet disk.
mkdir -p "$work/www"
cp "$guest" "$work/www/guest.qcow2"
sum=$(sha256sum "$work/www/guest.qcow2" | cut -c1-64)
nsenter --net=/run/netns/berth-k8s -- busybox httpd -f -p "$NODE_IP:8081" -h "$work/www" &
httpd=$!
for i in $(seq 1 "$n"); do
  mkdir -p "$work/pv$i"
  printf '%s\n' "apiVersion: v1" "kind: PersistentVolume" "metadata: {name: density-pv$i}" \
    "spec: {capacity: {storage: 1Gi}, accessModes: [ReadWriteOnce], storageClassName: '', persistentVolumeReclaimPolicy: Delete, hostPath: {path: $work/pv$i, type: DirectoryOrCreate}}" \
    >"$work/pv$i.yaml"
  kc apply -f "$work/pv$i.yaml" >/dev/null
done
{
  echo "image: {repository: localhost/berth}"
  echo "tests: {enabled: false}"
  echo "imageCache: {type: hostPath, hostPath: {path: $work/images}}"
  echo "vmDefaults:"
  echo "  vmconfig:"
  echo "    cpu: {vcpu: 1, ram_mb: $ram, accel: tcg}"
  echo "    rootfs: {sourceurl: 'http://$NODE_IP:8081/guest.qcow2', checksum: 'sha256:$sum', pvc_size: 256Mi, pvc_class: ''}"
  echo "  netconfig: {readinessTcpProbe: 80}"
  echo "vmlist:"
  for i in $(seq 1 "$n"); do printf '  vm%02d: {}\n' "$i"; done
} >"$work/values.yaml"
"$cluster" helm template density "$root/charts/berth" -f "$work/values.yaml" >"$work/rendered.yaml"
# The image cache starts empty: the burst's pods share one download of the guest image.
mkdir -p "$work/images"

python3 "$here/density.py" --rendered "$work/rendered.yaml" --ram "$ram" \
  --timeout "${BENCH_DENSITY_TIMEOUT:-900}" --gap-ms "${BENCH_DENSITY_GAP_MS:-100}" \
  --kubectl "$cluster kubectl" "$@"
