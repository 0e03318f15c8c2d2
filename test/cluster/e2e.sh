#!/usr/bin/env bash
# Berth's chart in a real single-node Kubernetes cluster (test/cluster/cluster.sh), end to end:
#   the image built with buildah and imported; the built-in guest served over HTTP from the node;
#   `helm install` with PersistentVolumes for the claims; the pod Ready through Berth's own probes;
#   the guest (the guest-agent variant) reached at the pod IP and through the Service; `helm test`; `kubectl delete pod` and
#   the StatefulSet brings it back on the same disk (a file written on the first boot is still
#   there); a ConfigMap edit reaches the running guest; `kubectl port-forward` to the guest's port;
#   the consoles: `kubectl attach -it` through a pty (attach.py: log in on the serial console, a
#   command, Ctrl-C, detach with ctrl-p ctrl-q, the pod still Ready), `kubectl logs` showing the
#   console, the screen and serial WebSockets through `kubectl port-forward` (ws_probe.py: refused
#   without the token, 101 with it), the guest agent's status, fsfreeze and fsthaw through the same
#   port-forward, and the viewer's Service variant (its token Secret kept by
#   `helm upgrade`); a VM with data disks (vmconfig.disks: a Filesystem claim and a Block claim on
#   a local PV over a loop device) keeps what its guest wrote to both across `kubectl delete pod`;
#   the chart's privileged and devicePlugin variants both admitted; `helm uninstall` leaves no pod.
# Root. Installs the host tools it needs (setup.sh) and builds the Kubernetes binaries when they are
# not cached (build-kube.sh, ~20 min once; BERTH_E2E_SKIP_BUILD=1 exits 77, skipped, instead).
#   test/cluster/e2e.sh            BERTH_E2E_KEEP=1 leaves the cluster up afterwards
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cluster=$here/cluster.sh
NS_PATH=/run/netns/berth-k8s
NODE_IP=10.250.0.1
RELEASE=e2e
VM=guest
POD=$VM-0
VIEW_POD=view-$POD  # the viewer-Service variant (release e2e-view, vmNamePrefix view-)
python=/usr/bin/python3  # Debian's: attach.py and ws_probe.py need only its standard library

LOG_PREFIX=e2e
# shellcheck source=lib.sh
. "$here/lib.sh"  # log
fail() { log "FAIL: $*"; exit 1; }
t_start=$(date +%s.%N)
timings=()
t_step=$t_start
mark() {  # mark NAME: how long since the previous mark
  local now
  now=$(date +%s.%N)
  timings+=("$(awk -v a="$t_step" -v b="$now" -v n="$1" 'BEGIN { printf "%-44s %6.1f s", n, b - a }')")
  log "$1: $(awk -v a="$t_step" -v b="$now" 'BEGIN { printf "%.1f s", b - a }')"
  t_step=$now
}
kc() { "$cluster" kubectl "$@"; }
hm() { "$cluster" helm "$@"; }
in_node() { nsenter --net="$NS_PATH" -- "$@"; }
# install_variant RELEASE PREFIX [HELM ARGS...]: the guest once more, in its own release, named
# <PREFIX>guest, under TCG, without the helm test pod.
install_variant() {
  local release=$1 prefix=$2
  shift 2
  hm install "$release" "$root/charts/berth" --wait=false --set "vmNamePrefix=$prefix" \
    --set image.repository=localhost/berth --set tests.enabled=false \
    --set "imageCache.hostPath.path=$work/images" \
    --set "vmlist.$VM.vmconfig.rootfs.sourceurl=http://$NODE_IP:8081/guest.qcow2" \
    --set "vmlist.$VM.vmconfig.rootfs.pvc_size=1Gi" \
    --set "vmlist.$VM.vmconfig.cpu.accel=tcg" "$@"
}
# until_ok SECONDS WHAT COMMAND...: retries COMMAND every 2 s until it succeeds.
until_ok() {
  local limit=$1 what=$2 waited=0
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((waited += 2))
    ((waited < limit)) || fail "$what: not within ${limit} s"
    sleep 2
  done
}

