#pragma once
// Pod discovery: what the pod's network namespace looks like before Berth touches it (the pod
// interface's IPv4 address, MTU and default gateway, every IPv4 route, the hostname and the
// resolver settings), and the check that the VM's private /30 fits beside it.

#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "net/resolv_conf.hpp"

namespace berth::net {

struct Route {
  boost::asio::ip::network_v4 destination;             // 0.0.0.0/0 for a default route
  std::optional<boost::asio::ip::address_v4> gateway;  // first next hop's gateway, if any
  std::string interface;                               // first next hop's device, "" if none
  std::uint32_t table = 254;                           // RT_TABLE_MAIN
};

struct Pod {
  std::string interface;                               // "eth0"
  boost::asio::ip::network_v4 address;                 // pod IP and prefix: Calico /32, else /24...
  unsigned mtu = 0;                                    // the pod interface's MTU
  std::optional<boost::asio::ip::address_v4> gateway;  // default route's next hop (169.254.1.1)
  std::vector<Route> routes;                           // every IPv4 route outside the local table
  std::string hostname;                                // gethostname(): the pod name
  ResolvConf resolv_conf;                              // nameservers, search list, ndots
};

struct DiscoveryOptions {
  std::string interface = "eth0";
  std::filesystem::path resolv_conf = "/etc/resolv.conf";
};

// Reads the pod's network over netlink, plus hostname and resolv.conf. Errors: kNoInterface (the
// message lists the interfaces there are), kNoIpv4, kSystem (netlink, resolv.conf unreadable).
// Needs no privilege.
Result<Pod> discover_pod(const DiscoveryOptions& options = {});

// Checks that VM_IP and VM_GW are the two host addresses of one /30 and that this /30 overlaps
// neither the pod's address, its gateway nor any of its routes (routes on `bridge`, left by an
// earlier run of Berth, do not count). Pure. Errors: kInvalid, kOverlap, naming the route.
Result<boost::asio::ip::network_v4> check_vm_subnet(const Pod& pod,
                                                    boost::asio::ip::address_v4 vm_ip,
                                                    boost::asio::ip::address_v4 vm_gw,
                                                    std::string_view bridge = "br0");

// "10.0.0.0/24 via 10.0.0.1 dev eth0", as `ip route` would say it.
std::string to_string(const Route& route);

}  // namespace berth::net
