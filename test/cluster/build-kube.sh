#!/usr/bin/env bash
# build-kube.sh - build a pinned Kubernetes release (and the etcd it ships
# with, and CoreDNS for cluster DNS) from source for Berth's single-node test
# cluster.
#
# What it does
#   Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
#   kube-proxy, kubectl (k8s.io/kubernetes ${KUBE_VERSION}), etcd + etcdctl
#   (go.etcd.io/etcd ${ETCD_VERSION}) and coredns (github.com/coredns/coredns
#   ${COREDNS_VERSION}) with `go build`, using only the Go module proxy as
#   source (no git clone, no release tarballs, no apt).
#
#   k8s.io/kubernetes cannot be built with `go install pkg@version`: its go.mod
#   requires the k8s.io/* staging modules at v0.0.0 and replaces them with
#   ./staging/src/... directories that are not part of the module zip.  So we
#   build from a scratch module that requires k8s.io/kubernetes ${KUBE_VERSION}
#   and replaces every staging module it requires with the published
#   k8s.io/<name> v0.<minor>.<patch>.  The list is derived from the release's
#   own go.mod, not hard-coded.  etcd is built the same way from a scratch
#   module requiring go.etcd.io/etcd/{server,etcdctl}/v3 ${ETCD_VERSION}.
#
#   CoreDNS's module root is its main package and its go.mod (v1.15.0) has no
#   replace directives, so a scratch module requiring it is all it takes; any
#   replace directive a future pin brings is copied into the scratch module
#   (one pointing at a local directory stops the build, as it cannot work from
#   the module zip).  It is built like upstream's Makefile does it (-tags
#   grpcnotrace, -s -w, CGO_ENABLED=0) plus -trimpath, with the default
#   plugin set (plugin.cfg), which includes `kubernetes`; coremain.GitCommit
#   is left empty.  It runs as a plain process in the node's network namespace
#   and reads the API with a kubeconfig: test/cluster/Corefile.example.
#
#   Version stamping mirrors hack/lib/version.sh: gitVersion, gitMajor,
#   gitMinor, gitTreeState=clean and buildDate are set through -X on both
#   k8s.io/component-base/version and k8s.io/client-go/pkg/version, so
#   `kubelet --version` / `kubectl version --client` print ${KUBE_VERSION}.
#   gitCommit is set empty: the module proxy does not tell us the commit
#   (left alone it would print the git-archive placeholder "$Format:%H$").
#   Flags follow the upstream non-debug release build: -trimpath, -s -w,
#   tags selinux,notest,grpcnotrace.  All binaries, kubelet included, are
#   built with CGO_ENABLED=0 (upstream links kubelet against libc, but it
#   builds and runs fine without cgo; nothing we need depends on it).
#
# Go toolchain
#   k8s.io/kubernetes v1.37.2 says `go 1.26.0`, etcd v3.7.0 `go 1.26` and
#   CoreDNS v1.15.0 `go 1.26.0`, so the local go1.26.8 is enough and
#   GOTOOLCHAIN=local is used.  Should a future pin need a newer Go than the
#   local one, the script switches to GOTOOLCHAIN=${FALLBACK_TOOLCHAIN}
#   (approved; served by the module proxy).  Only the go directives of the
#   parts being built count.
#
# Where it caches
#   binaries:  ${BERTH_KUBE_CACHE:-/var/cache/berth/kube}/${KUBE_VERSION}/bin/
#              (plus .stamp and the generated go.mod/go.sum under src/)
#   Go caches: GOMODCACHE=/var/cache/berth/go/mod, GOCACHE=/var/cache/berth/go/build
#              unless GOMODCACHE / GOCACHE are already set in the environment.
#   The build runs in a temporary directory next to the cache and is renamed
#   into place only once every binary has built and answered --version, so an
#   interrupted build never leaves a half-filled cache behind.
#
# Parts and the stamp
#   The binaries come in three parts: kube, etcd and coredns.  The stamp's
#   first line names every pin, each part's recipe number and the binary list;
#   the cache is complete only when it equals ${RECIPE} below and every binary
#   is there.  When it is not, a part whose version and recipe number the old
#   stamp records unchanged, and whose binaries still match the stamp's
#   sha256 sums, is carried over (hard links) instead of being rebuilt: adding
#   CoreDNS to a cache of stamp recipe 3 (kube + etcd only) builds CoreDNS
#   alone.  A stamp without per-part numbers (recipe 3) counts as
#   kube-recipe=3 etcd-recipe=3.  Bump a part's number when the way it is
#   built changes, RECIPE_VERSION when the set of parts does.
#
# How long it takes (2-core machine, builds run under nice -n 19)
#   cold (empty Go caches): ~16 min for kube + etcd (kube-apiserver alone
#     ~9 min, as it compiles most shared packages first), ~2-3 min more for
#     CoreDNS; ~2.3 GiB module cache (CoreDNS's cloud plugins bring 1.5 GiB)
#     and ~5 GiB build cache get filled, 0.5 GiB of binaries result.
#   only CoreDNS missing (a recipe-3 cache): ~2 min 10 s with the Go caches
#     the kube build left (module resolution ~20 s, coredns ~1 min 45 s);
#     ~3 min 15 s with empty Go caches
#   warm Go caches, no binary cache: ~40 s (module resolution + relinking)
#   binary cache present: ~0.01 s (prints that it used the cache)
#
# Usage
#   test/cluster/build-kube.sh          build if needed, print the bin dir
#   test/cluster/build-kube.sh --check  exit 0 if the cache is complete,
#                                       1 otherwise (prints what is missing)
set -euo pipefail

