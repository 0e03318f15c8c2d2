#include "net/plumbing.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/ip.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/inet.h>
#include <netlink/route/link/inet6.h>
#include <netlink/route/neighbour.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "net/netlink.hpp"

namespace berth::net {
namespace {

using detail::libnl_error;
using detail::NlAddr;
using detail::RtnlAddr;
using detail::RtnlLink;

// Applies `changes` to the interface `name` (which must exist).
Result<void> change_link(nl_sock* socket, const std::string& name, rtnl_link* changes,
                         std::string_view what) {
  auto link = detail::find_link(socket, name);
  if (!link)
    return link.error();
  if (!*link)
    return Error{ErrorKind::kSystem, fmt::format("{}: interface {} vanished", what, name)};
  if (int err = rtnl_link_change(socket, link->get(), changes, 0); err < 0)
    return libnl_error(err, what);
  return {};
}

Result<int> create_bridge(nl_sock* socket, const PlumbingSpec& spec) {
  const std::string what = fmt::format("creating bridge {}", spec.bridge);
  const RtnlLink bridge(rtnl_link_bridge_alloc());
  if (!bridge)
    return Error{ErrorKind::kSystem, what + ": out of memory"};
  rtnl_link_set_name(bridge.get(), spec.bridge.c_str());
  if (int err = rtnl_link_add(socket, bridge.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0)
    return libnl_error(err, what);

  // Set after creation, not in the create request, so the kernel records the MTU as chosen by
  // the user and does not lower it to the smallest port's.
  const RtnlLink changes(rtnl_link_alloc());
  rtnl_link_set_mtu(changes.get(), spec.mtu);
  rtnl_link_inet_set_conf(changes.get(), IPV4_DEVCONF_FORWARDING, 1);
  rtnl_link_inet_set_conf(changes.get(), IPV4_DEVCONF_ROUTE_LOCALNET, 1);
  if (auto done = change_link(socket, spec.bridge, changes.get(),
                              fmt::format("setting MTU {}, forwarding and route_localnet on {}",
                                          spec.mtu, spec.bridge));
      !done)
    return done.error();
  if (spec.gateway6) {
    // No link-local address of the kernel's making (it would come after duplicate address
    // detection, beside fe80::1, and the router advertisements could come from either).
    const RtnlLink no_link_local(rtnl_link_alloc());
    rtnl_link_inet6_set_addr_gen_mode(no_link_local.get(), IN6_ADDR_GEN_MODE_NONE);
    if (auto done = change_link(socket, spec.bridge, no_link_local.get(),
                                fmt::format("setting addr_gen_mode none on {} (is IPv6 disabled "
                                            "in the pod? net.ipv6.conf.*.disable_ipv6)",
                                            spec.bridge));
        !done)
      return done.error();
  }

  auto created = detail::find_link(socket, spec.bridge);
  if (!created)
    return created.error();
  if (!*created)
    return Error{ErrorKind::kSystem, what + ": the bridge vanished"};
  return rtnl_link_get_ifindex(created->get());
}

Result<void> add_gateway_address(nl_sock* socket, const PlumbingSpec& spec, int bridge_index) {
  const std::string what = fmt::format("adding {} to {}", spec.gateway.to_string(), spec.bridge);
  const auto local_bytes = spec.gateway.address().to_bytes();
  const auto broadcast_bytes = spec.gateway.broadcast().to_bytes();
  const NlAddr local(nl_addr_build(AF_INET, local_bytes.data(), local_bytes.size()));
  const NlAddr broadcast(nl_addr_build(AF_INET, broadcast_bytes.data(), broadcast_bytes.size()));
  const RtnlAddr address(rtnl_addr_alloc());
  if (!local || !broadcast || !address)
    return Error{ErrorKind::kSystem, what + ": out of memory"};
  nl_addr_set_prefixlen(local.get(), spec.gateway.prefix_length());
  rtnl_addr_set_ifindex(address.get(), bridge_index);
  rtnl_addr_set_local(address.get(), local.get());
  rtnl_addr_set_broadcast(address.get(), broadcast.get());
  if (int err = rtnl_addr_add(socket, address.get(), 0); err < 0)
    return libnl_error(err, what);
  return {};
}

// An IPv6 address on the bridge, without duplicate address detection (the bridge is the only
// router on its link, and a tentative address could not be bound or used as a source).
Result<void> add_address6(nl_sock* socket, const PlumbingSpec& spec, int bridge_index,
                          const boost::asio::ip::network_v6& network) {
  const std::string what = fmt::format("adding {} to {}", network.to_string(), spec.bridge);
  const auto bytes = network.address().to_bytes();
  const NlAddr local(nl_addr_build(AF_INET6, bytes.data(), bytes.size()));
  const RtnlAddr address(rtnl_addr_alloc());
  if (!local || !address)
    return Error{ErrorKind::kSystem, what + ": out of memory"};
  nl_addr_set_prefixlen(local.get(), network.prefix_length());
  rtnl_addr_set_ifindex(address.get(), bridge_index);
  rtnl_addr_set_local(address.get(), local.get());
  rtnl_addr_set_flags(address.get(), IFA_F_NODAD);
  if (int err = rtnl_addr_add(socket, address.get(), 0); err < 0)
    return libnl_error(err, what + " (is IPv6 disabled in the pod? net.ipv6.conf.*.disable_ipv6)");
  return {};
}

// The bridge's IPv6 gateway address, and fe80::1/64: a link-local address usable at once (the
// kernel's own goes through duplicate address detection first), the source of the router
// advertisements and so the guest's default router, the same on every start.
Result<void> add_gateway_address6(nl_sock* socket, const PlumbingSpec& spec, int bridge_index) {
  if (auto done = add_address6(socket, spec, bridge_index, *spec.gateway6); !done)
    return done;
  return add_address6(socket, spec, bridge_index,
                      boost::asio::ip::make_network_v6(std::string(kBridgeLinkLocal) + "/64"));
}

// /proc/sys/<key with dots as slashes>.
std::filesystem::path sysctl_path(std::string_view key) {
  std::string path(key);
  std::replace(path.begin(), path.end(), '.', '/');
  return std::filesystem::path("/proc/sys") / path;
}

// The integer value of sysctl `key` in the calling thread's network namespace. Errors:
// kUnsupported (no such key: IPv6 off in this kernel or namespace), kSystem.
Result<int> read_sysctl(std::string_view key) {
  const auto path = sysctl_path(key);
  errno = 0;
  std::ifstream in(path);
  int value = 0;
  if (in >> value)
    return value;
  const int error = errno != 0 ? errno : EIO;
  if (error == ENOENT)
    return Error{ErrorKind::kUnsupported,
                 fmt::format("reading {}: there is no such setting; IPv6 is off in this kernel or "
                             "pod, and a dual-stack VM needs it",
                             path.string())};
  return detail::errno_error(error, fmt::format("reading {}", path.string()));
}

// Sets sysctl `key` to `value`. Pods usually mount /proc/sys read-only, hence the advice.
Result<void> write_sysctl(std::string_view key, int value) {
  const auto path = sysctl_path(key);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  const std::string text = std::to_string(value);
  int error = fd < 0 ? errno : 0;
  if (fd >= 0) {
    if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()))
      error = errno;
    ::close(fd);
  }
  if (error == 0)
    return {};
  const std::string what = fmt::format("setting {}={} for the VM's IPv6", key, value);
  if (error == EROFS || error == EACCES || error == EPERM)
    return Error{ErrorKind::kPermission,
                 fmt::format("{}: {}: /proc/sys is read-only in this container; set it in the "
                             "pod instead (securityContext.sysctls: name {}, value \"{}\"; the "
                             "kubelet must allow it with --allowed-unsafe-sysctls) or run the "
                             "container privileged",
                             what, std::strerror(error), key, value)};
  return detail::errno_error(error, what);
}

// IPv6 forwarding for a dual-stack pod, recording in `state` what it changed. accept_ra goes to
// 2 first where it was 1: with forwarding on, 1 would make the kernel ignore the router
// advertisements a plain CNI's pod may have learned its default route from.
Result<void> enable_ipv6_forwarding(const PlumbingSpec& spec, PlumbingState& state) {
  const std::string accept_ra = fmt::format("net.ipv6.conf.{}.accept_ra", spec.pod_interface);
  auto ra = read_sysctl(accept_ra);
  if (!ra)
    return ra.error();
  if (*ra == 1) {
    if (auto done = write_sysctl(accept_ra, 2); !done)
      return done;
    state.pod_accept_ra = *ra;
  }
  constexpr std::string_view kForwarding = "net.ipv6.conf.all.forwarding";
  auto forwarding = read_sysctl(kForwarding);
  if (!forwarding)
    return forwarding.error();
  if (*forwarding != 1) {
    if (auto done = write_sysctl(kForwarding, 1); !done)
      return done;
    state.ipv6_forwarding = *forwarding;
  }
  return {};
}

// Puts back what enable_ipv6_forwarding changed; the first error.
Result<void> restore_ipv6(const PlumbingSpec& spec, const PlumbingState& state) {
  Result<void> first;
  if (state.ipv6_forwarding)
    first = write_sysctl("net.ipv6.conf.all.forwarding", *state.ipv6_forwarding);
  if (state.pod_accept_ra) {
    auto done = write_sysctl(fmt::format("net.ipv6.conf.{}.accept_ra", spec.pod_interface),
                             *state.pod_accept_ra);
    if (!done && first)
      first = std::move(done);
  }
  return first;
}

// Opens /dev/net/tun and attaches it to the tap `name` (created when absent), with the flags QEMU
// uses: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR. The descriptor is close-on-exec.
Result<int> attach_tap(const std::string& name, std::string_view what) {
  const int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    if (error == ENOENT || error == ENXIO || error == ENODEV)
      return Error{ErrorKind::kUnsupported,
                   fmt::format("{}: /dev/net/tun: {}; the container needs the tun device (a "
                               "privileged pod, or a device plugin that provides /dev/net/tun)",
                               what, std::strerror(error))};
    return detail::errno_error(error, fmt::format("{}: opening /dev/net/tun", what));
  }
  ifreq request{};
  std::memcpy(request.ifr_name, name.data(), std::min(name.size(), sizeof request.ifr_name - 1));
  request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (::ioctl(fd, TUNSETIFF, &request) != 0) {
    const int error = errno;
    ::close(fd);
    return detail::errno_error(error, what);
  }
  return fd;
}

