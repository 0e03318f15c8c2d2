#!/usr/bin/env bash
# The HTML console in headless Chromium against berth running the test guest in a pod namespace:
# power-down from the page must power the guest off and end berth with exit code 0.
#   test/console/run.sh   (root; installs playwright-core with npm on first use)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
berth=${BERTH_BINARY:-$root/build/supervisor/berth}
[[ -d $here/node_modules/playwright-core ]] || (cd "$here" && npm install --no-audit --no-fund --silent)
# shellcheck source=../lib/berth-in-pod.sh
source "$root/test/lib/berth-in-pod.sh"
pod_up bc
# VNC is on (the console's screenshot needs a display), so it needs a password.
(umask 077 && head -c 6 /dev/urandom | base64 >"$work/vnc-password")
start_berth BERTH_VNC_PASSWORD_FILE="$work/vnc-password"
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