KUBE_VERSION=v1.37.2
# etcd that k8s.io/kubernetes v1.37.2 pins: go.mod requires
# go.etcd.io/etcd/client/v3 v3.7.0 and hack/lib/etcd.sh uses ETCD_VERSION=3.7.0.
# The build fails if the kube go.mod disagrees.
ETCD_VERSION=v3.7.0
# Cluster DNS (CoreDNS v1.15.0: go 1.26.0, client-go v0.37.1, no replaces).
COREDNS_VERSION=v1.15.0
FALLBACK_TOOLCHAIN=go1.27.3

KUBE_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
ETCD_BINARIES=(etcd etcdctl)
COREDNS_BINARIES=(coredns)
ALL_BINARIES=("${KUBE_BINARIES[@]}" "${ETCD_BINARIES[@]}" "${COREDNS_BINARIES[@]}")

# Parts: pinned version and recipe number (bump the number when the way the
# part is built changes; its binaries are then rebuilt, the other parts kept).
PARTS=(kube etcd coredns)
declare -A PART_VERSION=([kube]=${KUBE_VERSION} [etcd]=${ETCD_VERSION} [coredns]=${COREDNS_VERSION})
declare -A PART_RECIPE=([kube]=3 [etcd]=3 [coredns]=1)
declare -A PART_BINARIES=([kube]="${KUBE_BINARIES[*]}" [etcd]="${ETCD_BINARIES[*]}" [coredns]="${COREDNS_BINARIES[*]}")
# The stamp's overall recipe: bump when the set of parts changes.
RECIPE_VERSION=4

CACHE_ROOT=${BERTH_KUBE_CACHE:-/var/cache/berth/kube}
DEST=${CACHE_ROOT}/${KUBE_VERSION}
BIN=${DEST}/bin
STAMP=${DEST}/.stamp
# Identifies what a cache directory was built from; a stamp that does not
# match (e.g. after changing ETCD_VERSION or flags) counts as stale.
part_id() { echo "$1=${PART_VERSION[$1]} $1-recipe=${PART_RECIPE[$1]}"; }
RECIPE="recipe=${RECIPE_VERSION}"
for p in "${PARTS[@]}"; do RECIPE+=" $(part_id "${p}")"; done
RECIPE+=" binaries=${ALL_BINARIES[*]}"

log() { printf '[build-kube] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# Prints what is missing from the cache (nothing if it is complete).
cache_missing() {
  local b
  if [[ ! -f ${STAMP} ]]; then
    echo "stamp file ${STAMP}"
  elif [[ $(head -n1 "${STAMP}") != "${RECIPE}" ]]; then
    echo "up-to-date stamp (${STAMP} was built from: $(head -n1 "${STAMP}"))"
  fi
  for b in "${ALL_BINARIES[@]}"; do
    [[ -x ${BIN}/${b} ]] || echo "binary ${BIN}/${b}"
  done
}

fmt_dur() { # seconds -> 1m23s
  local s=$1
  if ((s >= 60)); then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

check_only=0
case "${1:-}" in
  "") ;;
  --check) check_only=1 ;;
  -h|--help) usage; exit 0 ;;
  *) usage >&2; exit 2 ;;
