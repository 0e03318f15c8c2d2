#!/usr/bin/env bash
# Build the image of the chart's `helm test` pod (chart value tests.image) without a registry: a
# from-scratch OCI image holding Debian's busybox, named localhost/busybox:berth-e2e, left as an OCI
# archive that containerd imports (`ctr -n k8s.io images import ARCHIVE`).
#
#   test/cluster/build-test-image.sh            build (or reuse) the archive; its path is the last
#                                               line of stdout, progress goes to stderr
#   test/cluster/build-test-image.sh --force    rebuild even when the cached archive matches
#
# The test pod runs `sh -c '... nc -z -w 5 HOST PORT ...'` as uid 65534
# (charts/berth/templates/tests/test-connection.yaml). Debian builds busybox's small nc, which has
# no -z, so the image has a `nc` wrapper (below) in PATH. That rules out busybox-static: its ash is
# built with FEATURE_SH_STANDALONE and runs its own nc applet whatever PATH holds. Debian's
# dynamically linked busybox looks commands up in PATH, so the image is:
#   /bin/busybox       from Debian's busybox package
#   /lib/x86_64-linux-gnu/{ld-linux-x86-64.so.2,libc.so.6,libresolv.so.2}, /lib64/ld-linux-x86-64.so.2
#                      from libc6 (what busybox links; glibc 2.36 has the files and dns NSS
#                      modules built in, so /etc/hosts and DNS lookups need nothing more)
#   applet links       every applet of `busybox --list-full` (/bin/sh, /bin/sleep, /bin/true, ...)
#                      as a relative symlink to /bin/busybox
#   /usr/bin/nc        a small sh script instead of the applet link: `nc -z [OPTS] HOST PORT` runs
#                      `busybox nc [OPTS] HOST PORT -e /bin/true` (connect, hand the socket to
#                      `true`, which closes it at once): exit 0 exactly when the connection was
#                      made; -w still bounds the connect. Without -z it runs busybox's nc as is.
#   /etc               passwd/group (root, nobody 65534), nsswitch.conf (hosts: files dns)
#   /tmp               1777; copyright files of both packages under /usr/share/doc
#   config             PATH set, entrypoint empty, cmd ["sh"], no user (the pod sets 65534)
# No RUN step (nothing runs inside the image while building): the tree is assembled in a temporary
# directory, checked with chroot as uid 65534 (sh, PATH finds the wrapper, `nc -z` to an open and
# a closed port), packed with root ownership and fixed mtimes, `buildah add`ed to a scratch
# container and committed with --timestamp 0, so the same packages give the same image.
#
# Packages: the candidate versions of busybox and libc6, fetched with `apt-get download` and
# unpacked, never installed (as test/guest/build-guest.sh does); needs the host's Debian mirror
# on a cold build.
#
# Cached as /var/cache/berth/cluster/busybox-berth-e2e-<key>.oci.tar, <key> a hash of the two
# package versions and this script; busybox-berth-e2e.oci.tar links to the newest. When that
# archive exists nothing else happens (no download, no buildah): ~0.5 s, most of it apt-cache.
# Buildah storage is build-image.sh's private one (/var/cache/berth/buildah/storage, run root
# /run/berth-buildah); the image is removed from it again after the push. Needs root.
set -euo pipefail
shopt -s inherit_errexit

cache=${BERTH_CLUSTER_CACHE:-/var/cache/berth/cluster}
storage=${BERTH_BUILDAH_ROOT:-/var/cache/berth/buildah/storage}
runroot=${BERTH_BUILDAH_RUNROOT:-/run/berth-buildah}
image=localhost/busybox:berth-e2e
packages=(busybox libc6)
multiarch=x86_64-linux-gnu
# What busybox needs from libc6 (checked: the chroot test fails without any of them).
libs=(ld-linux-x86-64.so.2 libc.so.6 libresolv.so.2)

here=$(cd "$(dirname "$0")" && pwd)
LOG_PREFIX=build-test-image
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$here/lib.sh"
parse_build_args "$@"
[[ $(id -u) == 0 ]] || die "needs root (buildah, chroot)"
t0=$(now)
on_failure() { log "FAILED (exit $1)"; }
trap on_exit EXIT

