#!/usr/bin/env bash
# Writes a directory exactly the way the kubelet writes a ConfigMap volume (atomic_writer.go):
# the data in a fresh timestamped directory, a `..data` symlink to it swapped in by rename, and one
# symlink per key pointing through `..data`. Used for the first write and for every update.
#   configmap.sh DIR KEY=FILE [KEY=FILE...]     (FILE "-" reads standard input)
set -euo pipefail
dir=${1:?usage: configmap.sh DIR KEY=FILE...}
shift
mkdir -p "$dir"
stamp="..$(date -u +%Y_%m_%d_%H_%M_%S).$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
mkdir "$dir/$stamp"
keys=()
for pair in "$@"; do
  key=${pair%%=*}
  file=${pair#*=}
  if [[ $file == - ]]; then cat >"$dir/$stamp/$key"; else cp "$file" "$dir/$stamp/$key"; fi
  chmod 0644 "$dir/$stamp/$key"
  keys+=("$key")
done
old=$(readlink "$dir/..data" 2>/dev/null || true)
ln -s "$stamp" "$dir/..data_tmp"
mv -T "$dir/..data_tmp" "$dir/..data"   # rename(2): the atomic swap the kubelet does
for key in "${keys[@]}"; do
  [[ -L $dir/$key ]] || ln -s "..data/$key" "$dir/$key"
done
[[ -n $old && $old != "$stamp" ]] && rm -rf "${dir:?}/$old"
exit 0
