#!/usr/bin/env bash
# Drive benchmarks (issue 6), printed as a small report:
#  1. Fetch throughput on loopback against curl, both verifying SHA-256, for a 1 GiB image served
#     by test/drive/fault_server.py (sendfile); berth's peak RSS for a 64 MiB and a 1 GiB image
#     (it must not grow with the image).
#  2. Config drive build time: berth's in-process libisofs build and the drive-tool command
#     against genisoimage, for the same files.
# Usage: bench/drive/bench.sh [build dir] (default build-drive; build first with
#        BERTH_BUILD_DIR=build-drive ./scripts/build.sh). Env: RUNS (default 3), SIZE_MIB (1024).
# Needs curl, python3, genisoimage, /usr/bin/time. Writes up to 3x SIZE under a temporary
# directory in /var/tmp (not tmpfs), removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-drive}
tool=$build/test/drive/drive-tool
runs=${RUNS:-3}
size_mib=${SIZE_MIB:-1024}
[[ -x $tool ]] || { echo "no $tool: build first" >&2; exit 1; }

work=$(mktemp -d /var/tmp/berth-drive-bench-XXXXXX)
server_pid=
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/www"

echo "# drive benchmarks on $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "## fetch: ${size_mib} MiB over http://127.0.0.1 (runs: $runs, best shown)"
head -c $((size_mib << 20)) /dev/urandom >"$work/www/image.raw"
head -c $((64 << 20)) /dev/urandom >"$work/www/small.raw"
sha=$(sha256sum "$work/www/image.raw" | cut -d' ' -f1)
small_sha=$(sha256sum "$work/www/small.raw" | cut -d' ' -f1)

/usr/bin/python3 test/drive/fault_server.py --root "$work/www" >"$work/port" &
server_pid=$!
for _ in $(seq 50); do [[ -s $work/port ]] && break; sleep 0.1; done
port=$(cut -d' ' -f2 "$work/port")
url=http://127.0.0.1:$port/files/image.raw

best() { sort -n | head -1; }
mib_s() { awk -v s="$1" -v m="$size_mib" 'BEGIN { printf "%.0f MiB/s", m / s }'; }

# curl_round LABEL PIPELINE: the best time of `runs` runs of the shell pipeline, and the largest
# peak RSS of its biggest process (GNU time's %M: the biggest child it waited for).
curl_round() {
  local label=$1 pipeline=$2 t times=() rsss=()
  for _ in $(seq "$runs"); do
    rm -f "$work/curl.img"
    t=$( { /usr/bin/time -f "%e %M" bash -c "$pipeline"; } 2>&1 | tail -1)
    times+=("${t% *}")
    rsss+=("${t#* }")
  done
  t=$(printf '%s\n' "${times[@]}" | best)
  printf '%-38s %ss  %s  peak RSS %s KiB\n' "$label:" "$t" "$(mib_s "$t")" \
    "$(printf '%s\n' "${rsss[@]}" | sort -n | tail -1)"
}

# curl, then sha256sum of the file (what the seed did, in sequence).
curl_round "curl -o file && sha256sum file" \
  "curl -sS --fail -o '$work/curl.img' '$url' && sha256sum '$work/curl.img' | grep -q $sha"
# curl streamed through sha256sum while writing (like berth: one pass).
curl_round "curl | tee file | sha256sum" \
  "set -o pipefail; curl -sS --fail '$url' | tee '$work/curl.img' | sha256sum | grep -q $sha"
# The same with OpenSSL's SHA-256 (the implementation berth uses; SHA-NI where the CPU has it).
curl_round "curl | tee file | openssl dgst" \
  "set -o pipefail; curl -sS --fail '$url' | tee '$work/curl.img' | openssl dgst -sha256 | grep -q $sha"
rm -f "$work/curl.img"

# berth: fetch, SHA-256 while streaming, sparse write, fsync, rename.
times=()
rss=0
for _ in $(seq "$runs"); do
  rm -rf "$work/cache"
  out=$("$tool" fetch --source "$url" --dir "$work/cache" --target image.raw --sha256 "$sha" 2>/dev/null)
  times+=("$(sed -n 's/^seconds \([0-9.]*\) .*/\1/p' <<<"$out")")
  rss=$(sed -n 's/.*peak_rss_kib \([0-9]*\).*/\1/p' <<<"$out")
done
t=$(printf '%s\n' "${times[@]}" | best)
echo "berth drive-tool fetch (fsync incl.): ${t}s  $(mib_s "$t")  peak RSS ${rss} KiB"
rm -rf "$work/cache"
out=$("$tool" fetch --source "http://127.0.0.1:$port/files/small.raw" --dir "$work/cache" \
  --target small.raw --sha256 "$small_sha" 2>/dev/null)
echo "berth peak RSS for a 64 MiB image:    $(sed -n 's/.*peak_rss_kib \([0-9]*\).*/\1/p' <<<"$out") KiB"
rm -rf "$work/cache" "$work/www"

echo "## config drive: configdrive layout, 3 files (runs of 200)"
mkdir -p "$work/in/openstack/latest"
printf '#cloud-config\nfqdn: vm-0.example.com\nusers:\n  - name: admin\n    ssh_authorized_keys: [ssh-ed25519 AAAAC3Nza]\n' \
  >"$work/in/openstack/latest/user_data"
printf '{"uuid": "093772fe-d6a3-4eea-84bc-5966661a0c3e", "hostname": "vm-0"}\n' \
  >"$work/in/openstack/latest/meta_data.json"
printf '{"links": [{"id": "eth0", "type": "phy"}], "networks": [{"id": "n0", "link": "eth0", "type": "ipv4_dhcp"}], "services": []}\n' \
  >"$work/in/openstack/latest/network_data.json"
out=$("$tool" iso --out "$work/berth.iso" --userdata "$work/in/openstack/latest/user_data" \
  --metadata "$work/in/openstack/latest/meta_data.json" --networkdata "$work/in/openstack/latest/network_data.json" \
  --repeat 200 2>/dev/null)
echo "berth in-process (read, validate, build, atomic write; per build): $(sed -n 's/.*per_build_ms \([0-9.]*\).*/\1/p' <<<"$out") ms"
start=$(date +%s.%N)
for _ in $(seq 200); do
  "$tool" iso --out "$work/berth.iso" --userdata "$work/in/openstack/latest/user_data" \
    --metadata "$work/in/openstack/latest/meta_data.json" --networkdata "$work/in/openstack/latest/network_data.json" >/dev/null 2>&1
done
end=$(date +%s.%N)
awk -v a="$start" -v b="$end" 'BEGIN { printf "berth drive-tool iso process (per build):           %.2f ms\n", (b - a) * 1000 / 200 }'
start=$(date +%s.%N)
for _ in $(seq 200); do
  genisoimage -quiet -o "$work/genisoimage.iso" -V config-2 -J -R "$work/in" 2>/dev/null
done
end=$(date +%s.%N)
awk -v a="$start" -v b="$end" 'BEGIN { printf "genisoimage -J -R process (per build):              %.2f ms\n", (b - a) * 1000 / 200 }'
echo "sizes: berth $(stat -c %s "$work/berth.iso") B, genisoimage $(stat -c %s "$work/genisoimage.iso") B"
