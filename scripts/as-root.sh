# Sourced by the top-level scripts that need root: as root it does nothing; as another user it
# re-runs the calling script through sudo (keeping the environment), and says what to do when
# there is no sudo. A fresh Debian machine has root and no sudo; a workstation has sudo.
#   berth_as_root /abs/path/of/script "$@"            re-runs through sudo, or exits 1 saying why
#   berth_as_root_or_return /abs/path/of/script "$@"  the same, but returns 1 when there is no sudo
berth_reexec_with_sudo() {
  local script=$1
  shift
  if command -v sudo >/dev/null 2>&1; then
    echo "$(basename "$script"): not root: re-running through sudo" >&2
    exec sudo --preserve-env "$script" "$@"
  fi
  return 1
}
berth_as_root() {
  [[ $(id -u) -eq 0 ]] && return 0
  berth_reexec_with_sudo "$@" && return 0
  echo "$(basename "$1"): needs root (network namespaces, nftables, QEMU) and there is no sudo;" \
       "run it as root" >&2
  exit 1
}
berth_as_root_or_return() {
  [[ $(id -u) -eq 0 ]] && return 0
  berth_reexec_with_sudo "$@" && return 0
  return 1
}
