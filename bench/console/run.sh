#!/usr/bin/env bash
# The screen, side by side: keystroke-to-screen latency and the bandwidth of an idle screen through
# Berth's browser viewer (noVNC in headless Chromium, over berth's authenticated WebSocket proxy)
# and through a native VNC client (vncdotool, straight to QEMU's VNC on the pod's 127.0.0.1:5900),
# against the same VM in the same run.
#   bench/console/run.sh [BUILD_DIR] [KEYS] [IDLE_SECONDS] [OUT_DIR]   (root; defaults: build 40 30)
# Writes OUT_DIR/console.json (raw samples of both) and prints a summary. Installs vncdotool 1.4.2
# into a cached venv (/var/cache/berth/bench) and playwright-core with npm on first use; Chromium
# comes from Debian (scripts/setup.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-build}
keys=${2:-40}
idle=${3:-30}
out=${4:-$(mktemp -d /var/tmp/berth-console-bench-XXXXXX)}
mkdir -p "$out"
[[ $build = /* ]] || build=$root/$build
berth=$build/supervisor/berth
[[ -x $berth ]] || { echo "console bench: no $berth; build first (scripts/build.sh)" >&2; exit 1; }
[[ -f $build/web/screen.html ]] || { echo "console bench: no $build/web/screen.html (scripts/build-web.sh)" >&2; exit 1; }

vncdotool_version=1.4.2
venv=/var/cache/berth/bench/vncdotool-$vncdotool_version
if [[ ! -x $venv/bin/python ]]; then
  rm -rf "$venv.tmp"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv.tmp"
  "$venv.tmp/bin/python" -m pip install -q "vncdotool==$vncdotool_version"
  mv "$venv.tmp" "$venv"
fi
[[ -d $here/node_modules/playwright-core ]] || (cd "$here" && npm ci --no-audit --no-fund --silent)
guest=$("$root/test/guest/build-guest.sh")

name=bcb$$
work=$(mktemp -d)
chmod 0711 "$work"  # QEMU runs as its own user and opens the pet disk below here
cleanup() {
  if [[ -n ${pid:-} ]]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  "$root/test/e2e/podnet.sh" down "$name"
  rm -rf "$work"
}
trap cleanup EXIT
"$root/test/e2e/podnet.sh" up "$name"
(umask 077 && head -c 6 /dev/urandom | base64 >"$work/vnc-password")
IMG_SOURCE=$guest BERTH_DISK_DIR=$work/disks BERTH_RUNTIME_DIR=$work/run VM_ACCEL=tcg VM_MEMORY=256M \
BERTH_VNC_PASSWORD_FILE=$work/vnc-password BERTH_WEB_DIR=$build/web \
  ip netns exec "$name-pod" "$berth" >"$work/console.log" 2>"$work/berth.log" &
pid=$!
for _ in $(seq 1 600); do
  grep -qs "berth-guest: ready" "$work/console.log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/berth.log" >&2; echo "console bench: berth exited early" >&2; exit 1; }
  sleep 0.2
done
grep -qs "berth-guest: ready" "$work/console.log" || { echo "console bench: the guest never got ready" >&2; exit 1; }
sleep 3  # tty1's shell prompt

native() { ip netns exec "$name-pod" "$venv/bin/python" "$here/native_vnc.py" 127.0.0.1 5900 "$work/vnc-password" "$@"; }
browser() {
  BERTH_CONSOLE_TOKEN=$(cat "$work/run/control-token") ip netns exec "$name-pod" node "$here/browser.mjs" "$@"
}
echo "console bench: idle screen (the shell's blinking cursor), ${idle} s each" >&2
native idle "$idle" "$work/native-idle.json"
browser idle "$idle" "$work/browser-idle.json"
echo "console bench: $keys keystrokes each, cursor hidden so that the echo is the only change" >&2
native prepare
native latency "$keys" "$work/native-latency.json"
browser latency "$keys" "$work/browser-latency.json"

python3 - "$work" "$out/console.json" "$vncdotool_version" <<'PY'
import json, statistics, sys
work, out, version = sys.argv[1:4]
load = lambda name: json.load(open(f"{work}/{name}.json"))
def summary(samples):
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))]
    return {"n": len(s), "median_ms": statistics.median(s), "p90_ms": pick(0.9), "min_ms": s[0],
            "max_ms": s[-1], "samples_ms": samples}
result = {"vncdotool": version}
for side in ("native", "browser"):
    lat, idle = load(f"{side}-latency"), load(f"{side}-idle")
    result[side] = {"latency": summary(lat["samples_ms"]),
                    "idle": {"bytes": idle["bytes"], "seconds": idle["seconds"],
                             "bytes_per_s": idle["bytes"] / idle["seconds"]}}
    if "first_paint_ms" in lat:
        result[side]["first_paint_ms"] = lat["first_paint_ms"]
json.dump(result, open(out, "w"), indent=1)
n, b = result["native"], result["browser"]
print(f"{'':32} {'native vncdotool':>18} {'browser (noVNC via berth)':>26}")
for key in ("median_ms", "p90_ms", "min_ms", "max_ms"):
    print(f"keystroke to screen, {key[:-3]:<11} {n['latency'][key]:>15.1f} ms {b['latency'][key]:>23.1f} ms")
print(f"{'idle screen, bytes/s':<32} {n['idle']['bytes_per_s']:>18.0f} {b['idle']['bytes_per_s']:>26.0f}")
print(f"browser viewer adds {b['latency']['median_ms'] - n['latency']['median_ms']:+.1f} ms at the median")
PY
echo "console bench: raw results in $out/console.json" >&2
