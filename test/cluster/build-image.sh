#!/usr/bin/env bash
# Build Berth's container image (container/Dockerfile) without a Docker daemon or a registry, and leave
# it as an OCI archive that containerd imports (`ctr -n k8s.io images import ARCHIVE`) under the
# name the chart uses by default: localhost/berth:<appVersion of charts/berth/Chart.yaml>.
#
#   test/cluster/build-image.sh            build (or reuse) the archive; its path is the last line
#                                          of stdout, progress goes to stderr
#   test/cluster/build-image.sh --force    rebuild the archive even when the cached one matches
#
# Steps (each timed on stderr):
#   packages     apt-get install debootstrap buildah runc (skipped when all are installed)
#   debootstrap  `debootstrap --variant=minbase <release>` from the host's own Debian mirror, with
#                the host's apt sources (and its Acquire:: settings) written into the rootfs;
#                cached as /var/cache/berth/cluster/rootfs-<release>-minbase.tar
#   import       that tarball into buildah's storage as docker.io/library/debian:<release> (what
#                the Dockerfile's `FROM debian:<release>` resolves to) and, with the dpkg path
#                excludes and deletions of Debian's official "-slim" images, as
#                docker.io/library/debian:<release>-slim
#   web          when the Dockerfile runs scripts/build-web.sh (the browser viewers' npm packages):
#                that script once on the host, which fills its cache (BERTH_WEB_CACHE, default
#                /var/cache/berth/web, keyed by the lock file); the build gets the cache as a
#                read-only volume at the same path, so its `npm ci` never runs: the packages are
#                fetched with the host's npm settings (proxy, CA) or not at all
#   build        `buildah bud --layers --pull=never --runtime runc --network host` from the
#                repository root
#   push         `buildah push` to oci-archive:<file>:localhost/berth:<tag>, cached as
#                /var/cache/berth/cluster/berth-<tag>-<key>.oci.tar, <key> a hash of the Dockerfile,
#                its .dockerignore, every file its COPY lines take from the context, the tag and
#                the base rootfs; berth-<tag>.oci.tar links to the newest
# An unchanged tree finds its archive and skips everything after `packages`.
#
# Everything it writes is under /var/cache/berth (the rootfs tarball, the archives, buildah's own
# storage in /var/cache/berth/buildah) and /run/berth-buildah (buildah's run root) and temporary
# directories; nothing goes into the checkout. Needs root, Debian (apt, dpkg) and the network path
# to the host's Debian mirror. The mirror is read from the host's apt sources at run time.
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${BERTH_CLUSTER_CACHE:-/var/cache/berth/cluster}
storage=${BERTH_BUILDAH_ROOT:-/var/cache/berth/buildah/storage}
runroot=${BERTH_BUILDAH_RUNROOT:-/run/berth-buildah}
dockerfile=container/Dockerfile
# Bump when the way the base images are made changes (invalidates the rootfs and archive caches).
base_recipe=1

LOG_PREFIX=build-image
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"
parse_build_args "$@"
[[ $(id -u) == 0 ]] || die "needs root (debootstrap, buildah with runc)"
trap on_exit EXIT

mkdir -p "$cache"
exec 9>"$cache/.build-image.lock"
flock -n 9 || { log "another build-image.sh holds $cache/.build-image.lock; waiting"; flock 9; }

# ---------------------------------------------------------------------------------------------
# packages
step packages ensure_packages debootstrap buildah runc debian-archive-keyring
runc_bin=$(command -v runc) || die "runc not found after installing it"

# ---------------------------------------------------------------------------------------------
# What to build: the release the Dockerfile's ARG defaults to, the chart's appVersion as the tag.
release=$(sed -n 's/^ARG DEBIAN_RELEASE=\([a-z]*\)$/\1/p' "$root/$dockerfile" | head -n1)
[[ -n $release ]] || die "no 'ARG DEBIAN_RELEASE=<codename>' default in $dockerfile"
tag=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$root/charts/berth/Chart.yaml")
[[ -n $tag ]] || die "no appVersion in charts/berth/Chart.yaml"
image=localhost/berth:$tag