[[ $(id -u) -eq 0 ]] || fail "needs root"
"$here/setup.sh"  # the host tools the tier calls, installed when missing
if ! "$here/build-kube.sh" --check >/dev/null 2>&1; then
  if [[ -n ${BERTH_E2E_SKIP_BUILD:-} ]]; then
    log "SKIPPED: no Kubernetes binaries cached (BERTH_E2E_SKIP_BUILD set); test/cluster/build-kube.sh builds them"
    exit 77
  fi
  log "no Kubernetes binaries cached: building them (test/cluster/build-kube.sh, ~20 min on 2 cores, once)"
  "$here/build-kube.sh" >/dev/null
fi
mark "host tools, Kubernetes binaries"
image=$("$here/build-image.sh" | tail -1)
test_image=$("$here/build-test-image.sh" | tail -1)
# The guest-agent variant: the built-in guest plus qemu-ga, so freeze and thaw run through
# kubectl port-forward below.
guest=$("$root/test/guest/build-guest-agent.sh")
mark "images (berth, test, guest)"

BERTH_CLUSTER_IMAGES="$image $test_image" "$cluster" up
work=$(mktemp -d /var/tmp/berth-e2e-XXXXXX)
pids=()
loop=
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [[ -z ${BERTH_E2E_KEEP:-} ]]; then
    "$cluster" down || log "cluster down reported leftovers"
    [[ -z $loop ]] || losetup -d "$loop"
  fi
  rm -rf "$work"
}
trap cleanup EXIT
mark "cluster up"

# The node serves the guest image (busybox httpd: no name lookup before it listens).
mkdir -p "$work/www"
cp "$guest" "$work/www/guest.qcow2"
sum=$(sha256sum "$work/www/guest.qcow2" | cut -c1-64)
in_node busybox httpd -f -p "$NODE_IP:8081" -h "$work/www" &
pids+=($!)
until_ok 10 "image server" in_node curl -sf -o /dev/null "http://$NODE_IP:8081/guest.qcow2"

# PersistentVolumes for the pet-disk claims and the Filesystem data disk (hostPath on the node, no
# StorageClass).
for i in 1 2 3 4 5 6; do
  mkdir -p "$work/pv$i"
  kc apply -f - <<EOF
apiVersion: v1
kind: PersistentVolume
metadata: {name: e2e-pv$i}
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Delete
  storageClassName: ""
  hostPath: {path: $work/pv$i, type: DirectoryOrCreate}
EOF
done

cat >"$work/values.yaml" <<EOF
image: {repository: localhost/berth}
tests: {image: localhost/busybox:berth-e2e, timeoutSeconds: 120}
imageCache: {type: hostPath, hostPath: {path: $work/images}}
vmlist:
  $VM:
    vmconfig:
      cpu: {vcpu: 1, ram_mb: 256, accel: tcg}
      rootfs:
        sourceurl: http://$NODE_IP:8081/guest.qcow2
        checksum: sha256:$sum
        pvc_size: 1Gi
        pvc_class: ""
    netconfig:
      ports: {http: 80, echo: 7}
      readinessTcpProbe: 80
    cloudconfig:
      metadata: '{"uuid": "e2e-guest-1", "hostname": "$POD"}'
      userdata: |
        #!/bin/sh
        [ -e /data/first-boot ] || cat /proc/sys/kernel/random/uuid > /data/first-boot
        cp /data/first-boot /www/first-boot
        echo v1 > /www/value
        grep MemTotal /proc/meminfo > /www/memtotal
        # A login on the serial console, as a cloud image's serial-getty gives one: root, no password.
        sed -i 's/^root:x:/root::/' /etc/passwd
        (while :; do setsid getty -L 115200 ttyS0 vt100; sleep 1; done) </dev/null >/dev/null 2>&1 &
EOF
hm install "$RELEASE" "$root/charts/berth" -f "$work/values.yaml" --wait=false
# The Block data disk's volume: a local PV on a loop device of the node.
truncate -s 64M "$work/block.img"
loop=$(losetup --find --show "$work/block.img")
kc apply -f - <<EOF
apiVersion: v1
kind: PersistentVolume
metadata: {name: e2e-pv-block}
spec:
  capacity: {storage: 64Mi}
  volumeMode: Block
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  local: {path: $loop}
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [berth-node]}]
EOF
# The data-disk VM boots beside it (test/cluster/disks-values.yaml, disks-userdata.sh).
install_variant e2e-disks disks- -f "$here/disks-values.yaml" \
  --set-file "vmlist.$VM.cloudconfig.userdata=$here/disks-userdata.sh"
