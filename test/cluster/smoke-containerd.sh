#!/usr/bin/env bash
# Prove that containerd imports and runs Berth's image archive (test/cluster/build-image.sh):
# start a private containerd by hand (its own root, state and socket in a temporary directory, so
# it neither needs nor disturbs a system containerd), `ctr -n k8s.io images import` the archive,
# check that it is named localhost/berth:<appVersion>, run `berth --version` and
# `qemu-system-x86_64 --version` in it, then stop containerd and remove everything it made.
#
#   test/cluster/smoke-containerd.sh [ARCHIVE]   default: the archive build-image.sh prints
#                                                (building it when the tree changed)
#   BERTH_SMOKE_KEEP=1                           keep the temporary directory (containerd log)
#
# containerd_config (below) is the configuration generator a cluster bring-up can reuse:
# overlayfs snapshotter, runc (io.containerd.runc.v2) with SystemdCgroup = false (cgroupfs: no
# systemd here), CNI plugins from Debian's containernetworking-plugins (/usr/lib/cni) and
# configurations in /etc/cni/net.d. Needs root; installs containerd, runc and
# containernetworking-plugins with apt when they are missing.
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

LOG_PREFIX=smoke-containerd STEP_FORMAT='%-18s %7ss  %s'
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"
[[ $(id -u) == 0 ]] || die "needs root"

# containerd_config ROOT STATE ADDRESS [SANDBOX_IMAGE]: a containerd 1.6 configuration (version 2)
# on stdout. ROOT holds content and snapshots, STATE the runtime state (sockets, mounts), ADDRESS
# the gRPC socket (ttrpc: ADDRESS.ttrpc). The CRI section matters only to a kubelet: cgroupfs
# (SystemdCgroup = false, so the kubelet needs cgroupDriver: cgroupfs), overlayfs, CNI binaries in
# /usr/lib/cni (Debian's containernetworking-plugins) and configurations in /etc/cni/net.d.
# SANDBOX_IMAGE: the pod sandbox ("pause") image, which must already be in the k8s.io namespace
# (nothing can be pulled here); left at containerd's default when not given.
containerd_config() {
  local root=$1 state=$2 address=$3 sandbox=${4:-} runc sandbox_line=
  runc=$(command -v runc || echo /usr/sbin/runc)
  [[ -z $sandbox ]] || sandbox_line="  sandbox_image = \"$sandbox\""$'\n'
  cat <<EOF
version = 2
root = "$root"
state = "$state"

[grpc]
  address = "$address"

[plugins."io.containerd.grpc.v1.cri"]
${sandbox_line}  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
EOF
}

on_failure() { log "FAILED"; }
trap on_exit EXIT

step packages ensure_packages containerd runc containernetworking-plugins

tag=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$root/charts/berth/Chart.yaml")
image=localhost/berth:$tag
archive=${1:-}
if [[ -z $archive ]]; then
  get_archive() { archive=$("$here/build-image.sh" | tail -n1); step_note=$archive; }
  step build-image get_archive
fi
[[ -s $archive ]] || die "no archive at '$archive'"

work=$(mktemp -d /tmp/berth-smoke.XXXXXX)
# Mounts under $work (snapshots of running containers) go first.
if [[ ${BERTH_SMOKE_KEEP:-0} == 1 ]]; then
  cleanups+=("umount_under '$work'; log 'kept $work'")
else
  cleanups+=("umount_under '$work'; rm -rf --one-file-system '$work'")
fi
sock=$work/containerd.sock
containerd_config "$work/root" "$work/state" "$sock" >"$work/config.toml"
CTR=(ctr --address "$sock" -n k8s.io)

containerd_pid=
start_containerd() {
  containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
  containerd_pid=$!
  cleanups+=("stop_containerd")
  local i
  for ((i = 0; i < 100; i++)); do
    if [[ -S $sock ]] && ctr --address "$sock" version >/dev/null 2>&1; then
      step_note="pid $containerd_pid, $(ctr --address "$sock" version | awk '/Server:/ { s = 1 } s && /Version:/ { print $2; exit }')"
      return 0
    fi
    kill -0 "$containerd_pid" 2>/dev/null || { tail -n 30 "$work/containerd.log" >&2; die "containerd exited"; }
    sleep 0.1
  done
  tail -n 30 "$work/containerd.log" >&2
  die "containerd did not answer on $sock within 10 s"
}
stop_containerd() {
  [[ -n $containerd_pid ]] || return 0
  # Tasks left by a failed run: kill and delete them so their shims exit.
  local t
  for t in $("${CTR[@]}" tasks ls -q 2>/dev/null); do
    "${CTR[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
    sleep 0.2
    "${CTR[@]}" tasks rm -f "$t" >/dev/null 2>&1 || true
  done
  for t in $("${CTR[@]}" containers ls -q 2>/dev/null); do
    "${CTR[@]}" containers rm "$t" >/dev/null 2>&1 || true
  done
  kill -TERM "$containerd_pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$containerd_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$containerd_pid" 2>/dev/null && kill -KILL "$containerd_pid" 2>/dev/null
  wait "$containerd_pid" 2>/dev/null || true
  containerd_pid=
}
step containerd-start start_containerd

import() {
  "${CTR[@]}" images import "$archive" >&2
  local listed
  listed=$("${CTR[@]}" images ls -q)
  grep -qxF "$image" <<<"$listed" || die "ctr images ls does not list $image; it lists: $listed"
  step_note="$image listed"
}
step ctr-import import
"${CTR[@]}" images ls | log_lines

run_in() {
  local id=$1 expect=$2 out
  shift 2
  out=$("${CTR[@]}" run --rm --privileged "$image" "$id" "$@" 2>&1) || die "'$*' in $image failed: $out"
  log "  $* -> $(head -n1 <<<"$out")"
  grep -q "$expect" <<<"$out" || die "'$*' printed '$out', expected '$expect'"
  step_note=$(head -n1 <<<"$out")
}
step run-berth run_in berth-smoke-1 "^berth $tag" /usr/local/bin/berth --version
step run-qemu run_in berth-smoke-2 "QEMU emulator version" qemu-system-x86_64 --version
stop() {
  stop_containerd
  local left
  left=$(findmnt -rn -o TARGET | awk -v d="$work" 'index($0, d) == 1' || true)
  [[ -z $left ]] || die "still mounted after containerd stopped: $left"
  pgrep -f "containerd-shim.*$work" >/dev/null && die "a containerd shim of $work is still running"
  step_note="nothing left mounted or running"
}
step containerd-stop stop

log_summary
log "OK: containerd imported $archive as $image and ran berth and qemu-system-x86_64 in it"
