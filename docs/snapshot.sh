#!/bin/bash
# A filesystem-consistent CSI VolumeSnapshot of a berth VM's pet disk: freeze the guest's
# filesystems through its QEMU guest agent, snapshot the claim disk-<vm>-0, wait until the
# snapshot is ready to use, thaw (also when interrupted). See docs/snapshot.md.
#   docs/snapshot.sh VM SNAPSHOT_CLASS [NAMESPACE]
set -euo pipefail
vm=${1:?usage: snapshot.sh VM SNAPSHOT_CLASS [NAMESPACE]}
class=${2:?usage: snapshot.sh VM SNAPSHOT_CLASS [NAMESPACE]}
ns=${3:-default}
pod=$vm-0
port=19251
name=$vm-disk-$(date -u +%Y%m%d%H%M%S)

token=$(kubectl -n "$ns" exec "pod/$pod" -c berth -- cat /run/berth/control-token)
kubectl -n "$ns" port-forward "pod/$pod" "$port:9251" > /dev/null &
forward=$!
api() {
	curl -sS -f -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{}' \
		"http://127.0.0.1:$port/api/v1/$1"
}
thaw() { api fsthaw > /dev/null || echo "snapshot.sh: thaw failed; berth thaws by itself" >&2; }
trap 'thaw; kill $forward' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done

echo "freezing: $(api fsfreeze)"
kubectl -n "$ns" apply -f - <<YAML
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: $name
spec:
  volumeSnapshotClassName: $class
  source:
    persistentVolumeClaimName: disk-$vm-0
YAML
kubectl -n "$ns" wait --for=jsonpath='{.status.readyToUse}'=true "volumesnapshot/$name" --timeout=50s
echo "snapshot $name is ready"