# The viewer's Service variant boots beside it: berth's control API on the pod IP behind the token
# Secret the chart makes.
install_variant e2e-view view- --set "vmlist.$VM.vmconfig.cpu.ram_mb=256" \
  --set "vmlist.$VM.viewer.service.enabled=true"
mark "helm install (+ the data-disk and viewer-Service variants)"

kc wait --for=condition=Ready "pod/$POD" --timeout=300s || {
  kc describe pod "$POD" | tail -30 >&2
  kc logs "$POD" --tail=50 >&2 || true
  fail "the pod did not become Ready"
}
mark "pod Ready (download, boot, lease, port 80)"

pod_ip=$(kc get pod "$POD" -o jsonpath='{.status.podIP}')
svc_ip=$(kc get service "$VM" -o jsonpath='{.spec.clusterIP}')
page=$(in_node curl -sf -m 5 "http://$pod_ip/value") || fail "nothing at http://$pod_ip/value"
[[ $page == v1 ]] || fail "user-data v1 did not run: /value is '$page'"
first=$(in_node curl -sf -m 5 "http://$pod_ip/first-boot")
boots=$(in_node curl -sf -m 5 "http://$pod_ip/boot-count")
log "guest at the pod IP $pod_ip: value=$page boot-count=$boots first-boot=$first"
# kube-proxy programs the Service's endpoint a moment after the pod turns Ready: allow it 30 s
# (a pod Ready in under 5 s once beat it; the curl right after Ready failed).
for try in $(seq 1 30); do
  in_node curl -sf -m 5 -o /dev/null "http://$svc_ip/" && break
  ((try < 30)) || fail "nothing through the Service $svc_ip within 30 s of the pod turning Ready"
  sleep 1
done
mark "reached at the pod IP and the Service"

hm test "$RELEASE" --timeout 5m || fail "helm test"
mark "helm test"

# ---- the consoles ----
ready_restarts() {
  kc get pod "$1" -o jsonpath='{.status.containerStatuses[0].ready} {.status.containerStatuses[0].restartCount}'
}
before=$(ready_restarts "$POD")
"$python" "$here/attach.py" -- "$cluster" kubectl attach -it "pod/$POD" ||
  fail "kubectl attach -it (attach.py, above)"
after=$(ready_restarts "$POD")
[[ $after == "true ${before#* }" ]] || fail "after detaching: ready/restarts '$after', before '$before'"
mark "kubectl attach -it (login, Ctrl-C, detach)"
# The console line reaches the container log through berth's stdout and containerd's log writer,
# which may lag the attach under load: wait for it, and show the log's end if it never comes. The
# log is read whole first: `kubectl logs | grep -q` fails under pipefail when grep's early exit
# stops kubectl with SIGPIPE (the longer the log, the likelier).
logs_show_attach() {
  local text
  text=$(kc logs "$POD") && [[ $text == *attach-42* ]]
}
for _ in 1 2 3 4 5 6 7 8 9 10; do
  if logs_show_attach; then break; fi
  sleep 2
done
logs_show_attach || {
  kc logs "$POD" --tail=30 >&2
  fail "kubectl logs does not show the console's attach-42 within 20 s (its last lines above)"
}
mark "kubectl logs shows the console"

kc exec "$POD" -- cat /run/berth/control-token >"$work/token" || fail "no control token in the pod"
kc port-forward "pod/$POD" 19251:9251 >"$work/port-forward-viewer.log" 2>&1 &
pids+=($!)
until_ok 30 "kubectl port-forward to the viewer" \
  in_node curl -s -m 3 -o /dev/null http://127.0.0.1:19251/api/v1/status
in_node "$python" "$here/ws_probe.py" 127.0.0.1:19251 --token-file "$work/token" >&2 ||
  fail "the console WebSockets through kubectl port-forward"
