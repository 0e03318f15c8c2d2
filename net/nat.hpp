#pragma once
// Berth's NAT policy as an nftables table (`table ip berth`): the VM answers on the pod IP for
// every protocol and port except the reserved ones, leaves as the pod IP, and is reachable from
// inside the pod on 127.0.0.1 and the pod IP (kubectl port-forward, sidecars); of the pod's own
// sockets it reaches only DHCP, DNS and ICMP. Pure: no kernel here.
//
// Not in the table: UDP checksum fill (nftables has no such statement). With checksum offload,
// frames to the guest can carry partial UDP checksums that ISC dhclient and udhcpc drop, so the
// DHCP server computes full checksums itself (dhcp/ipv4_udp).

#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ip/address_v6.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "net/ruleset.hpp"

namespace berth::net {

struct ReservedPort {
  std::uint16_t port = 0;
  std::string name;  // shown in the rule comment: "vnc", "health", "control"
};

// The IPv6 side of a dual-stack pod: the VM has the EUI-64 address of its MAC in a /64 private
// prefix, the bridge holds <prefix>::1.
struct NatSpec6 {
  boost::asio::ip::address_v6 pod_ip;  // the pod's global IPv6 address on the pod interface
  boost::asio::ip::address_v6 vm_ip;   // the VM's address; its /64 is the VM's prefix
  boost::asio::ip::address_v6 vm_gw;   // the bridge's address in that /64
};

struct NatSpec {
  std::string table = "berth";
  std::string pod_interface = "eth0";
  // nullopt in an IPv6-only pod: the ip table then keeps only what needs no pod IPv4 (the guest's
  // DHCP, DNS and ICMP to the bridge, the rest of the pod refused, 127.0.0.1 to the VM); nothing
  // is forwarded between the pod interface and the VM over IPv4.
  std::optional<boost::asio::ip::address_v4> pod_ip;
  std::string bridge = "br0";
  boost::asio::ip::address_v4 vm_ip;
  boost::asio::ip::address_v4 vm_gw;
  // TCP ports that stay with the pod on the pod IP, from outside and inside (VNC 5900 unless
  // NO_VNC, the health port).
  std::vector<ReservedPort> reserved_tcp_ports;
  // TCP ports that also stay with the pod for connections from inside it (the control port).
  std::vector<ReservedPort> local_tcp_ports;
  std::optional<NatSpec6> ipv6;  // a dual-stack pod: also `table ip6 <table>`
};

// The table for `spec`:
//   prerouting  pod interface, to the pod IP: reserved TCP ports accepted, the rest DNAT to VM_IP
//   output      to 127.0.0.1 (TCP/UDP/SCTP) or the pod IP (all protocols): DNAT to VM_IP, except
//               the reserved and local TCP ports
//   postrouting VM_IP out of the pod interface: SNAT to the pod IP; 127.0.0.0/8 out of the bridge
//               (the DNATed loopback path): SNAT to VM_GW so the guest can answer
//   forward     policy drop: MSS clamp to the route MTU, established/related, bridge -> pod
//               interface from VM_IP, pod interface -> bridge when DNATed
//   input       from the bridge (the guest to the pod itself): established/related, DHCP (UDP 67),
//               DNS (UDP and TCP 53 to VM_GW) and ICMP echo and errors accepted; everything else
//               rejected (TCP reset, else ICMP port unreachable)
nft::Table build_nat_table(const NatSpec& spec);

// `table ip6 <table>` for spec.ipv6 (which must be set): the same chains for IPv6.
//   prerouting  as for IPv4, to the pod's IPv6 address (ICMPv6 neighbour discovery is untracked
//               by conntrack, so it never reaches a NAT rule and stays with the pod)
//   output      to the pod's IPv6 address: DNAT to the VM's address. Not ::1: the answers could
//               not come back (the kernel routes ::1 only on lo and has no route_localnet for
//               IPv6), so [::1] stays the pod's, and kubectl port-forward, which dials 127.0.0.1
//               first, takes the IPv4 table's path
//   postrouting the VM's whole /64 out of the pod interface: SNAT to the pod's address (a guest's
//               privacy or stable-privacy address leaves as the pod too)
//   forward     as for IPv4 with the /64; ICMPv6 errors of tracked flows (Packet Too Big among
//               them) are `related` and pass
//   input       from the bridge: established/related, neighbour discovery (RS, NS, NA), echo and
//               errors (destination unreachable, packet too big, time exceeded, parameter
//               problem), DHCPv6 (UDP 547), DNS (UDP and TCP 53 to the gateway); the rest rejected
nft::Table build_nat6_table(const NatSpec& spec);

// The tables for `spec`, committed together in one batch: the ip table, and the ip6 one when
// spec.ipv6 is set.
std::vector<nft::Table> build_nat_tables(const NatSpec& spec);

}  // namespace berth::net
