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

ip::address_v6 to_address_v6(nl_addr* address) {
  ip::address_v6::bytes_type bytes{};
  if (address != nullptr && nl_addr_get_family(address) == AF_INET6
      && nl_addr_get_len(address) >= bytes.size())
    std::memcpy(bytes.data(), nl_addr_get_binary_addr(address), bytes.size());
  return ip::address_v6(bytes);
}

// What differs between IPv4 and IPv6 routes.
template <class R>
struct RouteFamily;
template <>
struct RouteFamily<Route> {
  static constexpr int kFamily = AF_INET;
  static ip::address_v4 address(nl_addr* a) { return to_address_v4(a); }
  static ip::network_v4 network(nl_addr* a, unsigned short length) { return {address(a), length}; }
};
template <>
struct RouteFamily<Route6> {
  static constexpr int kFamily = AF_INET6;
  static ip::address_v6 address(nl_addr* a) { return to_address_v6(a); }
  static ip::network_v6 network(nl_addr* a, unsigned short length) { return {address(a), length}; }
};

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

// The first of `routes` that `overlaps` the VM's network, default routes and routes on Berth's
// own `bridge` (left by a crashed run) aside; null when none does.
template <class R, class Overlaps>
const R* overlapping_route(const std::vector<R>& routes, std::string_view bridge,
                           Overlaps overlaps) {
  for (const R& route : routes)
    if (route.destination.prefix_length() != 0 && route.interface != bridge
        && overlaps(route.destination))
      return &route;
  return nullptr;
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

namespace {

template <class R>
std::string route_text(const R& route) {
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

}  // namespace

std::string to_string(const Route& route) {
  return route_text(route);
}

std::string to_string(const Route6& route) {
  return route_text(route);
}

namespace {

// The pod interface's primary IPv4 address and prefix.
// The pod interface's primary IPv4 address; nullopt when it has none (an IPv6-only pod).
Result<std::optional<ip::network_v4>> primary_ipv4(nl_sock* socket, int ifindex) {
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
    return std::optional(ip::network_v4(to_address_v4(rtnl_addr_get_local(address)), prefix));
  }
  return std::optional<ip::network_v4>();
}

// One kernel route as a Route or Route6 (first next hop only), naming its interface through
// `links`.
template <class R>
R to_route(rtnl_route* kernel_route, nl_cache* links) {
  nl_addr* dst = rtnl_route_get_dst(kernel_route);
  R route;
  route.table = rtnl_route_get_table(kernel_route);
  route.destination = RouteFamily<R>::network(
      dst, static_cast<unsigned short>(dst ? nl_addr_get_prefixlen(dst) : 0));
  if (rtnl_route_get_nnexthops(kernel_route) > 0) {
    rtnl_nexthop* hop = rtnl_route_nexthop_n(kernel_route, 0);
    if (nl_addr* gateway = rtnl_route_nh_get_gateway(hop))
      route.gateway = RouteFamily<R>::address(gateway);
    std::array<char, 64> name{};
    if (rtnl_link_i2name(links, rtnl_route_nh_get_ifindex(hop), name.data(), name.size()))
      route.interface = name.data();
  }
  return route;
}

// Every route of R's family outside the local table into `routes`, and `gateway` from the main
// table's default route (one through the pod interface preferred).
template <class R, class Gateway>
Result<void> read_routes(nl_sock* socket, nl_cache* links, const std::string& interface,
                         std::vector<R>& routes, Gateway& gateway) {
  nl_cache* raw = nullptr;
  if (int err = rtnl_route_alloc_cache(socket, RouteFamily<R>::kFamily, 0, &raw); err < 0)
    return detail::libnl_error(err, "netlink: listing routes");
  const detail::NlCache cache(raw);
  std::optional<R> default_route;
  for (nl_object* object = nl_cache_get_first(cache.get()); object;
       object = nl_cache_get_next(object)) {
    auto* kernel_route = reinterpret_cast<rtnl_route*>(object);
    if (rtnl_route_get_table(kernel_route) == RT_TABLE_LOCAL)
      continue;
    R route = to_route<R>(kernel_route, links);
    const bool better_default = !default_route || default_route->interface != interface;
    if (route.table == RT_TABLE_MAIN && route.destination.prefix_length() == 0 && route.gateway
        && better_default)
      default_route = route;
    routes.push_back(std::move(route));
  }
  if (default_route)
    gateway = default_route->gateway;
  return {};
}

// The pod interface's IPv6 addresses as the kernel lists them.
Result<std::vector<Ipv6AddressInfo>> list_ipv6(nl_sock* socket, int ifindex) {
  nl_cache* raw = nullptr;
  if (int err = rtnl_addr_alloc_cache(socket, &raw); err < 0)
    return detail::libnl_error(err, "netlink: listing addresses");
  const detail::NlCache addresses(raw);
  std::vector<Ipv6AddressInfo> listed;
  for (nl_object* object = nl_cache_get_first(addresses.get()); object;
       object = nl_cache_get_next(object)) {
    auto* address = reinterpret_cast<rtnl_addr*>(object);
    if (rtnl_addr_get_family(address) != AF_INET6 || rtnl_addr_get_ifindex(address) != ifindex)
      continue;
    const auto prefix = static_cast<unsigned short>(rtnl_addr_get_prefixlen(address));
    listed.push_back({ip::network_v6(to_address_v6(rtnl_addr_get_local(address)), prefix),
                      rtnl_addr_get_flags(address)});
  }
  return listed;
}

// pod.ipv6 when the pod interface has a usable IPv6 address.
Result<void> read_ipv6(nl_sock* socket, nl_cache* links, int ifindex, Pod& pod) {
  auto listed = list_ipv6(socket, ifindex);
  if (!listed)
    return listed.error();
  PodIpv6 ipv6;
  ipv6.addresses = usable_pod_ipv6(*listed);
  if (ipv6.addresses.empty())
    return {};
  if (auto routes = read_routes(socket, links, pod.interface, ipv6.routes, ipv6.gateway); !routes)
    return routes;
  pod.ipv6 = std::move(ipv6);
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

  auto address = primary_ipv4(socket->get(), rtnl_link_get_ifindex(link.get()));
  if (!address)
    return address.error();
  pod.address = *address;
  if (auto routes = read_routes(socket->get(), links.get(), pod.interface, pod.routes, pod.gateway);
      !routes)
    return routes.error();
  if (auto ipv6 = read_ipv6(socket->get(), links.get(), rtnl_link_get_ifindex(link.get()), pod);
      !ipv6)
    return ipv6.error();
  if (!pod.address && !pod.ipv6)
    return Error{ErrorKind::kNoIpv4,
                 fmt::format("pod interface {} has neither an IPv4 address nor a usable IPv6 one "
                             "(global or unique local, not tentative); is the pod network up?",
                             pod.interface)};

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
  if (pod.address && overlaps(subnet, *pod.address))
    return Error{ErrorKind::kOverlap, fmt::format("{} overlaps the pod address {} on {}; {}", what,
                                                  pod.address->to_string(), pod.interface, advice)};
  if (pod.gateway && contains(subnet, *pod.gateway))
    return Error{ErrorKind::kOverlap, fmt::format("{} contains the pod's gateway {}; {}", what,
                                                  pod.gateway->to_string(), advice)};
  const auto* route = overlapping_route(pod.routes, bridge, [&](const ip::network_v4& destination) {
    return overlaps(subnet, destination);
  });
  if (route)
    return Error{ErrorKind::kOverlap,
                 fmt::format("{} overlaps the pod route {}; {}", what, to_string(*route), advice)};
  return subnet;
}

}  // namespace berth::net

namespace berth::net {
namespace {

bool contains6(const ip::network_v6& network, const ip::address_v6& address) {
  return ip::network_v6(address, network.prefix_length()).canonical() == network.canonical();
}

bool overlaps6(const ip::network_v6& a, const ip::network_v6& b) {
  return contains6(a, b.network()) || contains6(b, a.network());
}

bool unusable(const ip::address_v6& address) {
  return address.is_link_local() || address.is_multicast() || address.is_loopback()
         || address.is_unspecified() || address.is_v4_mapped();
}

}  // namespace

std::vector<ip::network_v6> usable_pod_ipv6(const std::vector<Ipv6AddressInfo>& listed) {
  constexpr std::uint32_t kUnusable =
      IFA_F_TENTATIVE | IFA_F_DEPRECATED | IFA_F_DADFAILED | IFA_F_TEMPORARY;
  std::vector<ip::network_v6> permanent;
  std::vector<ip::network_v6> dynamic;
  for (const Ipv6AddressInfo& info : listed) {
    if (unusable(info.address.address()) || (info.flags & kUnusable) != 0)
      continue;
    ((info.flags & IFA_F_PERMANENT) != 0 ? permanent : dynamic).push_back(info.address);
  }
  permanent.insert(permanent.end(), dynamic.begin(), dynamic.end());
  return permanent;
}

Result<ip::network_v6> check_vm_prefix6(const Pod& pod, ip::network_v6 prefix,
                                        std::string_view bridge) {
  const std::string advice =
      "choose a /64 the pod network does not use (a unique local "
      "fdXX:XXXX:XXXX:XXXX::/64)";
  if (prefix.prefix_length() != 64 || unusable(prefix.address())
      || prefix.canonical().address() != prefix.address())
    return Error{ErrorKind::kInvalidInput,
                 fmt::format("VM_IP6 {} is not a /64 prefix of unicast addresses with its host "
                             "bits zero; {}",
                             prefix.to_string(), advice)};
  const std::string what = fmt::format("VM_IP6 {}", prefix.to_string());
  if (!pod.ipv6)
    return prefix;
  for (const auto& address : pod.ipv6->addresses)
    if (overlaps6(prefix, address))
      return Error{ErrorKind::kOverlap,
                   fmt::format("{} overlaps the pod address {} on {}; {}", what,
                               address.to_string(), pod.interface, advice)};
  if (pod.ipv6->gateway && contains6(prefix, *pod.ipv6->gateway))
    return Error{ErrorKind::kOverlap, fmt::format("{} contains the pod's gateway {}; {}", what,
                                                  pod.ipv6->gateway->to_string(), advice)};
  const auto* route = overlapping_route(
      pod.ipv6->routes, bridge,
      [&](const ip::network_v6& destination) { return overlaps6(prefix, destination); });
  if (route)
    return Error{ErrorKind::kOverlap,
                 fmt::format("{} overlaps the pod route {}; {}", what, to_string(*route), advice)};
  return prefix;
}

}  // namespace berth::net