// A persistent tap: it outlives this descriptor, and each QEMU gets one of its own (open_tap).
Result<void> create_tap(const std::string& name) {
  const std::string what = fmt::format("creating tap {}", name);
  auto fd = attach_tap(name, what);
  if (!fd)
    return fd.error();
  const int result = ::ioctl(*fd, TUNSETPERSIST, 1);
  const int error = errno;
  ::close(*fd);
  if (result != 0)
    return detail::errno_error(error, what);
  return {};
}

Result<void> plumb(nl_sock* socket, const PlumbingSpec& spec) {
  auto bridge_index = create_bridge(socket, spec);
  if (!bridge_index)
    return bridge_index.error();
  if (auto done = add_gateway_address(socket, spec, *bridge_index); !done)
    return done;
  if (spec.gateway6)
    if (auto done = add_gateway_address6(socket, spec, *bridge_index); !done)
      return done;
  if (auto done = create_tap(spec.tap); !done)
    return done;

  const RtnlLink tap_changes(rtnl_link_alloc());
  rtnl_link_set_mtu(tap_changes.get(), spec.mtu);
  rtnl_link_set_master(tap_changes.get(), *bridge_index);
  rtnl_link_set_flags(tap_changes.get(), IFF_UP);
  if (auto done = change_link(socket, spec.tap, tap_changes.get(),
                              fmt::format("enslaving {} to {} and bringing it up (MTU {})",
                                          spec.tap, spec.bridge, spec.mtu));
      !done)
    return done;

  const RtnlLink bridge_changes(rtnl_link_alloc());
  rtnl_link_set_flags(bridge_changes.get(), IFF_UP);
  if (auto done = change_link(socket, spec.bridge, bridge_changes.get(),
                              fmt::format("bringing {} up", spec.bridge));
      !done)
    return done;

  const RtnlLink pod_changes(rtnl_link_alloc());
  rtnl_link_inet_set_conf(pod_changes.get(), IPV4_DEVCONF_FORWARDING, 1);
  return change_link(socket, spec.pod_interface, pod_changes.get(),
                     fmt::format("turning forwarding on for {}", spec.pod_interface));
}