for page in screen serial; do
  code=$(in_node curl -s -m 5 -o "$work/$page.html" -w '%{http_code}' \
    -H "Authorization: Bearer $(cat "$work/token")" "http://127.0.0.1:19251/web/$page.html")
  [[ $code == 200 && -s $work/$page.html ]] || fail "GET /web/$page.html through the port-forward: $code"
done
mark "viewer via port-forward: WebSockets, pages"

# The guest agent through the same port-forward: the status says it answers, a freeze and a thaw
# answer 200 and the status follows them.
agent_field() { # agent_field KEY: guest_agent.KEY of /api/v1/status, as JSON
  in_node curl -s -m 5 -H "Authorization: Bearer $(cat "$work/token")" \
    http://127.0.0.1:19251/api/v1/status |
    "$python" -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["guest_agent"].get(sys.argv[1])))' "$1"
}
agent_connected() { [[ $(agent_field connected) == true ]]; }
api_post() { # api_post PATH: POST /api/v1/PATH, the body in $work/PATH.json, prints the status code
  in_node curl -s -m 30 -o "$work/$1.json" -w '%{http_code}' -X POST \
    -H "Authorization: Bearer $(cat "$work/token")" -H 'Content-Type: application/json' -d '{}' \
    "http://127.0.0.1:19251/api/v1/$1"
}
until_ok 120 "the guest agent answering (status through kubectl port-forward)" agent_connected
code=$(api_post fsfreeze)
[[ $code == 200 ]] || fail "POST /api/v1/fsfreeze through the port-forward: $code $(cat "$work/fsfreeze.json")"
[[ $(agent_field frozen) == true ]] || fail "the status does not say frozen after fsfreeze"
code=$(api_post fsthaw)
[[ $code == 200 ]] || fail "POST /api/v1/fsthaw through the port-forward: $code $(cat "$work/fsthaw.json")"
[[ $(agent_field frozen) == false ]] || fail "the status still says frozen after fsthaw"
log "fsfreeze: $(cat "$work/fsfreeze.json"); fsthaw: $(cat "$work/fsthaw.json")"
mark "guest agent via port-forward: status, fsfreeze, fsthaw"

kc wait --for=condition=Ready "pod/$VIEW_POD" --timeout=300s || fail "the viewer-Service variant's pod"
kc get secret "view-$VM-control" -o jsonpath='{.data.token}' | base64 -d >"$work/view-token"
view_ip=$(kc get service "view-$VM-viewer" -o jsonpath='{.spec.clusterIP}')
in_node "$python" "$here/ws_probe.py" "$view_ip:9251" --token-file "$work/view-token" >&2 ||
  fail "the console WebSockets through the Service view-$VM-viewer"
revision=$(kc get statefulset "view-$VM" -o jsonpath='{.status.updateRevision}')
vnc_password=$(kc get secret "view-$VM-vnc" -o jsonpath='{.data.password}')
hm upgrade e2e-view "$root/charts/berth" --reuse-values --wait=false
kc get secret "view-$VM-control" -o jsonpath='{.data.token}' | base64 -d >"$work/view-token-2"
cmp -s "$work/view-token" "$work/view-token-2" || fail "helm upgrade changed the control token"
[[ $(kc get secret "view-$VM-vnc" -o jsonpath='{.data.password}') == "$vnc_password" ]] ||
  fail "helm upgrade changed the VNC password"
[[ $(kc get statefulset "view-$VM" -o jsonpath='{.status.updateRevision}') == "$revision" ]] ||
  fail "helm upgrade changed the viewer variant's pod template (it would restart the VM)"
mark "viewer Service: WebSockets; helm upgrade"

kc delete pod "$POD" --wait=true --timeout=120s
until_ok 60 "the StatefulSet's new pod" kc get pod "$POD"
kc wait --for=condition=Ready "pod/$POD" --timeout=300s || fail "the new pod did not become Ready"
pod_ip=$(kc get pod "$POD" -o jsonpath='{.status.podIP}')
again=$(in_node curl -sf -m 5 "http://$pod_ip/first-boot")
boots2=$(in_node curl -sf -m 5 "http://$pod_ip/boot-count")
[[ $again == "$first" ]] || fail "the first boot's file is gone: '$again' != '$first'"
[[ $boots2 -eq $((boots + 1)) ]] || fail "boot-count $boots2 after $boots: not the same disk"
mark "pod deleted, back on the same disk"

