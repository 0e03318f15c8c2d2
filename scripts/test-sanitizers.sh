#!/usr/bin/env bash
# The sanitizer tier: builds Berth with AddressSanitizer (LeakSanitizer included) and
# UndefinedBehaviorSanitizer into build-asan (BERTH_SANITIZE, cmake/BerthSanitizers.cmake) and runs
# the unit and root tiers there, so the root tests launch the sanitized berth. .ci/run runs it after
# scripts/test.sh. Extra arguments go to ctest, e.g. `scripts/test-sanitizers.sh -R config`.
#
# Every sanitized process (test programs, berth, drive-tool, ...) writes its ASan and LSan reports
# to build-asan/sanitizer-reports/asan.<pid> rather than to its stderr: a report from a berth that
# a test stops without checking its exit status still fails this tier, which lists every report.
# UBSan (GCC's libubsan, a library of its own beside libasan) ignores log_path there: its reports
# go to the process's stderr (a test program's output, or berth's log) and abort the process.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/as-root.sh
berth_as_root_or_return "$PWD/scripts/test-sanitizers.sh" "$@" || true
./scripts/setup.sh
build=${BERTH_SANITIZE_BUILD_DIR:-build-asan}
BERTH_SANITIZE=1 BERTH_BUILD_TYPE=Debug BERTH_BUILD_DIR=$build ./scripts/build.sh
reports=$(realpath -m "$build")/sanitizer-reports
rm -rf "$reports"
mkdir -p "$reports"
# The first finding ends the process (SIGABRT) with a report and its stack.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:log_path=$reports/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1"
# The unit and root tiers; not the chart (no C++ in it), not the console test (Chromium
# against berth: the root tier already drives the same control API) and not the Debian cloud-image
# boots (5 minutes of TCG for the berth paths that the e2e tests already run).
args=(--test-dir "$build" --output-on-failure --no-tests=error -j"$(nproc)" -L 'unit|root'
      -E 'console in headless Chromium|cloud image')
if [[ $(id -u) -ne 0 ]]; then
  echo "test-sanitizers: not root and no sudo: running the unit tier only" >&2
  args+=(-L unit)
fi
status=0
ctest "${args[@]}" "$@" || status=$?
if compgen -G "$reports/*" >/dev/null; then
  for report in "$reports"/*; do
    echo "=== sanitizer report $report" >&2
    cat "$report" >&2
  done
  echo "test-sanitizers: the sanitizers reported findings (above; files in $reports)" >&2
  exit 1
fi
exit "$status"
