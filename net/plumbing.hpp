#pragma once
// The VM's side of the pod network, through libnl-3 and /dev/net/tun: a bridge holding VM_GW/30,
// a persistent tap enslaved to it for QEMU (berth opens it and QEMU inherits the descriptor:
// `-netdev tap,fd=N`, so QEMU needs neither CAP_NET_ADMIN nor /dev/net/tun),
// both at the pod MTU, and IPv4 forwarding. Forwarding and route_localnet are set per interface
// over netlink (IFLA_INET_CONF), so a read-only /proc/sys does not matter.

#include <array>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "common/error.hpp"

namespace berth::net {

struct PlumbingSpec {
  std::string pod_interface = "eth0";   // gets forwarding=1 (traffic to the VM enters here)
  std::string bridge = "br0";           // gets the gateway address, forwarding, route_localnet
  std::string tap = "tap0";             // QEMU gets a descriptor of it (open_tap)
  boost::asio::ip::network_v4 gateway;  // VM_GW/30
  unsigned mtu = 1500;                  // the pod interface's MTU, for bridge and tap
  // A pod with IPv6: the bridge's IPv6 address in the VM's /64 (<prefix>::1/64) and fe80::1, and
  // IPv6 forwarding (net.ipv6.conf.all.forwarding=1; accept_ra=2 on the pod interface first when it
  // was 1, so a pod that learned its default route from router advertisements keeps it).
  std::optional<boost::asio::ip::network_v6> gateway6;
};

// The bridge's own link-local address beside gateway6 (no duplicate address detection): where
// the router advertisements come from, the guest's IPv6 default router.
inline constexpr const char* kBridgeLinkLocal = "fe80::1";

// What setup_plumbing changed that teardown_plumbing must put back.
struct PlumbingState {
  std::uint32_t pod_forwarding = 0;    // the pod interface's `forwarding` before setup
  std::optional<int> ipv6_forwarding;  // net.ipv6.conf.all.forwarding before setup, if changed
  std::optional<int> pod_accept_ra;    // the pod interface's accept_ra before setup, if changed
};

// Creates the bridge and the tap, addresses, enslaves and brings them up, and turns forwarding on.
// A bridge or tap of the same name left by a crashed run is deleted first. When a step fails,
// what was done is undone. Errors: kPermission (no NET_ADMIN), kNoInterface, kConflict (the name
// is taken by another kind of interface), kInvalid (names), kUnsupported (no /dev/net/tun),
// kSystem.
Result<PlumbingState> setup_plumbing(const PlumbingSpec& spec);

// Deletes the tap and the bridge (when they exist and are a tap and a bridge) and restores the pod
// interface's forwarding setting. Keeps going after an error and returns the first.
Result<void> teardown_plumbing(const PlumbingSpec& spec, const PlumbingState& state);

// Opens a descriptor on the existing tap `name` (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, as QEMU would
// open it), close-on-exec, for QEMU to inherit. The caller closes it. Errors: kInvalid (name),
// kNoInterface (no tap of that name), kPermission (no NET_ADMIN), kUnsupported (no
// /dev/net/tun), kSystem.
Result<int> open_tap(const std::string& name);

// Tells the kernel the VM's MAC for its address on the bridge: a REACHABLE neighbour entry that
// replaces whatever is there, a FAILED one included (dnsmasq does the same when it ACKs). Traffic
// that reached the pod before the guest had its address left such a FAILED entry behind, and the
// first connection after the lease would otherwise wait for the next ARP retry (up to a second).
// Errors: kPermission, kNoInterface, kSystem.
Result<void> announce_neighbor(const std::string& interface, boost::asio::ip::address_v4 address,
                               const std::array<std::uint8_t, 6>& mac);

}  // namespace berth::net
