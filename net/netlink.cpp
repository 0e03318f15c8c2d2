#include "net/netlink.hpp"

#include <fmt/format.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace berth::net {

namespace detail {

Error errno_error(int error_number, std::string_view what) {
  if (error_number == EPERM || error_number == EACCES)
    return {ErrorKind::kPermission,
            fmt::format("{}: {}; {}", what, std::strerror(error_number), kNetAdminHint)};
  return {ErrorKind::kSystem, fmt::format("{}: {}", what, std::strerror(error_number))};
}

Error libnl_error(int nl_error, std::string_view what) {
  const int code = nl_error < 0 ? -nl_error : nl_error;
  if (code == NLE_PERM || code == NLE_NOACCESS)
    return {ErrorKind::kPermission,
            fmt::format("{}: {}; {}", what, nl_geterror(code), kNetAdminHint)};
  return {ErrorKind::kSystem, fmt::format("{}: {}", what, nl_geterror(code))};
}

bool has_net_admin() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0)
    return true;  // cannot tell: let the kernel answer the real request
  return (data[CAP_TO_INDEX(CAP_NET_ADMIN)].effective & CAP_TO_MASK(CAP_NET_ADMIN)) != 0;
}

Result<NlSocket> open_route_socket() {
  NlSocket socket(nl_socket_alloc());
  if (!socket)
    return Error{ErrorKind::kSystem, "netlink: cannot allocate a socket (out of memory)"};
  if (int err = nl_connect(socket.get(), NETLINK_ROUTE); err < 0)
    return libnl_error(err, "netlink: opening a NETLINK_ROUTE socket");
  return socket;
}

Result<RtnlLink> find_link(nl_sock* socket, const std::string& name) {
  rtnl_link* link = nullptr;
  const int err = rtnl_link_get_kernel(socket, 0, name.c_str(), &link);
  if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV)
    return RtnlLink{};
  if (err < 0)
    return libnl_error(err, fmt::format("netlink: looking up interface {}", name));
  return RtnlLink(link);
}

Result<void> delete_link_of_kind(nl_sock* socket, const std::string& name, std::string_view kind) {
  auto link = find_link(socket, name);
  if (!link)
    return link.error();
  if (!*link)
    return {};
  const char* actual = rtnl_link_get_type(link->get());
  if (actual == nullptr || kind != actual)
    return Error{ErrorKind::kConflict,
                 fmt::format("interface {} exists and is a {}, not the {} Berth creates; remove it "
                             "or choose another name",
                             name, actual ? actual : "device without a kind", kind)};
  const int err = rtnl_link_delete(socket, link->get());
  if (err < 0 && err != -NLE_OBJ_NOTFOUND && err != -NLE_NODEV)
    return libnl_error(err, fmt::format("netlink: deleting {} {}", kind, name));
  return {};
}

Result<void> check_interface_name(std::string_view name, std::string_view role) {
  const bool bad_char = name.find_first_of("/: \t\n") != std::string_view::npos;
  if (name.empty() || name.size() > 15 || bad_char || name == "." || name == "..")
    return Error{ErrorKind::kInvalidInput,
                 fmt::format("{} interface name \"{}\" is not usable: 1-15 bytes, no '/', ':' or "
                             "whitespace",
                             role, name)};
  return {};
}

}  // namespace detail
}  // namespace berth::net