mkdir -p "$cache"
exec 9>"$cache/.build-test-image.lock"
flock -n 9 || { log "another build-test-image.sh holds $cache/.build-test-image.lock; waiting"; flock 9; }

# Candidate versions (apt's lists; no network).
declare -A version
while read -r p v; do version[$p]=$v; done < <(
  apt-cache policy "${packages[@]}" | awk '/^[^ ]/ { sub(/:$/, ""); p = $1 } /^ *Candidate:/ { print p, $2 }')
for p in "${packages[@]}"; do
  [[ -n ${version[$p]:-} && ${version[$p]} != "(none)" ]] || die "apt knows no candidate for $p (apt-get update?)"
done
versions=$(for p in "${packages[@]}"; do printf '%s=%s ' "$p" "${version[$p]}"; done)
versions=${versions% }
key=$({ echo "$versions"; cat "$0"; } | sha256sum | cut -c1-16)
archive=$cache/busybox-berth-e2e-$key.oci.tar
latest=$cache/busybox-berth-e2e.oci.tar

if ((force == 0)) && [[ -s $archive ]]; then
  ln -sfn "$(basename "$archive")" "$latest"
  log "archive cached ($versions), nothing to build: $archive ($(du -h "$archive" | cut -f1)) for $image"
  echo "$archive"
  exit 0
fi

command -v buildah >/dev/null || die "buildah not found (test/cluster/build-image.sh installs it)"
work=$(mktemp -d /var/tmp/berth-test-image.XXXXXX)
cleanups+=("rm -rf --one-file-system '$work'")

# --- packages -------------------------------------------------------------------------------------
t=$(now)
mkdir "$work/deb" "$work/pkg"
specs=()
for p in "${packages[@]}"; do specs+=("$p=${version[$p]}"); done
(cd "$work/deb" && apt-get download -q -o APT::Sandbox::User=root "${specs[@]}" >&2)
for deb in "$work"/deb/*.deb; do
  dpkg -x "$deb" "$work/pkg/$(dpkg-deb -f "$deb" Package)"
done
busybox=$work/pkg/busybox/bin/busybox
[[ -x $busybox ]] || die "the busybox package has no /bin/busybox"
log "downloaded $versions in $(secs "$t" "$(now)")s"

# --- root file system -----------------------------------------------------------------------------
r=$work/rootfs
mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,dev,proc,sys,lib/$multiarch,lib64}
chmod 1777 "$r/tmp"
chmod 700 "$r/root"
install -m 0755 "$busybox" "$r/bin/busybox"
for l in "${libs[@]}"; do
  f=$work/pkg/libc6/lib/$multiarch/$l
  [[ -f $f && ! -L $f ]] || die "libc6 has no /lib/$multiarch/$l"
  install -m 0755 "$f" "$r/lib/$multiarch/$l"
done
ln -s "../lib/$multiarch/ld-linux-x86-64.so.2" "$r/lib64/ld-linux-x86-64.so.2"
for p in "${packages[@]}"; do
  install -D -m 0644 "$work/pkg/$p/usr/share/doc/$p/copyright" "$r/usr/share/doc/$p/copyright"
done
n=0
while IFS= read -r applet; do
  [[ $applet == */* && $applet != bin/busybox ]] || continue
  dir=${applet%/*}
  [[ -d $r/$dir ]] || mkdir -p "$r/$dir"
  # relative links: bin/sh -> ../bin/busybox, usr/bin/env -> ../../bin/busybox
  up=.. rest=$dir
  while [[ $rest == */* ]]; do up+=/.. rest=${rest#*/}; done
  ln -s "$up/bin/busybox" "$r/$applet"
  n=$((n + 1))
done < <(chroot "$r" /bin/busybox --list-full)
for a in bin/sh bin/sleep bin/true usr/bin/nc; do
  [[ -L $r/$a ]] || die "busybox has no $a applet"
done
rm "$r/usr/bin/nc"
cat >"$r/usr/bin/nc" <<'EOF'
#!/bin/sh
# Debian's busybox has the small nc, without -z. `nc -z [OPTS] HOST PORT` runs
# `busybox nc [OPTS] HOST PORT -e /bin/true`: connect, hand the socket to `true`, which closes it.
# Exit 0 exactly when the connection was made; -w N bounds the connect. (build-test-image.sh)
zero=0
for a; do
  shift
  case $a in
    -z) zero=1 ;;
    -z?*) zero=1; set -- "$@" "-${a#-z}" ;;
    *) set -- "$@" "$a" ;;
  esac
