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
#include <cstdint>
#include <string>
#include <vector>

#include "net/ruleset.hpp"

namespace berth::net {

struct ReservedPort {
  std::uint16_t port = 0;
  std::string name;  // shown in the rule comment: "vnc", "health", "control"
};

struct NatSpec {
  std::string table = "berth";
  std::string pod_interface = "eth0";
  boost::asio::ip::address_v4 pod_ip;
  std::string bridge = "br0";
  boost::asio::ip::address_v4 vm_ip;
  boost::asio::ip::address_v4 vm_gw;
  // TCP ports that stay with the pod on the pod IP, from outside and inside (VNC 5900 unless
  // NO_VNC, the health port).
  std::vector<ReservedPort> reserved_tcp_ports;
  // TCP ports that also stay with the pod for connections from inside it (the control port).
  std::vector<ReservedPort> local_tcp_ports;
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

}  // namespace berth::net