Result<void> check_spec(const PlumbingSpec& spec) {
  for (auto [name, role] : {std::pair{&spec.pod_interface, "pod"},
                            std::pair{&spec.bridge, "bridge"}, std::pair{&spec.tap, "tap"}})
    if (auto valid = detail::check_interface_name(*name, role); !valid)
      return valid;
  if (spec.bridge == spec.tap || spec.bridge == spec.pod_interface
      || spec.tap == spec.pod_interface)
    return Error{ErrorKind::kInvalidInput,
                 fmt::format("pod interface {}, bridge {} and tap {} need three different names",
                             spec.pod_interface, spec.bridge, spec.tap)};
  if (spec.gateway6 && spec.gateway6->prefix_length() != 64)
    return Error{ErrorKind::kInvalidInput,
                 fmt::format("gateway {} is not in a /64", spec.gateway6->to_string())};
  if (spec.gateway.prefix_length() > 30)
    return Error{ErrorKind::kInvalidInput,
                 fmt::format("gateway {} leaves no room for the VM", spec.gateway.to_string())};
  if (spec.mtu < 576 || spec.mtu > 65535)
    return Error{ErrorKind::kInvalidInput, fmt::format("MTU {} is outside 576-65535", spec.mtu)};
  return {};
}

}  // namespace

