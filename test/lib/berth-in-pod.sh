# shellcheck shell=bash
# Sourced by the browser tests' scripts (test/console): berth with the test guest in a fresh
# pod-like network namespace (test/e2e/podnet.sh). Needs $root (the checkout) and $berth.
#   pod_up TAG          makes $work (0711: QEMU's own user opens the pet disk below it) and the
#                       namespaces $name-node/$name-pod; an EXIT trap kills berth and removes both
#   start_berth VAR=... starts berth in the pod (stdout $work/console.log, stderr $work/berth.log,
#                       stdin /dev/null) with the test guest, the web files beside the binary
#                       (build/web) and VAR=..., sets $pid, and waits for
#                       the guest's "berth-guest: ready"; exits 1 when berth ends first
pod_up() {
  name=$1$$
  work=$(mktemp -d)
  chmod 0711 "$work"
  trap pod_down EXIT
  "$root/test/e2e/podnet.sh" up "$name"
}

pod_down() {
  [[ -n ${pid:-} ]] && kill -9 "$pid" 2>/dev/null || true
  "$root/test/e2e/podnet.sh" down "$name"
  rm -rf "$work"
}

start_berth() {
  local guest
  guest=$("$root/test/guest/build-guest.sh")
  env IMG_SOURCE="$guest" BERTH_DISK_DIR="$work/disks" BERTH_RUNTIME_DIR="$work/run" VM_ACCEL=tcg \
    VM_MEMORY=256M BERTH_WEB_DIR="${BERTH_WEB_DIR:-$(dirname "$(dirname "$berth")")/web}" "$@" ip netns exec "$name-pod" "$berth" \
    >"$work/console.log" 2>"$work/berth.log" </dev/null &
  pid=$!
  for _ in $(seq 1 600); do
    grep -qs "berth-guest: ready" "$work/console.log" && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$work/berth.log" >&2; echo "berth exited early" >&2; exit 1; }
    sleep 0.2
  done
  echo "the guest did not get ready in 120 s" >&2
  exit 1
}
