#!/usr/bin/env bash
# The HTML console in headless Chromium against berth running the test guest in a pod namespace:
# power-down from the page must power the guest off and end berth with exit code 0.
#   test/console/run.sh   (root; installs playwright-core with npm on first use)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
berth=${BERTH_BINARY:-$root/build/supervisor/berth}
[[ -d $here/node_modules/playwright-core ]] || (cd "$here" && npm install --no-audit --no-fund --silent)
guest=$("$root/test/guest/build-guest.sh")
name=bc$$
work=$(mktemp -d)
chmod 0711 "$work"  # QEMU runs as its own user (BERTH_QEMU_USER) and opens the pet disk below here
cleanup() {
  [[ -n ${pid:-} ]] && kill -9 "$pid" 2>/dev/null || true
  "$root/test/e2e/podnet.sh" down "$name"
  rm -rf "$work"
}
trap cleanup EXIT
"$root/test/e2e/podnet.sh" up "$name"
# VNC is on (the console's screenshot needs a display), so it needs a password.
(umask 077 && head -c 6 /dev/urandom | base64 >"$work/vnc-password")
IMG_SOURCE=$guest BERTH_DISK_DIR=$work/disks BERTH_RUNTIME_DIR=$work/run VM_ACCEL=tcg VM_MEMORY=256M \
BERTH_VNC_PASSWORD_FILE=$work/vnc-password \
  ip netns exec "$name-pod" "$berth" >"$work/console.log" 2>"$work/berth.log" &
pid=$!
for _ in $(seq 1 600); do
  grep -qs "berth-guest: ready" "$work/console.log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/berth.log" >&2; echo "console: berth exited early" >&2; exit 1; }
  sleep 0.2
done
shot=${BERTH_CONSOLE_SCREENSHOT:-$work/console.png}
# The per-start token berth wrote where `kubectl exec POD -- cat /run/berth/control-token` finds it.
[[ $(stat -c %a "$work/run/control-token") == 600 ]] || { echo "console: control-token is not mode 0600" >&2; exit 1; }
grep -q "control API: token $(cat "$work/run/control-token")" "$work/berth.log" || { echo "console: the token is not in the log" >&2; exit 1; }
BERTH_CONSOLE_TOKEN=$(cat "$work/run/control-token") ip netns exec "$name-pod" node "$here/console.test.mjs" "$shot"
status=0
wait "$pid" || status=$?
pid=
if [[ $status -ne 0 ]]; then
  cat "$work/berth.log" >&2
  echo "console: berth exited with $status after power-down from the console (expected 0)" >&2
  exit 1
fi
grep -q "control API: QMP system_powerdown" "$work/berth.log" || { echo "console: no power-down in the log" >&2; exit 1; }
echo "console: berth exited 0 after the console's power-down"
