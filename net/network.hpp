#pragma once
// The VM's network in one call, for the supervisor: bridge, tap and forwarding (plumbing.hpp), then
// Berth's nftables table (nat.hpp) committed in one batch; and the teardown that removes them.
//
//   auto pod = net::discover_pod();                                    // eth0, MTU, routes, DNS
//   net::check_vm_subnet(*pod, vm_ip, vm_gw);                          // the /30 fits
//   auto network = net::PodNetwork::setup(net::network_spec(*pod, ...));
//   ... QEMU runs ...
//   network->teardown();                                               // after QEMU has exited

#include <boost/asio/ip/address_v4.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "net/nat.hpp"
#include "net/plumbing.hpp"
#include "net/pod.hpp"

namespace berth::net {

struct NetworkSpec {
  std::string pod_interface = "eth0";
  std::optional<boost::asio::ip::address_v4> pod_ip;  // nullopt: an IPv6-only pod
  unsigned mtu = 1500;                                // the pod interface's
  boost::asio::ip::address_v4 vm_ip;
  boost::asio::ip::address_v4 vm_gw;
  std::vector<ReservedPort> reserved_tcp_ports;  // stay with the pod: {5900,"vnc"}, {9250,"health"}
  std::vector<ReservedPort> local_tcp_ports;     // also stay with the pod locally: {9251,"control"}
  std::string bridge = "br0";
  std::string tap = "tap0";
  std::string table = "berth";   // `nft list table ip berth` (and ip6 berth)
  std::optional<NatSpec6> ipv6;  // a dual-stack pod: the bridge gets vm_gw/64, `table ip6` too
};

// A NetworkSpec for the discovered pod: its interface, address and MTU, the given /30 and ports,
// default names.
NetworkSpec network_spec(const Pod& pod, boost::asio::ip::address_v4 vm_ip,
                         boost::asio::ip::address_v4 vm_gw,
                         std::vector<ReservedPort> reserved_tcp_ports,
                         std::vector<ReservedPort> local_tcp_ports);

// The parts of a NetworkSpec each layer takes. Pure.
PlumbingSpec plumbing_spec(const NetworkSpec& spec);
NatSpec nat_spec(const NetworkSpec& spec);

// The VM's network, set up. Move-only; tearing down is explicit (the supervisor does it after
// QEMU has exited, on every exit path), the destructor does not.
class PodNetwork {
 public:
  // Plumbs bridge and tap, turns forwarding on and commits the table (both tables, in one batch,
  // when spec.ipv6 is set). Leftovers of a crashed run
  // (bridge, tap, table of the same names) are replaced. When a step fails, everything done so
  // far and any leftovers are removed, and the error says which step failed: kPermission (no
  // NET_ADMIN), kNoInterface, kConflict, kInvalid, kUnsupported, kSystem.
  static Result<PodNetwork> setup(const NetworkSpec& spec);

  // Deletes the table, the tap and the bridge, and restores the pod interface's forwarding
  // setting. Idempotent; keeps going after an error and returns the first.
  Result<void> teardown();

  const NetworkSpec& spec() const { return spec_; }

  PodNetwork(PodNetwork&&) = default;
  PodNetwork& operator=(PodNetwork&&) = default;
  PodNetwork(const PodNetwork&) = delete;
  PodNetwork& operator=(const PodNetwork&) = delete;
  ~PodNetwork() = default;

 private:
  PodNetwork(NetworkSpec spec, PlumbingState state) : spec_(std::move(spec)), state_(state) {}

  NetworkSpec spec_;
  PlumbingState state_;
};

}  // namespace berth::net
