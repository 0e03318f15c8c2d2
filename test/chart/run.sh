#!/usr/bin/env bash
# The Helm chart's tests (CTest label `chart`): a pinned helm (scripts/install-helm.sh) lints the
# chart and renders it with every example values file of the original chart and with the cases in
# test/chart/cases; each render is validated against the Kubernetes OpenAPI schema (kubeconform,
# strict, test/chart/install-kubeconform.sh), checked for the properties Berth depends on
# (check_manifests.py), and compared with its golden snapshot in test/chart/golden, NOTES.txt
# included; every failing values file must fail with the message that says what is wrong; every
# value must be documented (params.py); and the image's runtime stage must install the library of
# every shared object the berth binary links (check_image_libs.sh).
#
#   test/chart/run.sh                  run everything
#   UPDATE_GOLDEN=1 test/chart/run.sh  rewrite the golden snapshots (review the diff, then commit)
#   BERTH_BINARY=path                  the binary for the library check (default: build/supervisor/berth)
# Needs python3 with PyYAML, Go (first run only: helm and kubeconform are built and cached in
# /var/cache/berth/tools) and dpkg/apt-cache (Debian) for the library check.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
chart=$root/charts/berth
cd "$root"
# Debian's python3 with python3-yaml (scripts/setup.sh) when there is one, else whatever python3 is.
python=python3
if /usr/bin/python3 -c 'import yaml' 2>/dev/null; then python=/usr/bin/python3; fi
"$python" -c 'import yaml' 2>/dev/null || {
  echo "chart: python3 cannot import yaml; install PyYAML (apt-get install python3-yaml)" >&2
  exit 1
}

helm=$(scripts/install-helm.sh)
export PYTHON=$python
{ read -r kubeconform && read -r schemas; } < <(test/chart/install-kubeconform.sh)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
release=demo
namespace=berth
failures=0
fail() {
  echo "FAIL $*" >&2
  failures=$((failures + 1))
}
pass() { echo "ok   $*"; }

# A copy of the chart that also renders NOTES.txt's text as a manifest (`helm template` never
# prints NOTES.txt; the text lives in the named template berth.notes).
cp -r "$chart" "$work/chart"
echo 'notes: {{ include "berth.notes" . | toJson }}' >"$work/chart/templates/zz-notes.yaml"

# ---- lint ----
if "$helm" lint --strict "$chart" >"$work/lint.log" 2>&1; then
  pass "helm lint --strict (default values)"
else
  fail "helm lint --strict:"; cat "$work/lint.log" >&2
fi

# ---- every value documented, README table current ----
if "$python" "$here/params.py" "$chart/values.yaml" "$chart/README.md"; then
  pass "every value has an @param line; README parameter table is current"
else
  fail "values documentation"
fi