Result<PlumbingState> setup_plumbing(const PlumbingSpec& spec) {
  if (auto valid = check_spec(spec); !valid)
    return valid.error();
  if (!detail::has_net_admin())
    return Error{ErrorKind::kPermission,
                 fmt::format("creating {} and {}: the CAP_NET_ADMIN capability is missing; {}",
                             spec.bridge, spec.tap, detail::kNetAdminHint)};
  auto socket = detail::open_route_socket();
  if (!socket)
    return socket.error();

  auto pod = detail::find_link(socket->get(), spec.pod_interface);
  if (!pod)
    return pod.error();
  if (!*pod)
    return Error{ErrorKind::kNoInterface,
                 fmt::format("pod interface {} does not exist in this network namespace",
                             spec.pod_interface)};
  PlumbingState state;
  if (rtnl_link_inet_get_conf(pod->get(), IPV4_DEVCONF_FORWARDING, &state.pod_forwarding) < 0)
    state.pod_forwarding = 0;

  // Leftovers of a crashed run: the kinds are checked before anything is deleted.
  for (auto [name, kind] : {std::pair{&spec.tap, "tun"}, std::pair{&spec.bridge, "bridge"}}) {
    auto existing = detail::find_link(socket->get(), *name);
    if (!existing)
      return existing.error();
    const char* actual = *existing ? rtnl_link_get_type(existing->get()) : nullptr;
    if (*existing && (actual == nullptr || std::string_view(kind) != actual))
      return Error{ErrorKind::kConflict,
                   fmt::format("interface {} exists and is a {}, not the {} Berth creates; "
                               "remove it or choose another name",
                               *name, actual ? actual : "device without a kind", kind)};
  }
  for (auto [name, kind] : {std::pair{&spec.tap, "tun"}, std::pair{&spec.bridge, "bridge"}})
    if (auto removed = detail::delete_link_of_kind(socket->get(), *name, kind); !removed)
      return removed.error();

  auto done = plumb(socket->get(), spec);
  if (done && spec.gateway6)
    done = enable_ipv6_forwarding(spec, state);
  if (!done) {
    (void)teardown_plumbing(spec, state);  // best effort; the first error is the one to report
    return done.error();
  }
  return state;
}

