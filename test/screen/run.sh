#!/usr/bin/env bash
# The browser viewer in headless Chromium against berth running the test guest in a pod namespace,
# with NO_VNC=1 (the viewer does not need the pod-IP VNC): the noVNC canvas shows what QEMU's
# screendump shows, typing and pasting reach the guest's shell on tty1, the WebSocket needs the
# token, 3 viewers at once, a 9th beyond the cap of 8 is refused, the viewer survives a reset.
#   test/screen/run.sh   (root; installs playwright-core with npm on first use)
#   BERTH_SCREEN_SHOT=FILE  keeps a screenshot of the page
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
berth=${BERTH_BINARY:-$root/build/supervisor/berth}
web=${BERTH_WEB_DIR:-$(dirname "$(dirname "$berth")")/web}
[[ -f $web/screen.html && -f $web/novnc/core/rfb.js ]] || { echo "screen: no viewer files in $web (scripts/build.sh makes them)" >&2; exit 1; }
[[ -d $here/node_modules/playwright-core ]] || (cd "$here" && npm ci --no-audit --no-fund --silent)
guest=$("$root/test/guest/build-guest.sh")
name=bs$$
work=$(mktemp -d)
chmod 0711 "$work"  # QEMU runs as its own user (BERTH_QEMU_USER) and opens the pet disk below here
cleanup() {
  [[ -n ${pid:-} ]] && kill -9 "$pid" 2>/dev/null || true
  "$root/test/e2e/podnet.sh" down "$name"
  rm -rf "$work"
}
trap cleanup EXIT
"$root/test/e2e/podnet.sh" up "$name"
IMG_SOURCE=$guest BERTH_DISK_DIR=$work/disks BERTH_RUNTIME_DIR=$work/run VM_ACCEL=tcg VM_MEMORY=256M \
NO_VNC=1 BERTH_WEB_DIR=$web \
  ip netns exec "$name-pod" "$berth" >"$work/console.log" 2>"$work/berth.log" &
pid=$!
for _ in $(seq 1 600); do
  grep -qs "berth-guest: ready" "$work/console.log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/berth.log" >&2; echo "screen: berth exited early" >&2; exit 1; }
  sleep 0.2
done
grep -qs "berth-guest: ready" "$work/console.log" || { echo "screen: the guest did not get ready" >&2; exit 1; }
# Only QEMU's own user may reach the viewer's socket; nothing listens for VNC on the pod IP.
[[ $(stat -c %a "$work/run/viewer") == 700 ]] || { echo "screen: the viewer folder is not 0700" >&2; exit 1; }
[[ -S $work/run/viewer/vnc.sock ]] || { echo "screen: no viewer socket" >&2; exit 1; }
if ip netns exec "$name-pod" ss -Htln | grep -q ':59[0-9][0-9] '; then
  echo "screen: something listens on a VNC port with NO_VNC=1" >&2; exit 1
fi
status=0
BERTH_SCREEN_TOKEN=$(cat "$work/run/control-token") BERTH_SCREEN_CONSOLE=$work/console.log \
  ip netns exec "$name-pod" node "$here/screen.test.mjs" ${BERTH_SCREEN_SHOT:+"$BERTH_SCREEN_SHOT"} || status=$?
if [[ $status -ne 0 ]]; then
  tail -n 40 "$work/berth.log" >&2
  exit "$status"
fi
grep -q "viewer .* connected (1 of at most 8)" "$work/berth.log" || { echo "screen: no viewer connect line in the log" >&2; exit 1; }
grep -q "viewer .* disconnected after" "$work/berth.log" || { echo "screen: no viewer disconnect line in the log" >&2; exit 1; }
grep -q "refused: 8 viewers are connected already" "$work/berth.log" || { echo "screen: the 9th viewer's refusal is not in the log" >&2; exit 1; }
# berth stops: the guest powers off and berth exits 0.
kill -TERM "$pid"
wait "$pid" || status=$?
pid=
[[ $status -eq 0 ]] || { tail -n 40 "$work/berth.log" >&2; echo "screen: berth exited with $status after SIGTERM" >&2; exit 1; }
[[ ! -e $work/run/viewer ]] || { echo "screen: the viewer folder was left behind" >&2; exit 1; }
echo "screen: viewer test passed"