# ---- good renders: name, then the values files applied in order ----
good=(
  "cirros-test examples/cirros-test.yaml"
  "demo-ub14-apache examples/demo-ub14-apache.yaml"
  "ub16-smp-test examples/ub16-smp-test.yaml"
  "novnc-nocloud examples/cirros-test.yaml cases/novnc-nocloud.yaml"
  "pvc-cache examples/ub16-smp-test.yaml cases/pvc-cache.yaml"
  "pvc-existing-cache examples/ub16-smp-test.yaml cases/pvc-existing-cache.yaml"
  "emptydir-cache examples/demo-ub14-apache.yaml cases/emptydir-cache.yaml"
  "device-plugin cases/device-plugin.yaml"
  "multi-vm cases/multi-vm.yaml"
  "vnc-auth cases/vnc-auth.yaml"
  "consoles cases/consoles.yaml"
  "firmware cases/firmware.yaml"
  "install-iso cases/install-iso.yaml"
  "disks cases/disks.yaml"
)
for entry in "${good[@]}"; do
  read -r name files <<<"$entry"
  before=$failures
  args=() paths=()
  for f in $files; do
    args+=(-f "$here/$f")
    paths+=("$here/$f")
  done
  out=$work/$name.yaml
  if ! "$helm" template "$release" "$chart" -n "$namespace" "${args[@]}" >"$out" 2>"$work/$name.err"; then
    fail "$name: helm template failed:"; cat "$work/$name.err" >&2
    continue
  fi
  if ! "$helm" lint --strict "$chart" -n "$namespace" "${args[@]}" >"$work/$name.lint" 2>&1; then
    fail "$name: helm lint --strict:"; cat "$work/$name.lint" >&2
  fi
  if ! "$kubeconform" -strict -summary \
    -schema-location "$schemas/{{.ResourceKind}}{{.KindSuffix}}.json" "$out" >"$work/$name.kc" 2>&1; then
    fail "$name: not valid against the Kubernetes schema:"; cat "$work/$name.kc" >&2
  fi
  "$helm" template "$release" "$work/chart" -n "$namespace" "${args[@]}" \
    --show-only templates/zz-notes.yaml >"$work/$name.notes.yaml"
  "$python" -c 'import sys, yaml; sys.stdout.write(yaml.safe_load(open(sys.argv[1]))["notes"] + "\n")' \
    "$work/$name.notes.yaml" >"$work/$name.notes.txt"
  # A VNC password or control token the chart made up is new on every render (helm template cannot
  # look up the Secret an upgrade keeps): the checks and the golden snapshot see a placeholder.
  sed -i -E 's/^(  (password|token): )"[^"]*"(  # random: )/\1"<random>"\3/' "$out"
  if ! "$python" "$here/check_manifests.py" "$out" "$chart/values.yaml" "${paths[@]}" \
    --notes "$work/$name.notes.txt"; then
    fail "$name: manifest checks"
  fi
  for kind in yaml notes.txt; do
    golden=$here/golden/$name.$kind
    if [[ "${UPDATE_GOLDEN:-}" == 1 ]]; then
      cp "$work/$name.$kind" "$golden"
    elif [[ ! -f "$golden" ]]; then
      fail "$name: no golden snapshot $golden (UPDATE_GOLDEN=1 test/chart/run.sh writes it)"
    elif ! diff -u "$golden" "$work/$name.$kind" >"$work/$name.$kind.diff"; then
      fail "$name: render differs from $golden (UPDATE_GOLDEN=1 rewrites it after review):"
      head -60 "$work/$name.$kind.diff" >&2
    fi
  done
  ((failures > before)) ||
    pass "$name: renders, valid against $(basename "$schemas"), checks pass, matches golden"
done

# ---- bad values: each must fail and say what is wrong ----
# The original chart's zz-fail-* examples, with the message each must produce.
bad=(
  "examples/zz-fail-bogus.yaml|zz-fail-bogus.yaml: error converting YAML to JSON: yaml: line 11: did not find expected '-' indicator"
  "examples/zz-fail-nothing.yaml|vmlist is empty: define at least one VM"
  "examples/zz-fail-parse.yaml|at '/vmlist': got array, want object"
)
# Berth's own: the first line of each cases/fail-*.yaml is `# expect: <message>`.
for f in "$here"/cases/fail-*.yaml; do
  bad+=("cases/$(basename "$f")|$(sed -n '1s/^# expect: //p' "$f")")
done
for entry in "${bad[@]}"; do
  file=${entry%%|*} expected=${entry#*|}
  if [[ -z "$expected" ]]; then
    fail "$file: no '# expect: <message>' first line"
    continue
  fi
  if "$helm" template "$release" "$chart" -n "$namespace" -f "$here/$file" >/dev/null 2>"$work/bad.err"; then
    fail "$file: rendered, but must fail with: $expected"
  elif ! grep -qF -- "$expected" "$work/bad.err"; then
    fail "$file: failed, but not with: $expected"; cat "$work/bad.err" >&2
  else
    pass "$file fails: $(grep -F -- "$expected" "$work/bad.err" | head -1 | sed 's/^Error: //')"
  fi
done

# ---- the image installs every library berth links ----
binary=${BERTH_BINARY:-$root/build/supervisor/berth}
if [[ -x "$binary" ]]; then
  if "$here/check_image_libs.sh" "$binary" "$root/container/Dockerfile" >"$work/libs.log" 2>&1; then
    pass "container/Dockerfile's runtime stage installs the package of every library $(basename "$binary") needs"
  else
    fail "image libraries:"; cat "$work/libs.log" >&2
  fi
else
  echo "SKIP image library check: no berth binary at $binary (build first, or set BERTH_BINARY)" >&2
fi

if ((failures > 0)); then
  echo "chart: $failures failure(s)" >&2
  exit 1
fi
echo "chart: all checks passed (helm $("$helm" version --template '{{.Version}}'))"