Result<void> teardown_plumbing(const PlumbingSpec& spec, const PlumbingState& state) {
  auto socket = detail::open_route_socket();
  if (!socket)
    return socket.error();
  Result<void> first;
  const auto keep_first = [&first](Result<void> result) {
    if (!result && first)
      first = std::move(result);
  };
  keep_first(detail::delete_link_of_kind(socket->get(), spec.tap, "tun"));
  keep_first(detail::delete_link_of_kind(socket->get(), spec.bridge, "bridge"));

  auto pod = detail::find_link(socket->get(), spec.pod_interface);
  std::uint32_t forwarding = 0;
  if (!pod) {
    keep_first(pod.error());
  } else if (*pod && rtnl_link_inet_get_conf(pod->get(), IPV4_DEVCONF_FORWARDING, &forwarding) >= 0
             && forwarding != state.pod_forwarding) {
    const RtnlLink changes(rtnl_link_alloc());
    rtnl_link_inet_set_conf(changes.get(), IPV4_DEVCONF_FORWARDING, state.pod_forwarding);
    keep_first(change_link(
        socket->get(), spec.pod_interface, changes.get(),
        fmt::format("restoring forwarding={} on {}", state.pod_forwarding, spec.pod_interface)));
  }
  keep_first(restore_ipv6(spec, state));
  return first;
}

Result<int> open_tap(const std::string& name) {
  if (auto valid = detail::check_interface_name(name, "tap"); !valid)
    return valid.error();
  auto socket = detail::open_route_socket();
  if (!socket)
    return socket.error();
  auto link = detail::find_link(socket->get(), name);
  if (!link)
    return link.error();
  const char* kind = *link ? rtnl_link_get_type(link->get()) : nullptr;
  if (kind == nullptr || std::string_view(kind) != "tun")
    return Error{ErrorKind::kNoInterface,
                 fmt::format("opening tap {} for QEMU: there is no tap of that name (the network "
                             "step creates it)",
                             name)};
  return attach_tap(name, fmt::format("opening tap {} for QEMU", name));
}

Result<void> announce_neighbor(const std::string& interface, boost::asio::ip::address_v4 address,
                               const std::array<std::uint8_t, 6>& mac) {
  auto socket = detail::open_route_socket();
  if (!socket)
    return socket.error();
  auto link = detail::find_link(socket->get(), interface);
  if (!link)
    return link.error();
  if (!*link)
    return Error{ErrorKind::kNoInterface,
                 fmt::format("announcing the VM's address: there is no interface {}", interface)};
  struct NeighPut {
    void operator()(rtnl_neigh* neigh) const { rtnl_neigh_put(neigh); }
  };
  const std::unique_ptr<rtnl_neigh, NeighPut> neigh(rtnl_neigh_alloc());
  const auto bytes = address.to_bytes();
  const NlAddr destination(nl_addr_build(AF_INET, bytes.data(), bytes.size()));
  const NlAddr lladdr(nl_addr_build(AF_LLC, mac.data(), mac.size()));
  rtnl_neigh_set_ifindex(neigh.get(), rtnl_link_get_ifindex(link->get()));
  rtnl_neigh_set_dst(neigh.get(), destination.get());
  rtnl_neigh_set_lladdr(neigh.get(), lladdr.get());
  rtnl_neigh_set_state(neigh.get(), NUD_REACHABLE);
  if (int err = rtnl_neigh_add(socket->get(), neigh.get(), NLM_F_CREATE | NLM_F_REPLACE); err < 0)
    return libnl_error(err, fmt::format("announcing {} on {}", address.to_string(), interface));
  return {};
}

}  // namespace berth::net
