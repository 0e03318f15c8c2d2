#!/usr/bin/env bash
# The serial console page in headless Chromium against berth running the test guest (a getty on
# ttyS0 started by user-data) in a pod namespace: three pages share the console.
#   test/console/serial-run.sh   (root; needs build/web from scripts/build-web.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
berth=${BERTH_BINARY:-$root/build/supervisor/berth}
web=${BERTH_WEB_DIR:-$root/build/web}
[[ -f $web/serial.html && -f $web/xterm/xterm.mjs ]] || { echo "serial: $web lacks the pages; run scripts/build-web.sh" >&2; exit 1; }
[[ -d $here/node_modules/playwright-core ]] || (cd "$here" && npm install --no-audit --no-fund --silent)
guest=$("$root/test/guest/build-guest.sh")
name=bs$$
work=$(mktemp -d)
chmod 0711 "$work"
cleanup() {
  [[ -n ${pid:-} ]] && kill -9 "$pid" 2>/dev/null || true
  "$root/test/e2e/podnet.sh" down "$name"
  rm -rf "$work"
}
trap cleanup EXIT
"$root/test/e2e/podnet.sh" up "$name"
cat >"$work/user-data" <<'DATA'
#!/bin/sh
sed -i 's/^root:x:/root::/' /etc/passwd
(while :; do setsid getty -L 115200 ttyS0 vt100; sleep 1; done) </dev/null >/dev/null 2>&1 &
DATA
IMG_SOURCE=$guest BERTH_DISK_DIR=$work/disks BERTH_RUNTIME_DIR=$work/run VM_ACCEL=tcg VM_MEMORY=256M \
BERTH_USERDATA=$work/user-data BERTH_WEB_DIR=$web NO_VNC=1 \
  ip netns exec "$name-pod" "$berth" >"$work/console.log" 2>"$work/berth.log" </dev/null &
pid=$!
for _ in $(seq 1 600); do
  grep -qs "berth-guest: ready" "$work/console.log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/berth.log" >&2; echo "serial: berth exited early" >&2; exit 1; }
  sleep 0.2
done
BERTH_CONSOLE_TOKEN=$(cat "$work/run/control-token") ip netns exec "$name-pod" node "$here/serial.test.mjs" ||
  { tail -50 "$work/berth.log" >&2; exit 1; }
# What the pages typed went into the same console that stdout (kubectl logs) shows.
grep -q "three-3" "$work/console.log" || { echo "serial: the pages' command is not in berth's stdout" >&2; exit 1; }
kill -TERM "$pid"
wait "$pid" || true
pid=
