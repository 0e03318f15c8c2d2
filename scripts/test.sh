#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test tier that this machine
# allows. As root (CI) that includes the tests that need namespaces, nftables and QEMU.
# Extra arguments go to ctest, e.g. `scripts/test.sh -L unit` or `scripts/test.sh -R config`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/as-root.sh
# Not root: through sudo when there is one; otherwise the unit tier only (below).
berth_as_root_or_return "$PWD/scripts/test.sh" "$@" || true
./scripts/setup.sh
./scripts/build.sh
build=${BERTH_BUILD_DIR:-build}
args=(--test-dir "$build" --output-on-failure --no-tests=error -j"$(nproc)")
if [[ $(id -u) -ne 0 ]]; then
  echo "test: not root and no sudo: running the unit tier only (root, namespace and QEMU tiers" \
       "need root)" >&2
  args+=(-L unit)
fi
status=0
ctest "${args[@]}" "$@" || status=$?
# Without libFuzzer the fuzz tests only replayed their seeds (test/CMakeLists.txt, BERTH_FUZZ).
if grep -q '^BERTH_LIBFUZZER:INTERNAL=OFF$' "$build/CMakeCache.txt"; then
  cat >&2 <<'NOFUZZ'
######################################################################################
# FUZZING SKIPPED: the fuzz targets were built without libFuzzer, so their tests     #
# only replayed the seed corpora. scripts/setup.sh installs clang-14 and             #
# libclang-rt-14-dev; reconfigure with BERTH_FUZZ=auto (the default) to fuzz.        #
######################################################################################
NOFUZZ
fi
exit "$status"
