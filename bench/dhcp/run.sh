#!/usr/bin/env bash
# Side-by-side benchmark of Berth's DNS forwarder and DHCP server against dnsmasq, in throw-away
# namespaces (bdhcp-bench-*), same topology as the root tests:
#   vm (dnsperf, udhcpc) ── br0 192.168.254.1/30 in pod (the server under test) ── node (upstream)
# The upstream is dnsmasq in `node` answering *.test itself, so the forwarder is what is measured.
# Needs root, dnsperf, dnsmasq, tcpdump, busybox, and a build (berth-dhcpd).
#   BERTH_BUILD_DIR=build-dhcp bench/dhcp/run.sh [seconds-per-throughput-run]
# Env: BENCH_DNS_ONLY=1: only Berth's forwarder and dnsmasq without a cache (for comparing
# builds); BERTH_DHCPD: the berth-dhcpd to run (default: the build's).
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BERTH_BUILD_DIR:-build}
daemon=$(realpath "${BERTH_DHCPD:-$build/bench/berth-dhcpd}")
here=$(realpath bench/dhcp)
seconds=${1:-10}
pod=bdhcp-bench-pod-$$ vm=bdhcp-bench-vm-$$ node=bdhcp-bench-node-$$
work=$(mktemp -d)
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 0.3
  for ns in $pod $vm $node; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

for ns in $pod $vm $node; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n $pod link add br0 type bridge
ip -n $pod addr add 192.168.254.1/30 dev br0
ip -n $pod link set br0 up
ip -n $pod link add tap0 type veth peer name eth0 netns $vm
ip -n $pod link set tap0 master br0 up
ip -n $vm link set eth0 address 52:54:00:12:34:56 up
ip -n $vm addr add 192.168.254.2/30 dev eth0
ip -n $pod link add up0 type veth peer name eth0 netns $node
ip -n $pod addr add 10.77.0.2/24 dev up0
ip -n $pod link set up0 up
ip -n $node addr add 10.77.0.1/24 dev eth0
ip -n $node link set eth0 up

ip netns exec $node dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts --pid-file= \
  --listen-address=10.77.0.1 --bind-interfaces --address=/test/10.1.2.3 --log-facility=- \
  2>"$work/upstream.log" &
pids+=($!)
for i in $(seq 1 20000); do echo "host$i.test A"; done >"$work/queries"
sleep 0.5

rss() { awk '/^VmRSS|^VmHWM/ {printf "%s %s kB  ", $1, $2}' "/proc/$1/status"; echo; }

dns_round() {  # dns_round LABEL COMMAND...: the server runs in pod while dnsperf runs in vm
  local label=$1; shift
  ip netns exec $pod "$@" 2>"$work/$label.log" & local pid=$!
  pids+=($pid)
  sleep 0.7
  ip netns exec $vm dig @192.168.254.1 +short +time=2 +tries=1 warmup.test >/dev/null
  echo "== DNS: $label"
  echo "   idle:       $(rss $pid)"
  ip netns exec $vm dnsperf -s 192.168.254.1 -d "$work/queries" -l "$seconds" -c 4 -q 200 \
    >"$work/$label.perf" 2>&1
  grep -E "Queries (sent|completed|lost)|Queries per second|Average Latency" "$work/$label.perf" |
    sed 's/^ */   /'
  echo "   after load: $(rss $pid)"
  ip netns exec $vm dnsperf -s 192.168.254.1 -d "$work/queries" -l 5 -Q 2000 -v \
    >"$work/$label.lat" 2>&1
  echo "   at 2000 qps: $(python3 "$here/latency.py" "$work/$label.lat")"
  ip netns exec $vm dnsperf -m tcp -s 192.168.254.1 -d "$work/queries" -l 5 -c 4 -q 100 \
    >"$work/$label.tcp" 2>&1
  echo "   over TCP:   $(grep -E "Queries per second" "$work/$label.tcp" | sed 's/^ *//')"
  kill $pid; wait $pid 2>/dev/null || true
  grep -E "^dns:|peak RSS" "$work/$label.log" | sed 's/^/   /' || true
}

dhcp_round() {  # dhcp_round LABEL COMMAND...: 20 udhcpc runs, timed on the wire in vm
  local label=$1; shift
  ip netns exec $pod "$@" 2>"$work/$label.log" & local pid=$!
  pids+=($pid)
  sleep 0.7
  ip netns exec $vm tcpdump -i eth0 -U -w "$work/$label.pcap" 'udp port 67 or udp port 68' \
    2>/dev/null & local dump=$!
  sleep 1
  for i in $(seq 1 20); do
    ip netns exec $vm busybox udhcpc -q -n -f -i eth0 -s /bin/true -t 3 -T 1 >/dev/null 2>&1
  done
  sleep 0.5
  kill $dump; wait $dump 2>/dev/null || true
  echo "== DHCP: $label: $(python3 "$here/dhcp_timing.py" "$work/$label.pcap")   $(rss $pid)"
  kill $pid; wait $pid 2>/dev/null || true
}

dns_round berth "$daemon" --no-dhcp --upstream 10.77.0.1
dns_round dnsmasq-nocache dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts --pid-file= \
  --server=10.77.0.1 --listen-address=192.168.254.1 --bind-interfaces --cache-size=0
[[ ${BENCH_DNS_ONLY:-} == 1 ]] && exit 0
dns_round dnsmasq-cache150 dnsmasq -k --conf-file=/dev/null --no-resolv --no-hosts --pid-file= \
  --server=10.77.0.1 --listen-address=192.168.254.1 --bind-interfaces
dhcp_round berth "$daemon" --no-dns
dhcp_round dnsmasq dnsmasq -k --conf-file=/dev/null --port=0 --interface=br0 --bind-interfaces \
  --pid-file= --dhcp-range=192.168.254.2,static,255.255.255.252 \
  --dhcp-host=52:54:00:12:34:56,192.168.254.2,vm-0 --dhcp-leasefile="$work/leases"
