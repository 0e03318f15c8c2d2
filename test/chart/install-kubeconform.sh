#!/usr/bin/env bash
# Installs a pinned kubeconform, built from the Go module proxy, and the strict JSON schemas it
# validates the chart's manifests against, made from the Kubernetes OpenAPI spec of a pinned
# release (k8s.io/kubernetes' api/openapi-spec/swagger.json, fetched as a Go module, so the bytes
# are checked against the Go checksum database). Both are cached outside the repository; a no-op
# when present. Prints two lines: the kubeconform binary and the schema directory.
#   BERTH_KUBECONFORM_VERSION  default below
#   BERTH_K8S_SCHEMA_VERSION   Kubernetes release of the schemas (default: the one Helm's client
#                              libraries speak, so `helm template` and the schemas agree)
#   BERTH_TOOLS_DIR            cache (default /var/cache/berth/tools)
# Schemas are generated for the kinds named in BERTH_K8S_SCHEMA_KINDS (apiVersion/Kind, space
# separated); the cache directory is keyed by the Kubernetes version and the generator's hash.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

version=${BERTH_KUBECONFORM_VERSION:-v0.8.0}
k8s=${BERTH_K8S_SCHEMA_VERSION:-v1.37.2}
tools=${BERTH_TOOLS_DIR:-/var/cache/berth/tools}
kinds=${BERTH_K8S_SCHEMA_KINDS:-apps/v1/StatefulSet v1/Service v1/ConfigMap v1/Secret v1/PersistentVolumeClaim v1/Pod}

mkdir -p "$tools"
exec 9>"$tools/.kubeconform.lock"
flock 9 # parallel runs wait for one build

bin=$tools/kubeconform-$version/kubeconform
if [[ ! -x "$bin" ]]; then
  export PATH=$PATH:/usr/local/go/bin
  command -v go >/dev/null || { echo "install-kubeconform: go not found" >&2; exit 1; }
  staging=$(mktemp -d "$tools/.kubeconform-$version.XXXXXX")
  trap 'rm -rf "$staging"' EXIT
  echo "install-kubeconform: building kubeconform $version from the Go module proxy (once)" >&2
  GOBIN="$staging" GOFLAGS=-mod=mod CGO_ENABLED=0 \
    go install -trimpath -ldflags "-s -w" "github.com/yannh/kubeconform/cmd/kubeconform@$version"
  mkdir -p "$(dirname "$bin")"
  mv "$staging/kubeconform" "$bin"
fi

generator_hash=$(sha256sum "$here/k8s_schemas.py" | cut -c1-12)
schemas=$tools/k8s-schemas-$k8s-strict-$generator_hash
if [[ ! -f "$schemas/.complete" ]] || [[ "$(cat "$schemas/.complete")" != "$kinds" ]]; then
  command -v go >/dev/null || { echo "install-kubeconform: go not found" >&2; exit 1; }
  echo "install-kubeconform: making strict schemas from Kubernetes $k8s's OpenAPI spec" >&2
  spec_dir=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$k8s" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  # shellcheck disable=SC2086 # kinds are words
  "${PYTHON:-python3}" "$here/k8s_schemas.py" "$spec_dir/api/openapi-spec/swagger.json" "$schemas" $kinds
  echo "$kinds" >"$schemas/.complete"
fi
echo "$bin"
echo "$schemas"