# ---- helm upgrade and rollback ----
# An upgrade that changes nothing leaves the VM running (same pod, same container, no restart); one
# that changes the VM's memory rolls the StatefulSet: a new pod, the VM back on the same disk with
# the new memory; `helm rollback` rolls it back the same way.
uid_of() { kc get pod "$POD" -o jsonpath='{.metadata.uid}'; }
restarts_of() { kc get pod "$POD" -o jsonpath='{.status.containerStatuses[0].restartCount}'; }
# guest_file PATH: what the guest serves at PATH (retried: user-data writes it after boot).
guest_file() {
  local ip out
  ip=$(kc get pod "$POD" -o jsonpath='{.status.podIP}')
  for _ in $(seq 1 30); do
    out=$(in_node curl -sf -m 3 "http://$ip/$1") && [[ -n $out ]] && { echo "$out"; return 0; }
    sleep 2
  done
  return 1
}
mem_kb() { guest_file memtotal | awk '{ print $2 }'; }
pod_replaced() { local u; u=$(uid_of) && [[ -n $u && $u != "$1" ]]; }
# rolled WHAT OLD_UID: waits for the StatefulSet's new pod, Ready, the VM on the same disk.
rolled() {
  until_ok 180 "$1: the StatefulSet's new pod" pod_replaced "$2"
  kc wait --for=condition=Ready "pod/$POD" --timeout=300s || fail "$1: the new pod did not become Ready"
  [[ $(guest_file first-boot) == "$first" ]] || fail "$1: the first boot's file is gone: not the same disk"
  boots=$((boots + 1))
  [[ $(guest_file boot-count) -eq $boots ]] || fail "$1: boot-count is not $boots: not the same disk"
}
uid=$(uid_of)
restarts=$(restarts_of)
revision=$(kc get statefulset "$VM" -o jsonpath='{.status.updateRevision}')
mem1=$(mem_kb) || fail "the guest serves no /memtotal"
hm upgrade "$RELEASE" "$root/charts/berth" -f "$work/values.yaml" --wait=false
sleep 15  # time for a controller to act on a change, were there one
[[ $(kc get statefulset "$VM" -o jsonpath='{.status.updateRevision}') == "$revision" ]] ||
  fail "helm upgrade with the same values changed the pod template"
[[ $(uid_of) == "$uid" && $(restarts_of) == "$restarts" ]] ||
  fail "helm upgrade with the same values restarted the VM (pod $(uid_of), restarts $(restarts_of))"
kc wait --for=condition=Ready "pod/$POD" --timeout=10s >/dev/null || fail "not Ready after the no-op upgrade"
mark "helm upgrade, nothing changed: VM kept running"

boots=$(guest_file boot-count)
hm upgrade "$RELEASE" "$root/charts/berth" -f "$work/values.yaml" --set "vmlist.$VM.vmconfig.cpu.ram_mb=384" \
  --wait=false
rolled "helm upgrade (ram_mb 384)" "$uid"
mem2=$(mem_kb) || fail "no /memtotal after the upgrade"
((mem2 > mem1 + 100000)) || fail "the guest's MemTotal went from $mem1 to $mem2 kB, not up by 128 MiB"
log "helm upgrade: guest MemTotal $mem1 -> $mem2 kB, boot-count $boots, same first boot"
mark "helm upgrade ram_mb: pod rolled, same disk"

uid=$(uid_of)
hm rollback "$RELEASE" --wait=false
rolled "helm rollback" "$uid"
mem3=$(mem_kb) || fail "no /memtotal after the rollback"
[[ $mem3 == "$mem1" ]] || fail "after helm rollback the guest's MemTotal is $mem3 kB, was $mem1 kB"
pod_ip=$(kc get pod "$POD" -o jsonpath='{.status.podIP}')
log "helm rollback: guest MemTotal back to $mem3 kB, boot-count $boots, same first boot"
mark "helm rollback: pod rolled back, same disk"