done
[ "$zero" = 1 ] && exec /bin/busybox nc "$@" -e /bin/true
exec /bin/busybox nc "$@"
EOF
chmod 0755 "$r/usr/bin/nc"
cat >"$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$r/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
echo 'hosts: files dns' >"$r/etc/nsswitch.conf"
chmod 0644 "$r"/etc/{passwd,group,nsswitch.conf}

# --- check it as the pod uses it: sh -c '... nc -z -w 5 HOST PORT ...' as uid 65534 -------------
# A listener on a loopback port (the chroot's own busybox), then `nc -z` to it and to a port nobody
# listens on. The chroot has none of the host's libraries, so this also proves the tree is
# complete. /dev and /proc are bind-mounted in a private mount namespace (gone when it exits).
t=$(now)
# shellcheck disable=SC2016 # expanded by the chroot's sh
check_script='
  command -v nc
  port=$((40000 + $$ % 20000))
  nc -l -p "$port" -e /bin/true & l=$!
  i=0
  until [ "$i" -ge 50 ] || netstat -ltn | grep -q ":$port "; do sleep 0.1; i=$((i + 1)); done
  nc -z -w 5 127.0.0.1 "$port"; echo "open=$?"
  kill "$l" 2>/dev/null
  nc -z -w 5 127.0.0.1 1 2>&1; echo "closed=$?"
'
# shellcheck disable=SC2016 # expanded by the inner sh
check=$(unshare --mount --propagation private -- sh -c '
  mount --bind /dev "$1/dev" && mount -t proc proc "$1/proc" &&
  exec chroot --userspec=65534:65534 "$1" /bin/sh -c "$2"' check "$r" "$check_script" 2>&1) || true
log "chroot check ($(secs "$t" "$(now)")s): $(tr '\n' ' ' <<<"$check")"
[[ $check == /usr/bin/nc* ]] || die "sh does not find the nc wrapper in PATH: $check"
[[ $check == *open=0* ]] || die "nc -z to a listening port failed: $check"
[[ $check == *closed=1* && $check != *"invalid option"* ]] || die "nc -z to a closed port did not fail as expected: $check"

tar --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -C "$r" -cf "$work/rootfs.tar" .
log "rootfs: busybox, ${#libs[@]} libc6 files, $n applet links, nc wrapper: $(du -h "$work/rootfs.tar" | cut -f1) tar"

# --- image and archive ---------------------------------------------------------------------------
t=$(now)
B=(buildah --root "$storage" --runroot "$runroot" --storage-driver overlay)
# buildah's overlay driver bind-mounts its storage directory on first use; drop that on the way out
# (as build-image.sh does).
cleanups+=("umount_under '$storage'")
ctr=$("${B[@]}" from --name "berth-test-image-$$" scratch)
cleanups+=("${B[*]} rm '$ctr' >/dev/null 2>&1")
"${B[@]}" add --quiet "$ctr" "$work/rootfs.tar" / >/dev/null
"${B[@]}" config --os linux --arch amd64 \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --entrypoint '[]' --cmd '["sh"]' --workingdir / \
  --label "org.opencontainers.image.title=busybox for Berth's helm test" \
  --label "org.opencontainers.image.version=$versions" "$ctr"
"${B[@]}" commit --quiet --rm --timestamp 0 "$ctr" "$image" >/dev/null
cleanups+=("${B[*]} rmi '$image' >/dev/null 2>&1")
push_archive "$image" "$archive" "$latest"
log "image $image ($versions) built and pushed in $(secs "$t" "$(now)")s"
log "archive $(du -h "$archive" | cut -f1): $archive (total $(secs "$t0" "$(now)")s)"
echo "$archive"
