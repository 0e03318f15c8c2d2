#!/usr/bin/env bash
# Berth's main job: the built-in guest as a pod. A Calico-style pod namespace (pod IP 10.77.0.5/32,
# default via 169.254.1.1, MTU 1450) and a "node" namespace that serves the guest image over HTTP
# and answers DNS; ConfigMap-style user-data and meta-data; berth in the pod namespace. Shows a
# timeline until the guest answers at the pod IP, then leaves the VM running until Ctrl-C, which
# powers it off gracefully. Teardown always runs.
#   BERTH_RUN_DIR  where the cache, pet disk and logs go (default: a fresh temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/as-root.sh
berth_as_root "$PWD/scripts/run.sh" "$@"
root=$(pwd)
./scripts/setup.sh
./scripts/build.sh >/dev/null
guest=$(test/guest/build-guest.sh)
dir=${BERTH_RUN_DIR:-$(mktemp -d /tmp/berth-run-XXXXXX)}
# QEMU runs as its own user (BERTH_QEMU_USER) and opens the pet disk below here: mktemp makes 0700.
chmod 0711 "$dir"
name=berth-run
pod=$name-pod node=$name-node pod_ip=10.77.0.5 node_ip=10.77.9.1
pids=()
berth_pid=
teardown() {
  [[ -n $berth_pid ]] && kill -TERM "$berth_pid" 2>/dev/null && wait "$berth_pid" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  test/e2e/podnet.sh down "$name"
}
trap teardown EXIT
trap 'echo; echo "run: Ctrl-C: powering the guest off" >&2; kill -TERM "$berth_pid" 2>/dev/null || true' INT

t0=$(date +%s.%N)
say() { printf "run: %6.1fs  %s\n" "$(awk -v a="$t0" -v b="$(date +%s.%N)" "BEGIN { print b - a }")" "$*" >&2; }

test/e2e/podnet.sh up "$name"
mkdir -p "$dir/www" "$dir/logs"
cp "$guest" "$dir/www/guest.qcow2"
sum=$(sha256sum "$dir/www/guest.qcow2" | cut -c1-64)
# busybox httpd: Python's http.server looks up its own name before listening (5 s without DNS).
ip netns exec "$node" busybox httpd -f -p "$node_ip:8080" -h "$dir/www" >/dev/null 2>&1 & pids+=($!)
ip netns exec "$node" dnsmasq --no-daemon --no-resolv --no-hosts --bind-interfaces \
  --listen-address="$node_ip" --address=/demo.berth.test/"$node_ip" >/dev/null 2>&1 & pids+=($!)
for _ in $(seq 1 50); do  # the image server is up before berth asks for the image
  ip netns exec "$node" curl -s -o /dev/null -m 1 "http://$node_ip:8080/" && break
  sleep 0.1
done
cat >"$dir/user.sh" <<'USERDATA'
#!/bin/sh
echo "hello from user-data, $(date)" > /www/value
USERDATA
echo '{"uuid": "berth-demo-0", "hostname": "demo-vm"}' >"$dir/meta.json"
test/e2e/configmap.sh "$dir/userdata" userdata="$dir/user.sh"
test/e2e/configmap.sh "$dir/metadata" metadata="$dir/meta.json"
# VNC asks for a password (what a chart's Secret holds): 8 random characters, readable only by root.
(umask 077 && head -c 6 /dev/urandom | base64 >"$dir/vnc-password")
say "pod namespace $pod (pod IP $pod_ip, MTU 1450), node namespace $node serving the image and DNS"

IMG_SOURCE=http://$node_ip:8080/guest.qcow2 IMG_CHECKSUM=sha256:$sum \
BERTH_IMAGE_DIR=$dir/images BERTH_DISK_DIR=$dir/disks BERTH_RUNTIME_DIR=$dir/run \
BERTH_USERDATA=$dir/userdata BERTH_METADATA=$dir/metadata BERTH_NETWORKDATA=$dir/networkdata \
BERTH_VNC_PASSWORD_FILE=$dir/vnc-password VM_MEMORY=${VM_MEMORY:-256M} \
  ip netns exec "$pod" build/supervisor/berth >"$dir/logs/console.log" 2>"$dir/logs/berth.log" &
berth_pid=$!
say "berth started; log: $dir/logs/berth.log, guest console: $dir/logs/console.log"

# The timeline: each milestone once, in the order it happens.
milestones=(
  "phase image -> disk|image fetched, verified and cached"
  "phase disk -> drive|pet disk ready"
  "phase drive -> network|config drive built"
  "phase network -> services|bridge, tap and NAT up"
  "QEMU running as pid|QEMU started"
  "acceleration:|accelerator chosen"
  "the guest took its lease|the guest took its DHCP lease"
)
seen=()
answered=
while kill -0 "$berth_pid" 2>/dev/null; do
  for i in "${!milestones[@]}"; do
    [[ -n ${seen[$i]:-} ]] && continue
    pattern=${milestones[$i]%%|*}
    if line=$(grep -m1 "$pattern" "$dir/logs/berth.log" 2>/dev/null); then
      seen[$i]=1
      say "${milestones[$i]#*|}${line:+  (${line#*] })}"
    fi
  done
  if [[ -z $answered ]] && page=$(ip netns exec "$node" curl -s -m 2 "http://$pod_ip/" 2>/dev/null) && [[ -n $page ]]; then
    answered=1
    say "the guest answers at http://$pod_ip/ from the node: hostname \"$page\""
    say "user-data ran: $(ip netns exec "$node" curl -s -m 2 "http://$pod_ip/value")"
    rfb=$(ip netns exec "$node" timeout 2 busybox nc "$pod_ip" 5900 2>/dev/null | head -c 12 || true)
    say "VNC at $pod_ip:5900 answers: ${rfb:-nothing} (password: cat $dir/vnc-password)"
    for probe in healthz readyz; do
      say "probe /$probe: HTTP $(ip netns exec "$node" curl -s -o /dev/null -w '%{http_code}' "http://$pod_ip:9250/$probe")"
    done
    say "the VM runs. Try: ip netns exec $node curl http://$pod_ip/   |   ip netns exec $pod curl http://127.0.0.1:9251/api/v1/status"
    say "Ctrl-C powers it off."
  fi
  sleep 0.5 || true  # Ctrl-C interrupts the sleep; the loop then sees berth stop
done
status=0
wait "$berth_pid" || status=$?
wait "$berth_pid" 2>/dev/null || true
berth_pid=
say "berth exited with $status"
tail -3 "$dir/logs/berth.log" >&2
exit "$status"