# The data-disk VM: what its guest wrote to the Filesystem and the Block disk survives a new pod.
DISK_POD=disks-$POD
kc wait --for=condition=Ready "pod/$DISK_POD" --timeout=300s || {
  kc describe pod "$DISK_POD" | tail -30 >&2
  fail "the data-disk variant's pod did not become Ready"
}
[[ $(kc get pvc "data-fsdata-$DISK_POD" "data-blkdata-$DISK_POD" -o jsonpath='{.items[*].status.phase}') == "Bound Bound" ]] ||
  fail "the data-disk claims are not both Bound"
[[ $(kc get pvc "data-blkdata-$DISK_POD" -o jsonpath='{.spec.volumeName}') == e2e-pv-block ]] ||
  fail "the Block claim is not on the loop device's PV"
# markers IP: the two markers the guest serves, once its user-data has written them.
markers() {
  local ip=$1 fs blk
  for _ in $(seq 1 60); do
    fs=$(in_node curl -sf -m 3 "http://$ip/fsdata") && blk=$(in_node curl -sf -m 3 "http://$ip/blkdata") &&
      [[ -n $fs && $blk == blk-* ]] && { echo "$fs $blk"; return 0; }
    sleep 2
  done
  return 1
}
disk_ip=$(kc get pod "$DISK_POD" -o jsonpath='{.status.podIP}')
written=$(markers "$disk_ip") || fail "the data-disk guest never served /fsdata and /blkdata"
log "data disks written: $written"
kc delete pod "$DISK_POD" --wait=true --timeout=120s
until_ok 60 "the data-disk StatefulSet's new pod" kc get pod "$DISK_POD"
kc wait --for=condition=Ready "pod/$DISK_POD" --timeout=300s || fail "the new data-disk pod did not become Ready"
disk_ip=$(kc get pod "$DISK_POD" -o jsonpath='{.status.podIP}')
read_back=$(markers "$disk_ip") || fail "the new data-disk guest never served /fsdata and /blkdata"
[[ $read_back == "$written" ]] || fail "the data disks lost what was written: '$read_back' != '$written'"
mark "data disks (file + block) kept, new pod"

kc patch configmap "$VM-cloudconfig" --type merge \
  -p '{"data": {"userdata": "#!/bin/sh\necho v2 > /www/value\n"}}'
until_ok 180 "the ConfigMap edit in the guest" \
  sh -c "[ \"\$(nsenter --net=$NS_PATH -- curl -sf -m 3 http://$pod_ip/value)\" = v2 ]"
mark "ConfigMap edit reached the guest"

"$cluster" kubectl port-forward "pod/$POD" 18080:80 >"$work/port-forward.log" 2>&1 &
pids+=($!)
until_ok 30 "kubectl port-forward" in_node curl -sf -m 3 -o /dev/null http://127.0.0.1:18080/value
mark "kubectl port-forward"

# The devicePlugin variant: NET_ADMIN plus extended resources from a device plugin. There is no
# device plugin here, so the node advertises the resources itself; admitted = scheduled and its
# container started by the kubelet.
kc patch node berth-node --subresource=status --type merge \
  -p '{"status": {"capacity": {"devices.kubevirt.io/tun": "8"}}}'
install_variant e2e-dp dp- --set "vmlist.$VM.pod.security.mode=devicePlugin" \
  --set "vmlist.$VM.pod.security.deviceResources.devices\.kubevirt\.io/kvm=0"
until_ok 120 "the devicePlugin pod started" sh -c \
  "$cluster kubectl get pod dp-$POD -o jsonpath='{.status.containerStatuses[0].state}' | grep -Eq 'running|terminated'"
kc get pod "dp-$POD" -o wide >&2
# No device plugin hands it /dev/net/tun here, so berth stops at the network step; say what it said.
kc logs "dp-$POD" --tail=3 >&2 || kc logs "dp-$POD" --previous --tail=3 >&2 || true
mark "devicePlugin variant admitted"

hm uninstall e2e-dp --wait --timeout 3m
hm uninstall e2e-disks --wait --timeout 3m
hm uninstall e2e-view --wait --timeout 3m
hm uninstall "$RELEASE" --wait --timeout 3m
until_ok 120 "no pod left" sh -c "[ -z \"\$($cluster kubectl get pods -o name)\" ]"
mark "helm uninstall, no pod left"

log "passed in $(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f s", b - a }'):"
printf '  %s\n' "${timings[@]}" >&2
