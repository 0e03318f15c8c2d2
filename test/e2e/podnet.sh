#!/usr/bin/env bash
# A pod-like network for tests and the demo: a "node" namespace and a "pod" namespace joined by a
# veth, wired the way a CNI wires a pod.
#
#   podnet.sh up NAME [calico|plain|calico6|ipv6only]   creates NAME-node and NAME-pod
#   podnet.sh down NAME                removes both (and whatever berth left inside)
#
# calico (default): the pod's eth0 is 10.77.0.5/32, MTU 1450, `default via 169.254.1.1` on-link,
#   answered by proxy ARP on the node's cali0; the node is 10.77.9.1.
# plain: the pod's eth0 is 10.77.0.5/24, MTU 1500, default via the node at 10.77.0.1.
# calico6: calico, dual-stack: the pod also has fd77::5/128 with `default via
#   fe80::ecee:eeff:feee:eeee` (the node's cali0 has Calico's MAC ee:ee:ee:ee:ee:ee), the node
#   fd77:9::1 and a /128 route to the pod.
# ipv6only: calico6 without the pod's IPv4 address and routes.
# The pod's resolv.conf (ip netns exec bind-mounts /etc/netns/NAME-pod/resolv.conf) names the node
# as its DNS server (10.77.9.1 and/or fd77:9::1) with a Kubernetes-like search list.
set -euo pipefail
action=${1:?usage: podnet.sh up|down NAME [calico|plain|calico6|ipv6only]}
name=${2:?usage: podnet.sh up|down NAME [calico|plain|calico6|ipv6only]}
style=${3:-calico}
node=$name-node
pod=$name-pod

down() {
  ip netns del "$pod" 2>/dev/null || true
  ip netns del "$node" 2>/dev/null || true
  rm -rf "/etc/netns/$pod"
}

case $action in
  down) down ;;
  up)
    down
    ip netns add "$node"
    ip netns add "$pod"
    ip -n "$node" link set lo up
    ip -n "$pod" link set lo up
    ip -n "$node" link add cali0 type veth peer name eth0 netns "$pod"
    ipv6=no
    if [[ $style == calico6 || $style == ipv6only ]]; then
      ipv6=yes
      ip -n "$node" link set cali0 address ee:ee:ee:ee:ee:ee
      ip netns exec "$node" sysctl -qw net.ipv6.conf.cali0.accept_dad=0
      ip netns exec "$pod" sysctl -qw net.ipv6.conf.eth0.accept_dad=0
    fi
    ip -n "$node" link set cali0 mtu 1500 up
    if [[ $style != plain ]]; then
      ip -n "$pod" link set eth0 mtu 1450 up
      ip -n "$node" addr add 10.77.9.1/32 dev lo
      ip -n "$node" link add uplink type veth peer name uplink-peer
      ip -n "$node" link set uplink up
      ip -n "$node" link set uplink-peer up
      ip -n "$node" route add default dev uplink
      ip -n "$node" route add 10.77.0.5/32 dev cali0 src 10.77.9.1
      ip netns exec "$node" sysctl -qw net.ipv4.conf.cali0.proxy_arp=1 \
        net.ipv4.conf.cali0.forwarding=1 net.ipv4.neigh.cali0.proxy_delay=0
      if [[ $style != ipv6only ]]; then
        ip -n "$pod" addr add 10.77.0.5/32 dev eth0
        ip -n "$pod" route add 169.254.1.1 dev eth0 scope link
        ip -n "$pod" route add default via 169.254.1.1 dev eth0
      fi
      node_ip=10.77.9.1
    else
      ip -n "$pod" link set eth0 mtu 1500 up
      ip -n "$node" addr add 10.77.0.1/24 dev cali0
      ip -n "$pod" addr add 10.77.0.5/24 dev eth0
      ip -n "$pod" route add default via 10.77.0.1 dev eth0
      node_ip=10.77.0.1
    fi
    nameservers="nameserver $node_ip"
    if [[ $ipv6 == yes ]]; then
      ip -n "$node" -6 addr add fd77:9::1/128 dev lo
      ip -n "$node" -6 route add fd77::5/128 dev cali0
      ip -n "$node" -6 route add default dev uplink
      ip -n "$pod" -6 addr add fd77::5/128 dev eth0 nodad
      ip -n "$pod" -6 route add default via fe80::ecee:eeff:feee:eeee dev eth0
      if [[ $style == ipv6only ]]; then
        nameservers="nameserver fd77:9::1"
      else
        nameservers="$nameservers"$'\n'"nameserver fd77:9::1"
      fi
    fi
    mkdir -p "/etc/netns/$pod"
    printf 'search default.svc.cluster.local svc.cluster.local cluster.local\n%s\noptions ndots:5\n' \
      "$nameservers" >"/etc/netns/$pod/resolv.conf"
    ;;
  *) echo "podnet.sh: unknown action $action" >&2; exit 2 ;;
esac
