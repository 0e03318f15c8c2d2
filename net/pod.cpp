#include "net/pod.hpp"

#include <fmt/format.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <netlink/route/route.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "net/netlink.hpp"

namespace berth::net {
namespace {

namespace ip = boost::asio::ip;

// The IPv4 address in a libnl address; 0.0.0.0 when it holds fewer than 4 bytes (a default
// route's destination has none).
ip::address_v4 to_address_v4(nl_addr* address) {
  ip::address_v4::bytes_type bytes{};
  if (address != nullptr && nl_addr_get_family(address) == AF_INET
      && nl_addr_get_len(address) >= bytes.size())
    std::memcpy(bytes.data(), nl_addr_get_binary_addr(address), bytes.size());
  return ip::address_v4(bytes);
}

std::string interface_names(nl_cache* links) {
  std::string names;
  for (nl_object* object = nl_cache_get_first(links); object; object = nl_cache_get_next(object)) {
    if (!names.empty())
      names += ", ";
    names += rtnl_link_get_name(reinterpret_cast<rtnl_link*>(object));
  }
  return names.empty() ? "none" : names;
}

bool contains(const ip::network_v4& network, ip::address_v4 address) {
  return (address.to_uint() & network.netmask().to_uint()) == network.network().to_uint();
}

bool overlaps(const ip::network_v4& a, const ip::network_v4& b) {
  return contains(a, b.network()) || contains(b, a.network());
}

Result<std::string> read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in)
    return Error{ErrorKind::kSystem,
                 fmt::format("reading {}: {}", path.string(), std::strerror(errno))};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::string to_string(const Route& route) {
  std::string text =
      route.destination.prefix_length() == 0 ? "default" : route.destination.to_string();
  if (route.gateway)
    text += " via " + route.gateway->to_string();
  if (!route.interface.empty())
    text += " dev " + route.interface;
  if (route.table != RT_TABLE_MAIN)
    text += fmt::format(" table {}", route.table);
  return text;
}

namespace {

// The pod interface's primary IPv4 address and prefix.
Result<ip::network_v4> primary_ipv4(nl_sock* socket, int ifindex, const std::string& interface) {
  nl_cache* raw = nullptr;
  if (int err = rtnl_addr_alloc_cache(socket, &raw); err < 0)
    return detail::libnl_error(err, "netlink: listing addresses");
  const detail::NlCache addresses(raw);
  for (nl_object* object = nl_cache_get_first(addresses.get()); object;
       object = nl_cache_get_next(object)) {
    auto* address = reinterpret_cast<rtnl_addr*>(object);
    if (rtnl_addr_get_family(address) != AF_INET || rtnl_addr_get_ifindex(address) != ifindex
        || (rtnl_addr_get_flags(address) & IFA_F_SECONDARY) != 0)
      continue;
    const auto prefix = static_cast<unsigned short>(rtnl_addr_get_prefixlen(address));
    return ip::network_v4(to_address_v4(rtnl_addr_get_local(address)), prefix);
  }
  return Error{ErrorKind::kNoIpv4,
               fmt::format("pod interface {} has no IPv4 address; Berth needs an IPv4 pod "
                           "network (IPv6-only clusters are not supported)",
                           interface)};
}

// One kernel route as a Route (first next hop only), naming its interface through `links`.
Route to_route(rtnl_route* kernel_route, nl_cache* links) {
  nl_addr* dst = rtnl_route_get_dst(kernel_route);
  Route route;
  route.table = rtnl_route_get_table(kernel_route);
  route.destination = ip::network_v4(
      to_address_v4(dst), static_cast<unsigned short>(dst ? nl_addr_get_prefixlen(dst) : 0));
  if (rtnl_route_get_nnexthops(kernel_route) > 0) {
    rtnl_nexthop* hop = rtnl_route_nexthop_n(kernel_route, 0);
    if (nl_addr* gateway = rtnl_route_nh_get_gateway(hop))
      route.gateway = to_address_v4(gateway);
    std::array<char, 64> name{};
    if (rtnl_link_i2name(links, rtnl_route_nh_get_ifindex(hop), name.data(), name.size()))
      route.interface = name.data();
  }
  return route;
}

// Every IPv4 route outside the local table into pod.routes, and pod.gateway from the main table's
// default route (one through the pod interface preferred).
Result<void> read_routes(nl_sock* socket, nl_cache* links, Pod& pod) {
  nl_cache* raw = nullptr;
  if (int err = rtnl_route_alloc_cache(socket, AF_INET, 0, &raw); err < 0)
    return detail::libnl_error(err, "netlink: listing routes");
  const detail::NlCache routes(raw);
  std::optional<Route> default_route;
  for (nl_object* object = nl_cache_get_first(routes.get()); object;
       object = nl_cache_get_next(object)) {
    auto* kernel_route = reinterpret_cast<rtnl_route*>(object);
    if (rtnl_route_get_table(kernel_route) == RT_TABLE_LOCAL)
      continue;
    Route route = to_route(kernel_route, links);
    const bool better_default = !default_route || default_route->interface != pod.interface;
    if (route.table == RT_TABLE_MAIN && route.destination.prefix_length() == 0 && route.gateway
        && better_default)
      default_route = route;
    pod.routes.push_back(std::move(route));
  }
  if (default_route)
    pod.gateway = default_route->gateway;
  return {};
}

}  // namespace

Result<Pod> discover_pod(const DiscoveryOptions& options) {
  auto socket = detail::open_route_socket();
  if (!socket)
    return socket.error();

  nl_cache* raw = nullptr;
  if (int err = rtnl_link_alloc_cache(socket->get(), AF_UNSPEC, &raw); err < 0)
    return detail::libnl_error(err, "netlink: listing interfaces");
  const detail::NlCache links(raw);

  Pod pod;
  pod.interface = options.interface;
  const detail::RtnlLink link(rtnl_link_get_by_name(links.get(), options.interface.c_str()));
  if (!link)
    return Error{ErrorKind::kNoInterface,
                 fmt::format("pod interface {} does not exist in this network namespace "
                             "(interfaces: {}); is this a pod network?",
                             options.interface, interface_names(links.get()))};
  pod.mtu = rtnl_link_get_mtu(link.get());

  auto address = primary_ipv4(socket->get(), rtnl_link_get_ifindex(link.get()), pod.interface);
  if (!address)
    return address.error();
  pod.address = *address;
  if (auto routes = read_routes(socket->get(), links.get(), pod); !routes)
    return routes.error();

  std::array<char, 256> hostname{};
  if (::gethostname(hostname.data(), hostname.size() - 1) != 0)
    return detail::errno_error(errno, "gethostname");
  pod.hostname = hostname.data();

  auto resolv = read_text(options.resolv_conf);
  if (!resolv)
    return resolv.error();
  pod.resolv_conf = parse_resolv_conf(*resolv);
  return pod;
}

Result<ip::network_v4> check_vm_subnet(const Pod& pod, ip::address_v4 vm_ip, ip::address_v4 vm_gw,
                                       std::string_view bridge) {
  const ip::network_v4 subnet = ip::network_v4(vm_gw, 30).canonical();
  const auto hosts = subnet.hosts();
  const bool hosts_of_one_30 = vm_ip != vm_gw && contains(subnet, vm_ip)
                               && hosts.find(vm_ip) != hosts.end()
                               && hosts.find(vm_gw) != hosts.end();
  if (!hosts_of_one_30)
    return Error{ErrorKind::kInvalidInput,
                 fmt::format("VM_IP {} and VM_GW {} are not the two host addresses of one /30 "
                             "(for example 192.168.254.2 and 192.168.254.1)",
                             vm_ip.to_string(), vm_gw.to_string())};
  const std::string what = fmt::format("the VM subnet {} (VM_IP {}, VM_GW {})", subnet.to_string(),
                                       vm_ip.to_string(), vm_gw.to_string());
  const std::string advice = "choose VM_IP and VM_GW in a /30 the pod network does not use";
  if (overlaps(subnet, pod.address))
    return Error{ErrorKind::kOverlap, fmt::format("{} overlaps the pod address {} on {}; {}", what,
                                                  pod.address.to_string(), pod.interface, advice)};
  if (pod.gateway && contains(subnet, *pod.gateway))
    return Error{ErrorKind::kOverlap, fmt::format("{} contains the pod's gateway {}; {}", what,
                                                  pod.gateway->to_string(), advice)};
  for (const Route& route : pod.routes) {
    if (route.destination.prefix_length() == 0 || route.interface == bridge)
      continue;
    if (overlaps(subnet, route.destination))
      return Error{ErrorKind::kOverlap,
                   fmt::format("{} overlaps the pod route {}; {}", what, to_string(route), advice)};
  }
  return subnet;
}

}  // namespace berth::net
