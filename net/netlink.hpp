#pragma once
// Internal to berth_net: owning handles for libnl-3 objects and the translation of kernel errors
// into berth::Error. Every socket opened here lives in the calling thread's network namespace.

#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>

#include <memory>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace berth::net::detail {

struct NlSocketFree {
  void operator()(nl_sock* socket) const { nl_socket_free(socket); }
};
struct NlCacheFree {
  void operator()(nl_cache* cache) const { nl_cache_free(cache); }
};
struct RtnlLinkPut {
  void operator()(rtnl_link* link) const { rtnl_link_put(link); }
};
struct RtnlAddrPut {
  void operator()(rtnl_addr* address) const { rtnl_addr_put(address); }
};
struct NlAddrPut {
  void operator()(nl_addr* address) const { nl_addr_put(address); }
};

using NlSocket = std::unique_ptr<nl_sock, NlSocketFree>;
using NlCache = std::unique_ptr<nl_cache, NlCacheFree>;
using RtnlLink = std::unique_ptr<rtnl_link, RtnlLinkPut>;
using RtnlAddr = std::unique_ptr<rtnl_addr, RtnlAddrPut>;
using NlAddr = std::unique_ptr<nl_addr, NlAddrPut>;

// The hint appended to every permission error.
inline constexpr std::string_view kNetAdminHint =
    "berth needs the NET_ADMIN capability in the pod (securityContext.capabilities.add: "
    "[NET_ADMIN])";

// "<what>: <strerror>", coded kPermission for EPERM/EACCES (with kNetAdminHint), else kSystem.
Error errno_error(int error_number, std::string_view what);

// The same for a negative libnl error code (-NLE_*).
Error libnl_error(int nl_error, std::string_view what);

// Whether the calling thread has CAP_NET_ADMIN in its effective set.
bool has_net_admin();

// A NETLINK_ROUTE socket, connected; kSystem when the socket cannot be opened.
Result<NlSocket> open_route_socket();

// The link called `name` as the kernel has it now; a null handle when there is none.
Result<RtnlLink> find_link(nl_sock* socket, const std::string& name);

// Deletes the link called `name` when it exists and its kind (IFLA_INFO_KIND: "bridge", "tun")
// is `kind`; nothing when it does not exist; kConflict when it exists with another kind.
Result<void> delete_link_of_kind(nl_sock* socket, const std::string& name, std::string_view kind);

// kInvalid unless `name` is a usable interface name (1-15 bytes, no '/', ':' or whitespace).
Result<void> check_interface_name(std::string_view name, std::string_view role);

}  // namespace berth::net::detail
