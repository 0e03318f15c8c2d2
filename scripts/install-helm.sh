#!/usr/bin/env bash
# Installs a pinned Helm 3, built from source fetched through the Go module proxy, into a cache
# outside the repository, and prints the path of the binary. A no-op (well under a second) when
# that version is already there. Needs Go (>= 1.24) and the module proxy; nothing else.
#   BERTH_HELM_VERSION  the Helm release to build (default below; keep the tests pinned to it)
#   BERTH_TOOLS_DIR     the cache (default /var/cache/berth/tools): <dir>/helm-<version>/helm
# The first build takes a few minutes on two cores; the Go module and build caches make later
# builds of other versions faster.
set -euo pipefail

version=${BERTH_HELM_VERSION:-v3.22.0}
tools=${BERTH_TOOLS_DIR:-/var/cache/berth/tools}
dir=$tools/helm-$version
helm=$dir/helm

if [[ -x "$helm" ]]; then
  echo "$helm"
  exit 0
fi

export PATH=$PATH:/usr/local/go/bin  # where the machine image keeps Go, if PATH lacks it
if ! command -v go >/dev/null; then
  echo "install-helm: go not found; install Go >= 1.24 (or put a helm $version binary at $helm)" >&2
  exit 1
fi

mkdir -p "$tools"
exec 9>"$tools/.helm-$version.lock"
flock 9 # parallel runs (ctest -j) wait for one build
if [[ -x "$helm" ]]; then
  echo "$helm"
  exit 0
fi

module=helm.sh/helm/v3
# Helm's release builds stamp the version and the Kubernetes version its client libraries speak
# (the default .Capabilities.KubeVersion of `helm template`); do the same, from Helm's own go.mod.
gomod=$(GOFLAGS=-mod=mod go mod download -json "$module@$version" |
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
client_go=$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v\([0-9]*\)\.\([0-9]*\)\..*/\1 \2/p' "$gomod" | head -1)
if [[ -z "$client_go" ]]; then
  echo "install-helm: cannot read the k8s.io/client-go version from $gomod" >&2
  exit 1
fi
read -r cg_major cg_minor <<<"$client_go"
k8s_major=$((cg_major + 1)) # client-go v0.N.x speaks Kubernetes 1.N
k8s_minor=$cg_minor
ldflags="-s -w -X $module/internal/version.version=$version -X $module/internal/version.gitTreeState=clean"
for pkg in pkg/lint/rules pkg/chartutil; do
  ldflags+=" -X $module/$pkg.k8sVersionMajor=$k8s_major -X $module/$pkg.k8sVersionMinor=$k8s_minor"
done

staging=$(mktemp -d "$tools/.helm-$version.XXXXXX")
trap 'rm -rf "$staging"' EXIT
echo "install-helm: building helm $version from the Go module proxy into $dir (minutes, once)" >&2
GOBIN="$staging" GOFLAGS=-mod=mod CGO_ENABLED=0 \
  go install -trimpath -ldflags "$ldflags" "$module/cmd/helm@$version"
"$staging/helm" version --short >&2
rm -rf "$dir"
mkdir -p "$dir"
mv "$staging/helm" "$helm"
echo "$helm"
