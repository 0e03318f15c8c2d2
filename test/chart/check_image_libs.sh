#!/usr/bin/env bash
# Checks that container/Dockerfile's runtime stage installs every shared library the berth binary
# needs: each direct NEEDED entry of the binary is resolved here (Debian bookworm, the image's
# release), mapped to its Debian package with dpkg -S, and that package must be named in the
# runtime stage's apt-get install, or be one that debian:bookworm-slim already has (libc6,
# libgcc-s1, libstdc++6). Also checks that every package named there exists in the archive
# (apt-cache show). Usage: check_image_libs.sh BERTH_BINARY DOCKERFILE
set -euo pipefail
binary=$1 dockerfile=$2

# Packages of the last stage's `apt-get install` (the runtime stage).
runtime=$(awk '/^FROM /{stage=""} {stage=stage $0 "\n"} END{printf "%s", stage}' "$dockerfile" |
  sed -n '/apt-get install/,/rm -rf/p' | tr -s '[:space:]' '\n' |
  grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -vxE 'apt-get|install|update|rm' | sort -u)
base="libc6 libgcc-s1 libstdc++6"
[[ -n "$runtime" ]] || { echo "check_image_libs: no apt-get install in the runtime stage of $dockerfile" >&2; exit 1; }

status=0
while read -r lib; do
  path=$(ldd "$binary" | awk -v lib="$lib" '$1 == lib {print $3}')
  if [[ -z "$path" || ! -e "$path" ]]; then
    echo "check_image_libs: $lib (NEEDED by $binary) does not resolve here" >&2
    status=1
    continue
  fi
  real=$(readlink -f "$path")
  package=$(dpkg -S "$real" 2>/dev/null || dpkg -S "$path" 2>/dev/null || true)
  package=${package%%:*}
  if [[ -z "$package" ]]; then
    echo "check_image_libs: $lib ($real) belongs to no Debian package" >&2
    status=1
  elif grep -qx "$package" <<<"$runtime" || [[ " $base " == *" $package "* ]]; then
    echo "ok   $lib <- $package"
  else
    echo "check_image_libs: $lib comes from $package, which the runtime stage of $dockerfile does not install" >&2
    status=1
  fi
done < <(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')

for package in $runtime; do
  if ! apt-cache show --no-all-versions "$package" >/dev/null 2>&1; then
    echo "check_image_libs: $package (runtime stage of $dockerfile) is not in the Debian archive" >&2
    status=1
  fi
done
exit $status