# The host's Debian apt sources as "URI SUITE COMPONENTS..." lines (deb822 *.sources and one-line
# sources.list / *.list; disabled entries and deb-src skipped), with the host's codename replaced by
# $release so a host of another release still gives the right suites.
host_sources() {
  local host_codename files=()
  host_codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null | tr -d '"')
  shopt -s nullglob
  files=(/etc/apt/sources.list.d/*.sources)
  local lists=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list)
  shopt -u nullglob
  {
    if ((${#files[@]})); then
      awk '
        function flush() {
          if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no" && uris != "") {
            n = split(uris, u, " "); m = split(suites, s, " ")
            for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print u[i], s[j], comps
          }
          types = uris = suites = comps = enabled = ""
        }
        /^[ \t]*#/ { next }
        /^[ \t]*$/ { flush(); next }
        /^[A-Za-z-]+:/ {
          key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
          if (key == "types") types = $0; else if (key == "uris") uris = $0
          else if (key == "suites") suites = $0; else if (key == "components") comps = $0
          else if (key == "enabled") enabled = $0
        }
        END { flush() }' "${files[@]}"
    fi
    for f in "${lists[@]}"; do
      [[ -f $f ]] || continue
      awk '$1 == "deb" {
             i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
             line = $(i) " " $(i + 1); for (k = i + 2; k <= NF; k++) line = line " " $k; print line
           }' "$f"
    done
  } | awk -v host="$host_codename" -v rel="$release" '
        { s = $2; if (host != "" && (s == host || index(s, host "-") == 1)) s = rel substr(s, length(host) + 1)
          if (s != rel && index(s, rel "-") != 1) next     # not a Debian suite of this release
          $2 = s; if (!seen[$0]++) print }'
}
mapfile -t sources < <(host_sources)
mirror=
for s in "${sources[@]}"; do
  read -r u su _ <<<"$s"
  if [[ $su == "$release" ]]; then mirror=$u; break; fi
done
[[ -n $mirror ]] || die "the host's apt sources have no entry for suite $release (looked in /etc/apt/sources.list{,.d/*.sources,.d/*.list})"

# apt settings of the host that the rootfs's apt-get must share to reach the same mirror (proxies,
# and Check-Valid-Until/Check-Date for mirrors that serve snapshots).
host_acquire_conf() {
  apt-config dump 2>/dev/null |
    grep -E '^Acquire::(Check-Valid-Until|Check-Date|Retries|https?::Proxy|ftp::Proxy|ForceIPv4|ForceIPv6) ' || true
}

# The deb822 sources file for the rootfs: one stanza per (URI, components), suites joined.
rootfs_sources_file() {
  local keyring=$1
  printf '%s\n' "${sources[@]}" | awk -v key="$keyring" '
    { uri = $1; suite = $2; comps = ""; for (i = 3; i <= NF; i++) comps = comps (comps == "" ? "" : " ") $i
      k = uri SUBSEP comps; if (!(k in suites)) { order[++n] = k; u[k] = uri; c[k] = comps }
      suites[k] = suites[k] (suites[k] == "" ? "" : " ") suite }
    END { for (i = 1; i <= n; i++) { k = order[i]
            if (i > 1) print ""
            print "Types: deb"; print "URIs: " u[k]; print "Suites: " suites[k]
            print "Components: " (c[k] == "" ? "main" : c[k])
            if (key != "") print "Signed-By: " key } }'
}

# ---------------------------------------------------------------------------------------------
# debootstrap: the minbase rootfs tarball, cached per release (and recipe).
rootfs_tar=$cache/rootfs-$release-minbase.tar
make_rootfs() {
  if [[ -s $rootfs_tar && -s $rootfs_tar.sha256 && -s $rootfs_tar.recipe && $(cat "$rootfs_tar.recipe") == "$base_recipe" ]]; then
    step_note="cached $(basename "$rootfs_tar")"
    return 0
  fi
  local dir
  dir=$(mktemp -d /var/tmp/berth-rootfs.XXXXXX)
  # debootstrap mounts /proc and /sys inside the target while it runs; never leave them behind.
  cleanups+=("umount_under '$dir'; rm -rf --one-file-system '$dir'")
  log "debootstrap --variant=minbase $release from $mirror"
  nice -n 10 debootstrap --variant=minbase --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    "$release" "$dir/rootfs" "$mirror" >"$dir/debootstrap.log" 2>&1 || {
    tail -n 30 "$dir/debootstrap.log" >&2
    die "debootstrap failed (log above)"
  }
  umount_under "$dir/rootfs"
  local r=$dir/rootfs keyring=
  [[ -f $r/usr/share/keyrings/debian-archive-keyring.gpg ]] && keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  # apt: the host's sources (deb822, as Debian's images have them) and its Acquire:: settings.
  rm -f "$r/etc/apt/sources.list"
  rootfs_sources_file "$keyring" >"$r/etc/apt/sources.list.d/debian.sources"
  host_acquire_conf >"$r/etc/apt/apt.conf.d/90host-acquire"
  [[ -s $r/etc/apt/apt.conf.d/90host-acquire ]] || rm -f "$r/etc/apt/apt.conf.d/90host-acquire"
  # What Debian's official images (debuerreotype) add for containers: no apt caches or .debs kept
  # after installs, no translations, suggested packages not kept by autoremove.
  cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$r/etc/apt/apt.conf.d/docker-no-languages"
  echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$r/etc/apt/apt.conf.d/docker-autoremove-suggests"
  # Host-specific and volatile files: the runtime provides resolv.conf and hostname.
  : >"$r/etc/resolv.conf"
  : >"$r/etc/hostname"
  rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb \
    "$r"/var/log/bootstrap.log "$r"/debootstrap "$r"/tmp/* "$r"/var/tmp/*
  find "$r/dev" -mindepth 1 -delete 2>/dev/null || true
  log "packing $(du -sh --one-file-system "$r" | cut -f1) rootfs"
  tar --numeric-owner --xattrs --acls -C "$r" -cf "$cache/.rootfs.tmp.$$" .
  sha256sum <"$cache/.rootfs.tmp.$$" | cut -d' ' -f1 >"$rootfs_tar.sha256.tmp"
  mv -f "$cache/.rootfs.tmp.$$" "$rootfs_tar"
  mv -f "$rootfs_tar.sha256.tmp" "$rootfs_tar.sha256"
  echo "$base_recipe" >"$rootfs_tar.recipe"
  umount_under "$dir"
  rm -rf --one-file-system "$dir"
  step_note="$(du -h "$rootfs_tar" | cut -f1) $(basename "$rootfs_tar")"
}
step debootstrap make_rootfs
rootfs_sha=$(cat "$rootfs_tar.sha256")

# ---------------------------------------------------------------------------------------------
# The archive's cache key: the Dockerfile, its .dockerignore, every file the COPY lines take from
# the context (not COPY --from), the tag and the base rootfs.
copy_sources() {
  awk 'toupper($1) == "COPY" && $2 !~ /^--from/ {
         for (i = 2; i < NF; i++) if ($i !~ /^--/) print $i }' "$root/$dockerfile" | sort -u
}
source_key() {
  local paths=() p
  mapfile -t paths < <(copy_sources)
  for p in "${paths[@]}"; do [[ -e $root/$p ]] || die "$dockerfile copies $p, which is not in the checkout"; done
  cd "$root"
  [[ -e $dockerfile.dockerignore ]] && paths+=("$dockerfile.dockerignore")
  {
    echo "recipe $base_recipe rootfs $rootfs_sha tag $tag"
    # contents, and modes (COPY keeps them)
    find "$dockerfile" "${paths[@]%/}" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    find "$dockerfile" "${paths[@]%/}" -printf '%m %p\n' | LC_ALL=C sort
  } | sha256sum | cut -c1-16
}
key=$(source_key)
archive=$cache/berth-$tag-$key.oci.tar
latest=$cache/berth-$tag.oci.tar

if ((force == 0)) && [[ -s $archive ]]; then
  ln -sfn "$(basename "$archive")" "$latest"
  log "archive cached, nothing to build: $archive ($(du -h "$archive" | cut -f1)) for $image"
  summary+=("$(printf '%-12s %8s   %s' import - "skipped (archive cached)")")
  summary+=("$(printf '%-12s %8s   %s' build - "skipped (archive cached)")")
  summary+=("$(printf '%-12s %8s   %s' push - "skipped (archive cached)")")
  log_summary
  echo "$archive"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# import: the rootfs as the two base images, in buildah storage of our own.
B=(buildah --root "$storage" --runroot "$runroot" --storage-driver overlay)
base_full=docker.io/library/debian:$release
base_slim=docker.io/library/debian:$release-slim
base_stamp=$cache/base-$release.stamp
# The official -slim images: dpkg excludes these paths (copyright files kept) and they are removed.
slim_dpkg_cfg='# This is the "slim" variant of the Debian base image.
# Many files which are normally unnecessary in containers are excluded,
# and this configuration file keeps them that way.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*'
# buildah's overlay driver bind-mounts its storage directory (private) on first use; drop that on
# the way out so nothing of the build stays mounted.
cleanups+=("umount_under '$storage'")
image_id() {
  local id
  id=$("${B[@]}" images --no-trunc --format '{{.ID}}' "$1" 2>/dev/null | head -n1) || true
  echo "${id#sha256:}"
}
import_base() {
  local want="$rootfs_sha $base_recipe" full_id slim_id
  if [[ -s $base_stamp ]]; then
    read -r s r fid sid <"$base_stamp" || true
    if [[ "$s $r" == "$want" && -n ${fid:-} && $(image_id "$base_full") == "$fid" && $(image_id "$base_slim") == "$sid" ]]; then
      step_note="cached in buildah storage"
      return 0
    fi
  fi
  full_id=$(commit_base "$base_full" 0)
  slim_id=$(commit_base "$base_slim" 1)
  echo "$want $full_id $slim_id" >"$base_stamp"
  step_note="$base_full, $base_slim"
}
commit_base() {
  local name=$1 slim=$2 ctr mnt
  ctr=$("${B[@]}" from --name "berth-base-$$-$slim" scratch)
  cleanups+=("${B[*]} rm '$ctr' >/dev/null 2>&1")
  mnt=$("${B[@]}" mount "$ctr")
  tar --numeric-owner --xattrs --acls -C "$mnt" -xpf "$rootfs_tar"
  if ((slim)); then
    printf '%s\n' "$slim_dpkg_cfg" >"$mnt/etc/dpkg/dpkg.cfg.d/docker"
    (
      cd "$mnt/usr/share"
      find doc -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
      find doc -mindepth 1 -depth -type d -empty -delete 2>/dev/null || true
      for d in groff info linda lintian/overrides locale man; do
        [[ -d $d ]] && find "$d" -mindepth 1 -delete
      done
    )
  fi
  "${B[@]}" umount "$ctr" >/dev/null
  "${B[@]}" config --os linux --arch amd64 \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd bash "$ctr"
  "${B[@]}" commit --quiet --rm "$ctr" "$name"
}
step import import_base

# ---------------------------------------------------------------------------------------------
# web: the npm cache of scripts/build-web.sh, filled on the host, for the build stage.
build_volumes=()
web_cache() {
  if ! grep -q 'scripts/build-web.sh' "$root/$dockerfile"; then
    step_note="not used by $dockerfile"
    return 0
  fi
  local cache_dir=${BERTH_WEB_CACHE:-/var/cache/berth/web} out
  out=$(mktemp -d /var/tmp/berth-web.XXXXXX)
  cleanups+=("rm -rf '$out'")
  BERTH_WEB_CACHE=$cache_dir "$root/scripts/build-web.sh" "$out/web" >&2
  build_volumes=(--volume "$cache_dir:/var/cache/berth/web:ro")
  step_note="$cache_dir for the build, read-only"
}
step web web_cache

# ---------------------------------------------------------------------------------------------
# build and push
build() {
  local old
  old=$(image_id "$image")
  cd "$root"
  nice -n 10 "${B[@]}" bud --runtime "$runc_bin" --isolation oci --network host --layers \
    --force-rm --pull=never "${build_volumes[@]}" -f "$dockerfile" -t "$image" . >&2
  # The image this tag named before is superseded (its layers shared with the new one stay).
  if [[ -n $old && $old != "$(image_id "$image")" ]]; then "${B[@]}" rmi "$old" >/dev/null 2>&1 || true; fi
  step_note=$image
}
step build build

push() {
  # Older archives of this tag (berth-<tag>-*.oci.tar) are superseded.
  push_archive "$image" "$archive" "$latest"
  step_note="$(du -h "$archive" | cut -f1) $(basename "$archive")"
}
step push push

size=$("${B[@]}" images --format '{{.Size}}' "$image" | head -n1)
log "image $image: $size unpacked, archive $(du -h "$archive" | cut -f1): $archive"
log_summary
echo "$archive"
