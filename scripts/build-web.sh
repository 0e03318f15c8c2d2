#!/usr/bin/env bash
# Assembles the browser viewers' files (BERTH_WEB_DIR) into build/web: berth's pages from
# supervisor/web and only the files of the pinned packages that the pages load (noVNC's ES
# modules: core/ and vendor/; xterm.js, its CSS and the fit add-on). The packages come from
# `npm ci` of supervisor/web/package-lock.json, cached by the lock file's hash in
# /var/cache/berth/web/<sha256> (BERTH_WEB_CACHE), so later builds need no network.
#   scripts/build-web.sh [OUT]   (default: build/web)
set -euo pipefail
cd "$(dirname "$0")/.."
src=supervisor/web
out=${1:-build/web}
hash=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-32)
cache=${BERTH_WEB_CACHE:-/var/cache/berth/web}/$hash
if [[ ! -d $cache/node_modules ]]; then
  command -v npm >/dev/null || { echo "build-web: npm is missing (scripts/setup.sh installs nodejs and npm)" >&2; exit 1; }
  mkdir -p "$(dirname "$cache")"
  tmp=$(mktemp -d "$(dirname "$cache")/.install.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  cp "$src/package.json" "$src/package-lock.json" "$tmp/"
  (cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund --silent)
  mv -T "$tmp" "$cache" 2>/dev/null || rm -rf "$tmp"  # another build may have filled it meanwhile
  trap - EXIT
fi
modules=$cache/node_modules
staging=$(mktemp -d "$(dirname "$out")/.web.XXXXXX" 2>/dev/null || { mkdir -p "$(dirname "$out")" && mktemp -d "$(dirname "$out")/.web.XXXXXX"; })
trap 'rm -rf "$staging"' EXIT
# cp -p keeps modification times, so the served ETags stay the same across rebuilds.
cp -p "$src"/*.html "$src"/*.js "$src"/*.css "$staging/"
mkdir -p "$staging/novnc" "$staging/xterm"
cp -pr "$modules/@novnc/novnc/core" "$modules/@novnc/novnc/vendor" "$staging/novnc/"
cp -p "$modules/@novnc/novnc/LICENSE.txt" "$staging/novnc/" 2>/dev/null || true
find "$staging/novnc" -type f ! -name '*.js' ! -name 'LICENSE.txt' -delete
cp -p "$modules/@xterm/xterm/lib/xterm.mjs" "$modules/@xterm/xterm/css/xterm.css" \
  "$modules/@xterm/addon-fit/lib/addon-fit.mjs" "$staging/xterm/"
chmod -R u=rwX,go=rX "$staging"
rm -rf "$out"
mv -T "$staging" "$out"
trap - EXIT
