#!/usr/bin/env bash
# Configures and builds Berth (once; later runs rebuild only what changed), then assembles the
# browser viewers' files into $build/web (scripts/build-web.sh). Prints nothing on a
# no-op build except ninja's one line.
#   BERTH_BUILD_DIR   build folder (default: build)
#   BERTH_BUILD_TYPE  Release (default) or Debug
#   BERTH_SANITIZE=1  ASan + UBSan (cmake/BerthSanitizers.cmake); use its own BERTH_BUILD_DIR
#   BERTH_FUZZ        auto (default) or replay (test/CMakeLists.txt; replay when sanitizing)
#   CI=true           warnings become errors
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BERTH_BUILD_DIR:-build}
type=${BERTH_BUILD_TYPE:-Release}
werror=OFF
[[ "${CI:-}" == "true" ]] && werror=ON
sanitize=OFF
[[ "${BERTH_SANITIZE:-}" =~ ^(1|ON|on|true)$ ]] && sanitize=ON
fuzz=${BERTH_FUZZ:-auto}
[[ $sanitize == ON ]] && fuzz=${BERTH_FUZZ:-replay}
cached() { grep -q "^$1=$2\$" "$build/CMakeCache.txt"; }
if [[ ! -f "$build/build.ninja" ]] || ! cached CMAKE_BUILD_TYPE:STRING "$type" ||
   ! cached BERTH_WERROR:BOOL "$werror" || ! cached BERTH_SANITIZE:BOOL "$sanitize" ||
   ! cached BERTH_FUZZ:STRING "$fuzz"; then
  launcher=()
  # ccache (when installed) keeps compiled objects across clones and worktrees, outside the clone.
  if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  fi
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="$type" -DBERTH_WERROR="$werror" \
    -DBERTH_SANITIZE="$sanitize" -DBERTH_FUZZ="$fuzz" "${launcher[@]}" >/dev/null
fi
# Paths relative to the checkout, so another clone of the same commit hits the same cache entries.
export CCACHE_BASEDIR=$PWD CCACHE_DIR=${CCACHE_DIR:-/var/cache/berth/ccache} CCACHE_NOHASHDIR=true
cmake --build "$build" -- -j"$(nproc)"
# The browser viewers' pages and their pinned libraries (BERTH_WEB_DIR=$build/web).
./scripts/build-web.sh "$build/web"
