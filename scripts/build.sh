#!/usr/bin/env bash
# Configures and builds Berth (once; later runs rebuild only what changed). Prints nothing on a
# no-op build except ninja's one line.
#   BERTH_BUILD_DIR   build folder (default: build)
#   BERTH_BUILD_TYPE  Release (default) or Debug
#   CI=true           warnings become errors
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BERTH_BUILD_DIR:-build}
type=${BERTH_BUILD_TYPE:-Release}
werror=OFF
[[ "${CI:-}" == "true" ]] && werror=ON
if [[ ! -f "$build/build.ninja" ]] || ! grep -q "CMAKE_BUILD_TYPE:STRING=$type$" "$build/CMakeCache.txt" ||
   ! grep -q "BERTH_WERROR:BOOL=$werror$" "$build/CMakeCache.txt"; then
  launcher=()
  # ccache (when installed) keeps compiled objects across clones and worktrees, outside the clone.
  if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  fi
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="$type" -DBERTH_WERROR="$werror" "${launcher[@]}" >/dev/null
fi
# Paths relative to the checkout, so another clone of the same commit hits the same cache entries.
export CCACHE_BASEDIR=$PWD CCACHE_DIR=${CCACHE_DIR:-/var/cache/berth/ccache} CCACHE_NOHASHDIR=true
cmake --build "$build" -- -j"$(nproc)"