esac

missing=$(cache_missing)
if ((check_only)); then
  if [[ -z ${missing} ]]; then
    log "cache complete: ${BIN}"
    exit 0
  fi
  log "cache incomplete for Kubernetes ${KUBE_VERSION} in ${DEST}; missing:"
  while IFS= read -r m; do log "  - ${m}"; done <<<"${missing}"
  exit 1
fi
if [[ -z ${missing} ]]; then
  log "using cached Kubernetes ${KUBE_VERSION} + etcd ${ETCD_VERSION} + CoreDNS ${COREDNS_VERSION} binaries (no build): ${BIN}"
  echo "${BIN}"
  exit 0
fi

# ---------------------------------------------------------------------------
# Cold path: build what is missing.
T0=$(date +%s)

command -v go >/dev/null || die "go not found in PATH"
mkdir -p "${CACHE_ROOT}"

# One builder per version at a time (other helpers share this machine).
exec 9>"${CACHE_ROOT}/.build-${KUBE_VERSION}.lock"
if ! flock -n 9; then
  log "another build of ${KUBE_VERSION} is running; waiting for its lock"
  flock 9
fi
if [[ -z $(cache_missing) ]]; then
  log "using cached binaries built by a concurrent run: ${BIN}"
  echo "${BIN}"
  exit 0
fi

# --- which parts the existing cache can give -----------------------------------
# stamp_token KEY LINE: the value of the word KEY=VALUE in LINE (fails if none).
stamp_token() {
  local w words
  read -ra words <<<"$2"
  for w in "${words[@]}"; do
    if [[ ${w} == "$1="* ]]; then echo "${w#*=}"; return 0; fi
  done
  return 1
}
# The id ("PART=VERSION PART-recipe=N") the existing stamp records for a part,
# empty if none.  Stamps of recipe 3 have no PART-recipe= words: their overall
# recipe number stands for every part they name.
stamp_part_id() {
  local line v r
  [[ -f ${STAMP} ]] || return 0
  line=$(head -n1 "${STAMP}")
  v=$(stamp_token "$1" "${line}") || return 0
  r=$(stamp_token "$1-recipe" "${line}") || r=$(stamp_token recipe "${line}") || return 0
  echo "$1=${v} $1-recipe=${r}"
}
# How the existing stamp says a part was built ("part ..." line; recipe 3
# stamps have one "toolchain=..." line for all parts).
stamp_part_info() {
  local line
  line=$(awk -v p="$1" '$1 == "part" && index($2, p "=") == 1 { print; exit }' "${STAMP}")
  if [[ -z ${line} ]]; then
    line="part $(part_id "$1") $(awk '$1 ~ /^toolchain=/ { print; exit }' "${STAMP}") (reused)"
  elif [[ ${line} != *" (reused)" ]]; then
    line+=" (reused)"
  fi
  echo "${line}"
}
# 0 if every binary of the part is in the cache as the stamp recorded it.
part_reusable() {
  local b sum
  [[ -n $(stamp_part_id "$1") && $(stamp_part_id "$1") == "$(part_id "$1")" ]] || return 1
  for b in ${PART_BINARIES[$1]}; do
    [[ -x ${BIN}/${b} ]] || return 1
    sum=$(awk -v b="${b}" 'NF == 2 && $2 == b && $1 ~ /^[0-9a-f]+$/ && length($1) == 64 { print $1; exit }' "${STAMP}")
    [[ -n ${sum} && $(sha256sum <"${BIN}/${b}" | cut -d' ' -f1) == "${sum}" ]] || return 1
  done
}
declare -A BUILD
build_parts=()
reuse_parts=()
for p in "${PARTS[@]}"; do
  if part_reusable "${p}"; then
    BUILD[${p}]=0
    reuse_parts+=("${p}")
  else
    BUILD[${p}]=1
    build_parts+=("${p}")
  fi
done

