#!/usr/bin/env bash
# The serial console page in headless Chromium against berth running the test guest (a getty on
# ttyS0 started by user-data) in a pod namespace: three pages share the console.
#   test/console/serial-run.sh   (root; needs build/web from scripts/build-web.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
berth=${BERTH_BINARY:-$root/build/supervisor/berth}
web=${BERTH_WEB_DIR:-$(dirname "$(dirname "$berth")")/web}
[[ -f $web/serial.html && -f $web/xterm/xterm.mjs ]] || { echo "serial: $web lacks the pages; run scripts/build-web.sh" >&2; exit 1; }
[[ -d $here/node_modules/playwright-core ]] || (cd "$here" && npm install --no-audit --no-fund --silent)
# shellcheck source=../lib/berth-in-pod.sh
source "$root/test/lib/berth-in-pod.sh"
pod_up sc
cat >"$work/user-data" <<'DATA'
#!/bin/sh
sed -i 's/^root:x:/root::/' /etc/passwd
(while :; do setsid getty -L 115200 ttyS0 vt100; sleep 1; done) </dev/null >/dev/null 2>&1 &
DATA
start_berth BERTH_USERDATA="$work/user-data" BERTH_WEB_DIR="$web" NO_VNC=1
BERTH_CONSOLE_TOKEN=$(cat "$work/run/control-token") ip netns exec "$name-pod" node "$here/serial.test.mjs" ||
  { tail -50 "$work/berth.log" >&2; exit 1; }
# What the pages typed went into the same console that stdout (kubectl logs) shows.
grep -q "three-3" "$work/console.log" || { echo "serial: the pages' command is not in berth's stdout" >&2; exit 1; }
kill -TERM "$pid"
wait "$pid" || true
pid=
