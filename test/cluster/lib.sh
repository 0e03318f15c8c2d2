# shellcheck shell=bash
# Helpers shared by the scripts of test/cluster/ (cluster.sh takes only log, die, now, secs).
# Not run on its own: a script sets LOG_PREFIX (and STEP_FORMAT if it likes) and sources it,
#   LOG_PREFIX=build-image
#   . "$here/lib.sh"
# then installs the EXIT trap itself (`trap on_exit EXIT`) where it wants cleanups to begin.
#
#   LOG_PREFIX   every log line starts with "$LOG_PREFIX: " (stderr)
#   STEP_FORMAT  printf format of a summary line from its step name, seconds and note
#   on_failure   a function the script may define: on_exit calls it with the exit status, after
#                the cleanups, when the script fails

: "${LOG_PREFIX:?set LOG_PREFIX before sourcing lib.sh}"
STEP_FORMAT=${STEP_FORMAT:-'%-12s %8ss  %s'}

log() { printf '%s\n' "$LOG_PREFIX: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# log_lines: each line of stdin as an indented log line ("$LOG_PREFIX:   LINE").
log_lines() {
  local l
  while IFS= read -r l || [[ -n $l ]]; do log "  $l"; done
}

# parse_build_args ARGS...: the options of the image builders. --force sets force=1; -h/--help
# prints the script's header comment and exits 0; anything else exits 2.
# shellcheck disable=SC2034 # force is the caller's
parse_build_args() {
  local arg
  force=0
  for arg in "$@"; do
    case $arg in
      --force) force=1 ;;
      -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
      *) log "unknown argument: $arg"; exit 2 ;;
    esac
  done
}

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Steps: `step NAME WORDS...` runs the command (errexit applies inside it), logs its start and
# duration and records a line for the summary; the command may set step_note to say what it did.
summary=()
step_note=
current_step=
step_t0=
step() {
  current_step=$1
  shift
  log "[$current_step] start"
  step_t0=$(now)
  "$@"
  local d
  d=$(secs "$step_t0" "$(now)")
  log "[$current_step] done in ${d}s${step_note:+ ($step_note)}"
  # shellcheck disable=SC2059 # the format is the script's STEP_FORMAT
  summary+=("$(printf "$STEP_FORMAT" "$current_step" "$d" "$step_note")")
  step_note=
  current_step=
}
# log_summary: the summary lines, indented.
log_summary() { printf '%s\n' "${summary[@]}" | log_lines; }

# Cleanup commands (strings for eval), run by on_exit, the last registered first.
cleanups=()
on_exit() {
  local rc=$? i
  if ((rc != 0)) && [[ -n $current_step ]]; then
    log "[$current_step] FAILED after $(secs "$step_t0" "$(now)")s (exit $rc)"
  fi
  for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do eval "${cleanups[i]}" || true; done
  if ((rc != 0)) && declare -F on_failure >/dev/null; then on_failure "$rc"; fi
}

# ensure_packages PKG...: apt-get install those of the Debian packages that are not installed (a
# step command: it sets step_note).
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    step_note="all installed, apt skipped"
    return 0
  fi
  log "installing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  step_note="installed ${missing[*]}"
}

# umount_under DIR: unmount everything mounted at or below DIR, deepest first.
umount_under() {
  local m
  findmnt -rn -o TARGET | awk -v d="$1" 'index($0, d) == 1' | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" || true
  done
}

# push_archive IMAGE ARCHIVE LATEST: `buildah push` IMAGE (the buildah command line is "${B[@]}")
# into the OCI archive ARCHIVE by way of a temporary file next to it, point the link LATEST
# (DIR/NAME.oci.tar) at it and delete the older archives DIR/NAME-*.oci.tar.
push_archive() {
  local image=$1 archive=$2 latest=$3 dir name tmp
  dir=$(dirname "$latest")
  name=$(basename "$latest" .oci.tar)
  tmp=$dir/.$name.oci.tar.tmp.$$
  rm -f "$tmp"
  cleanups+=("rm -f '$tmp'")
  # oci-archive:PATH:REFERENCE stores REFERENCE as the manifest's org.opencontainers.image.ref.name;
  # a full reference ("localhost/berth:0.1.0") is what `ctr images import` names the image.
  "${B[@]}" push --quiet "$image" "oci-archive:$tmp:$image" >&2
  mv -f "$tmp" "$archive"
  ln -sfn "$(basename "$archive")" "$latest"
  find "$dir" -maxdepth 1 -name "$name-*.oci.tar" ! -name "$(basename "$archive")" -delete
}