export GOMODCACHE=${GOMODCACHE:-/var/cache/berth/go/mod}
export GOCACHE=${GOCACHE:-/var/cache/berth/go/build}
export CGO_ENABLED=0
export GOTOOLCHAIN=local
# GOFLAGS from the environment (e.g. -buildvcs=false) is kept; the scratch
# modules have no VCS anyway.
mkdir -p "${GOMODCACHE}" "${GOCACHE}"

WORK=$(mktemp -d "${CACHE_ROOT}/.tmp-${KUBE_VERSION}.XXXXXX")
trap 'rm -rf "${WORK}"' EXIT
mkdir -p "${WORK}/bin" "${WORK}/src"

NICE=(nice -n 19)
GO=("${NICE[@]}" go)

log "Kubernetes ${KUBE_VERSION}, etcd ${ETCD_VERSION}, CoreDNS ${COREDNS_VERSION}; local $(go env GOVERSION)"
log "GOMODCACHE=${GOMODCACHE} GOCACHE=${GOCACHE}"
log "building in ${WORK}: ${build_parts[*]:-nothing (re-stamping only)}"
((${#reuse_parts[@]} == 0)) || log "carried over from ${BIN} (stamp and sha256 match): ${reuse_parts[*]}"

# --- carry over the reusable parts -----------------------------------------------
declare -A DUR
for p in "${reuse_parts[@]}"; do
  for b in ${PART_BINARIES[${p}]}; do
    ln "${BIN}/${b}" "${WORK}/bin/${b}" 2>/dev/null || cp -p "${BIN}/${b}" "${WORK}/bin/${b}"
    DUR[${b}]=reused
  done
  # The part's record under src/: its scratch go.mod/go.sum and upstream go.mod.
  case ${p} in
    kube) upstream=kubernetes.go.mod ;;
    *) upstream=${p}.go.mod ;;
  esac
  for f in "${p}-build.go.mod" "${p}-build.go.sum" "${upstream}"; do
    [[ ! -f ${DEST}/src/${f} ]] || cp -p "${DEST}/src/${f}" "${WORK}/src/"
  done
done

gomod_of() { # module@version -> path of its go.mod in the module cache
  (cd "${WORK}" && "${GO[@]}" mod download -json "$1" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
}
# Module paths replaced by ./staging/... in the release's go.mod.
staging_replaced() {
  awk '
    /^replace[[:space:]]*\(/ { inblk = 1; next }
    inblk && /^\)/           { inblk = 0; next }
    inblk && $2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }
    $1 == "replace" && $3 == "=>" && $4 ~ /^\.\/staging\// { print $2 }
  ' "$1" | sort -u
}
# All replace directives of a go.mod, one per line, without "replace".
replace_lines() {
  awk '
    /^replace[[:space:]]*\(/ { inblk = 1; next }
    inblk && /^\)/           { inblk = 0; next }
    inblk && /=>/ && $1 !~ /^\/\// { sub(/[[:space:]]*\/\/.*$/, ""); sub(/^[[:space:]]+/, ""); print }
    $1 == "replace" && $2 != "(" { sub(/[[:space:]]*\/\/.*$/, ""); sub(/^replace[[:space:]]+/, ""); print }
  ' "$1"
}
# Module paths (and versions) in the release's require directives.
required_modules() {
  awk '
    /^require[[:space:]]*\(/ { inblk = 1; next }
    inblk && /^\)/           { inblk = 0; next }
    inblk && NF >= 2 && $1 !~ /^\/\// { print $1, $2 }
    $1 == "require" && $2 != "(" { print $2, $3 }
  ' "$1"
}
go_directive() { awk '$1 == "go" { print $2; exit }' "$1"; }

go_needs=()
# --- kube: fetch the release's go.mod and derive the staging replacements -----
# (etcd needs it too: the release's go.mod must pin the etcd we build.)
if ((BUILD[kube] || BUILD[etcd])); then
  t=$(date +%s)
  kube_gomod=$(gomod_of "k8s.io/kubernetes@${KUBE_VERSION}")
  [[ -f ${kube_gomod} ]] || die "could not download k8s.io/kubernetes@${KUBE_VERSION}"
  cp "${kube_gomod}" "${WORK}/src/kubernetes.go.mod"
  log "fetched k8s.io/kubernetes@${KUBE_VERSION} in $(fmt_dur $(($(date +%s) - t)))"

  etcd_req=$(required_modules "${kube_gomod}" | awk '$1 == "go.etcd.io/etcd/client/v3" { print $2 }')
  [[ ${etcd_req} == "${ETCD_VERSION}" ]] ||
    die "k8s.io/kubernetes ${KUBE_VERSION} requires go.etcd.io/etcd/client/v3 ${etcd_req}, but ETCD_VERSION=${ETCD_VERSION}; update the pin"
fi
if ((BUILD[kube])); then
  staging_version=v0.${KUBE_VERSION#v1.}
  mapfile -t staging < <(comm -12 <(staging_replaced "${kube_gomod}") \
    <(required_modules "${kube_gomod}" | awk '{ print $1 }' | sort -u))
  ((${#staging[@]} > 0)) || die "found no staging modules in the k8s.io/kubernetes go.mod"
  log "${#staging[@]} staging modules -> ${staging_version}"
  kube_go=$(go_directive "${kube_gomod}")
  go_needs+=("kubernetes ${kube_go}")
fi
if ((BUILD[etcd])); then
  etcd_gomod=$(gomod_of "go.etcd.io/etcd/server/v3@${ETCD_VERSION}")
  [[ -f ${etcd_gomod} ]] || die "could not download go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
  etcd_go=$(go_directive "${etcd_gomod}")
  go_needs+=("etcd ${etcd_go}")
fi
if ((BUILD[coredns])); then
  t=$(date +%s)
  coredns_gomod=$(gomod_of "github.com/coredns/coredns@${COREDNS_VERSION}")
  [[ -f ${coredns_gomod} ]] || die "could not download github.com/coredns/coredns@${COREDNS_VERSION}"
  cp "${coredns_gomod}" "${WORK}/src/coredns.go.mod"
  log "fetched github.com/coredns/coredns@${COREDNS_VERSION} in $(fmt_dur $(($(date +%s) - t)))"
  coredns_go=$(go_directive "${coredns_gomod}")
  go_needs+=("coredns ${coredns_go}")
  # Replace directives of a dependency are ignored: the scratch module must
  # repeat them.  One that points at a directory cannot work from the zip.
  mapfile -t coredns_replaces < <(replace_lines "${coredns_gomod}")
  for r in "${coredns_replaces[@]}"; do
    target=${r#*=>}
    target=${target#"${target%%[![:space:]]*}"}
    [[ ${target} != .* && ${target} != /* ]] ||
      die "github.com/coredns/coredns ${COREDNS_VERSION} replaces '${r}' with a local directory; the module zip cannot be built as is"
  done
  ((${#coredns_replaces[@]} == 0)) || log "CoreDNS go.mod replaces (copied): ${coredns_replaces[*]}"
fi

# --- toolchain: local Go if it satisfies the go directives, else fallback ---
need_go=$(printf '%s\n' "${go_needs[@]}" | awk '{ print $2 }' | sort -V | tail -n1)
have_go=$(go env GOVERSION)
have_go=${have_go#go}
if [[ $(printf '%s\n' "${need_go}" "${have_go}" | sort -V | tail -n1) != "${have_go}" ]]; then
  log "go ${need_go} required, local is ${have_go}: using GOTOOLCHAIN=${FALLBACK_TOOLCHAIN}"
  export GOTOOLCHAIN=${FALLBACK_TOOLCHAIN}
fi
toolchain=$(cd "${WORK}" && go env GOVERSION)
((${#go_needs[@]} == 0)) ||
  log "go directives: $(printf '%s, ' "${go_needs[@]}" | sed 's/, $//'); building with ${toolchain}"

# --- scratch modules ---------------------------------------------------------
# scratch_gomod PART GO UPSTREAM_GOMOD REQUIRE [REPLACE...]: write ${WORK}/PART/go.mod, module
# berth.invalid/PART-build requiring REQUIRE ("path version"), with the replace directives REPLACE
# ("old => new version"). godebug lines of a dependency are ignored; the upstream go.mod's are
# copied into the main module so runtime defaults match an upstream build.
scratch_gomod() {
  local part=$1 go=$2 upstream=$3 require=$4
  shift 4
  mkdir -p "${WORK}/${part}"
  {
    echo "module berth.invalid/${part}-build"
    echo
    echo "go ${go}"
    grep -E '^godebug[[:space:]]' "${upstream}" || true
    echo
    echo "require ${require}"
    if (($# > 0)); then
      echo
      echo "replace ("
      printf '\t%s\n' "$@"
      echo ")"
    fi
  } >"${WORK}/${part}/go.mod"
}
if ((BUILD[kube])); then
  kube_replaces=()
  for m in "${staging[@]}"; do kube_replaces+=("${m} => ${m} ${staging_version}"); done
  scratch_gomod kube "${kube_go}" "${kube_gomod}" "k8s.io/kubernetes ${KUBE_VERSION}" "${kube_replaces[@]}"
fi

if ((BUILD[etcd])); then
  mkdir -p "${WORK}/etcd"
  cat >"${WORK}/etcd/go.mod" <<EOF
module berth.invalid/etcd-build

go ${etcd_go}

require (
	go.etcd.io/etcd/etcdctl/v3 ${ETCD_VERSION}
	go.etcd.io/etcd/server/v3 ${ETCD_VERSION}
)
EOF
fi

if ((BUILD[coredns])); then
  scratch_gomod coredns "${coredns_go}" "${coredns_gomod}" "github.com/coredns/coredns ${COREDNS_VERSION}" \
    "${coredns_replaces[@]}"
fi

t=$(date +%s)
((${#build_parts[@]} == 0)) || log "resolving module graphs (downloads sources on a cold cache)"
go_get() { # moddir args...
  local dir=$1; shift
  if ! (cd "${dir}" && "${GO[@]}" get "$@") >"${WORK}/go-get.log" 2>&1; then
    grep -v '^go: downloading' "${WORK}/go-get.log" >&2 || true
    die "go get $* failed"
  fi
}
if ((BUILD[kube])); then
  kube_pkgs=()
  for b in "${KUBE_BINARIES[@]}"; do kube_pkgs+=("k8s.io/kubernetes/cmd/${b}@${KUBE_VERSION}"); done
  go_get "${WORK}/kube" "${kube_pkgs[@]}"
fi
if ((BUILD[etcd])); then
  go_get "${WORK}/etcd" "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" "go.etcd.io/etcd/etcdctl/v3@${ETCD_VERSION}"
fi
if ((BUILD[coredns])); then
  go_get "${WORK}/coredns" "github.com/coredns/coredns@${COREDNS_VERSION}"
fi
rm -f "${WORK}/go-get.log"
((${#build_parts[@]} == 0)) || log "modules resolved in $(fmt_dur $(($(date +%s) - t)))"

# --- build -------------------------------------------------------------------
kube_major=${KUBE_VERSION#v}; kube_major=${kube_major%%.*}
kube_minor=${KUBE_VERSION#v*.}; kube_minor=${kube_minor%%.*}
build_date=$(date -u ${SOURCE_DATE_EPOCH:+--date=@${SOURCE_DATE_EPOCH}} +%Y-%m-%dT%H:%M:%SZ)
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X ${pkg}.gitVersion=${KUBE_VERSION}"
  kube_ldflags+=" -X ${pkg}.gitMajor=${kube_major}"
  kube_ldflags+=" -X ${pkg}.gitMinor=${kube_minor}"
  kube_ldflags+=" -X ${pkg}.gitCommit="  # unknown; else it reads \$Format:%H\$
  kube_ldflags+=" -X ${pkg}.gitTreeState=clean"
  kube_ldflags+=" -X ${pkg}.buildDate=${build_date}"
done
declare -A BUILD_TAGS=([kube]="selinux,notest,grpcnotrace" [etcd]="selinux,notest,grpcnotrace" [coredns]="grpcnotrace")

n=0
total=0
for p in "${build_parts[@]}"; do
  read -ra bs <<<"${PART_BINARIES[${p}]}"
  total=$((total + ${#bs[@]}))
done
build_one() { # part name moddir pkg ldflags
  local part=$1 name=$2 moddir=$3 pkg=$4 ldflags=$5 t
  n=$((n + 1))
  log "[${n}/${total}] ${name} (${pkg}) ..."
  t=$(date +%s)
  (cd "${moddir}" && "${GO[@]}" build -mod=mod -trimpath "-tags=${BUILD_TAGS[${part}]}" \
    -ldflags="${ldflags}" -o "${WORK}/bin/${name}" "${pkg}") ||
    die "build of ${name} failed"
  DUR[${name}]=$(fmt_dur $(($(date +%s) - t)))
  log "[${n}/${total}] ${name} done in ${DUR[${name}]}"
}

if ((BUILD[kube])); then
  for b in "${KUBE_BINARIES[@]}"; do
    build_one kube "${b}" "${WORK}/kube" "k8s.io/kubernetes/cmd/${b}" "${kube_ldflags}"
  done
fi
if ((BUILD[etcd])); then
  build_one etcd etcd "${WORK}/etcd" "go.etcd.io/etcd/server/v3" "-s -w"
  build_one etcd etcdctl "${WORK}/etcd" "go.etcd.io/etcd/etcdctl/v3" "-s -w"
fi
if ((BUILD[coredns])); then
  # coremain.GitCommit is what upstream's Makefile sets; the proxy has no commit.
  build_one coredns coredns "${WORK}/coredns" "github.com/coredns/coredns" \
    "-s -w -X github.com/coredns/coredns/coremain.GitCommit="
fi

# --- verify: every binary must run and report the pinned version ------------
version_of() {
  case $1 in
    kubectl) "${WORK}/bin/kubectl" version --client ;;
    etcdctl) "${WORK}/bin/etcdctl" version ;;
    coredns) "${WORK}/bin/coredns" -version ;;
    *) "${WORK}/bin/$1" --version ;;
  esac 2>&1
}
for p in "${PARTS[@]}"; do
  case ${p} in
    kube) want=${KUBE_VERSION} ;;
    etcd) want=${ETCD_VERSION#v} ;;
    coredns) want=CoreDNS-${COREDNS_VERSION#v} ;;
  esac
  for b in ${PART_BINARIES[${p}]}; do
    out=$(version_of "${b}") || die "${b} failed to report its version: ${out}"
    [[ ${out} == *"${want}"* ]] || die "${b} reports '${out}', expected ${want}"
    log "verified ${b}: $(head -n1 <<<"${out}")"
  done
done

# --- stamp and move into place -------------------------------------------------
for p in "${build_parts[@]}"; do
  cp "${WORK}/${p}/go.mod" "${WORK}/src/${p}-build.go.mod"
  cp "${WORK}/${p}/go.sum" "${WORK}/src/${p}-build.go.sum"
done
{
  echo "${RECIPE}"
  for p in "${PARTS[@]}"; do
    if ((BUILD[${p}])); then
      info="part $(part_id "${p}") toolchain=${toolchain} cgo=0 tags=${BUILD_TAGS[${p}]}"
      [[ ${p} != kube ]] || info+=" build_date=${build_date}"
      echo "${info}"
    else
      stamp_part_info "${p}"
    fi
  done
  (cd "${WORK}/bin" && sha256sum "${ALL_BINARIES[@]}")
} >"${WORK}/.stamp"
rm -rf "${WORK}/kube" "${WORK}/etcd" "${WORK}/coredns"

if [[ -e ${DEST} ]]; then
  old=$(mktemp -d "${CACHE_ROOT}/.old-${KUBE_VERSION}.XXXXXX")
  mv "${DEST}" "${old}/"
  rm -rf "${old}"
fi
mv "${WORK}" "${DEST}"
chmod 755 "${DEST}"
trap - EXIT

# --- report --------------------------------------------------------------------
log "Kubernetes ${KUBE_VERSION} + etcd ${ETCD_VERSION} + CoreDNS ${COREDNS_VERSION} in ${BIN}; built ${build_parts[*]:-nothing} with ${toolchain}${reuse_parts[*]:+, carried over ${reuse_parts[*]}}"
for b in "${ALL_BINARIES[@]}"; do
  d=${DUR[${b}]}
  [[ ${d} == reused ]] && d="carried over" || d="built in ${d}"
  printf '[build-kube]   %-24s %7s  %s\n' "${b}" "$(du -h "${BIN}/${b}" | cut -f1)" "${d}" >&2
done
log "binaries: $(du -sh "${BIN}" | cut -f1); Go module cache: $(du -sh "${GOMODCACHE}" 2>/dev/null | cut -f1); Go build cache: $(du -sh "${GOCACHE}" 2>/dev/null | cut -f1)"
log "total time $(fmt_dur $(($(date +%s) - T0)))"
echo "${BIN}"
