#!/usr/bin/env bash
# The browser viewer in headless Chromium against berth running the test guest in a pod namespace,
# with NO_VNC=1 (the viewer does not need the pod-IP VNC): the noVNC canvas shows what QEMU's
# screendump shows, typing and pasting reach the guest's shell on tty1, the WebSocket needs the
# token, 3 viewers at once, a 9th beyond the cap of 8 is refused, the viewer survives a reset.
#   test/screen/run.sh   (root; installs playwright-core with npm on first use)
#   BERTH_SCREEN_SHOT=FILE  keeps a screenshot of the page; BERTH_SCREEN_FAILURE_SHOT=FILE one of a
#   failed wait
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
berth=${BERTH_BINARY:-$root/build/supervisor/berth}
web=${BERTH_WEB_DIR:-$(dirname "$(dirname "$berth")")/web}
[[ -f $web/screen.html && -f $web/novnc/core/rfb.js ]] || { echo "screen: no viewer files in $web (scripts/build.sh makes them)" >&2; exit 1; }
[[ -d $here/node_modules/playwright-core ]] || (cd "$here" && npm ci --no-audit --no-fund --silent)
# shellcheck source=../lib/berth-in-pod.sh
source "$root/test/lib/berth-in-pod.sh"
pod_up bs
# Its own image cache: the shared one keeps whichever test guest it saw first under that name.
BERTH_WEB_DIR=$web start_berth NO_VNC=1 BERTH_IMAGE_DIR="$work/images"
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
