#pragma once
// Pod discovery: what the pod's network namespace looks like before Berth touches it (the pod
// interface's IPv4 address, MTU and default gateway, every IPv4 route, the hostname and the
// resolver settings), and the check that the VM's private /30 fits beside it.

#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
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

struct Route6 {
  boost::asio::ip::network_v6 destination;             // ::/0 for a default route
  std::optional<boost::asio::ip::address_v6> gateway;  // first next hop's (fe80::... for Calico)
  std::string interface;
  std::uint32_t table = 254;
};

// An IPv6 address on the pod interface as the kernel lists it (IFA_F_* flags).
struct Ipv6AddressInfo {
  boost::asio::ip::network_v6 address;
  std::uint32_t flags = 0;
};

// The pod's IPv6 side, when its interface has a global (or unique local) address.
struct PodIpv6 {
  std::vector<boost::asio::ip::network_v6> addresses;  // usable ones, the pod's own first
  std::optional<boost::asio::ip::address_v6> gateway;  // default route's next hop
  std::vector<Route6> routes;                          // every IPv6 route outside the local table
  const boost::asio::ip::network_v6& address() const { return addresses.front(); }
};

struct Pod {
  std::string interface;  // "eth0"
  // Pod IP and prefix (Calico /32, else /24...); nullopt in an IPv6-only pod.
  std::optional<boost::asio::ip::network_v4> address;
  unsigned mtu = 0;                                    // the pod interface's MTU
  std::optional<boost::asio::ip::address_v4> gateway;  // default route's next hop (169.254.1.1)
  std::vector<Route> routes;                           // every IPv4 route outside the local table
  std::string hostname;                                // gethostname(): the pod name
  ResolvConf resolv_conf;                              // nameservers, search list, ndots
  std::optional<PodIpv6> ipv6;                         // a dual-stack pod
};

struct DiscoveryOptions {
  std::string interface = "eth0";
  std::filesystem::path resolv_conf = "/etc/resolv.conf";
};

// The addresses a pod may be reached at, from what the kernel lists on its interface: not
// link-local, multicast or loopback, not tentative, deprecated, failed DAD nor temporary (privacy)
// ones; permanent ones (what the CNI assigned) before those SLAAC made, otherwise in the kernel's
// order. Pure.
std::vector<boost::asio::ip::network_v6> usable_pod_ipv6(
    const std::vector<Ipv6AddressInfo>& listed);

// Reads the pod's network over netlink, plus hostname and resolv.conf. An IPv6-only pod has no
// `address`. Errors: kNoInterface (the message lists the interfaces there are), kNoIpv4 (neither
// an IPv4 nor a usable IPv6 address), kSystem (netlink, resolv.conf unreadable).
// Needs no privilege.
Result<Pod> discover_pod(const DiscoveryOptions& options = {});

// Checks that VM_IP and VM_GW are the two host addresses of one /30 and that this /30 overlaps
// neither the pod's address, its gateway nor any of its routes (routes on `bridge`, left by an
// earlier run of Berth, do not count). Pure. Errors: kInvalid, kOverlap, naming the route.
Result<boost::asio::ip::network_v4> check_vm_subnet(const Pod& pod,
                                                    boost::asio::ip::address_v4 vm_ip,
                                                    boost::asio::ip::address_v4 vm_gw,
                                                    std::string_view bridge = "br0");

// Checks VM_IP6, the VM's private IPv6 prefix: a /64 (SLAAC needs one) of unicast addresses
// outside link-local, loopback and IPv4-mapped space, with its host bits zero, that overlaps
// neither the pod's IPv6 addresses, its gateway nor any of its IPv6 routes (default routes and
// routes on `bridge`, left by an earlier run, do not count). Pure. Errors: kInvalidInput,
// kOverlap, naming the route.
Result<boost::asio::ip::network_v6> check_vm_prefix6(const Pod& pod,
                                                     boost::asio::ip::network_v6 prefix,
                                                     std::string_view bridge = "br0");

// "10.0.0.0/24 via 10.0.0.1 dev eth0", as `ip route` would say it.
std::string to_string(const Route& route);
// "default via fe80::ecee:eeff:feee:eeee dev eth0", as `ip -6 route` would say it.
std::string to_string(const Route6& route);

}  // namespace berth::net
