#pragma once
// The pod's resolver settings, read from resolv.conf: what the DNS forwarder forwards to and what
// DHCP hands the guest (DNS search list). Pure parsing; reading the file is the caller's business.

#include <boost/asio/ip/address.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace berth::net {

struct ResolvConf {
  std::vector<boost::asio::ip::address> nameservers;  // at most 3, as the libc resolver uses
  std::vector<std::string> search;                    // the last search/domain line wins
  unsigned ndots = 1;
};

// Parses resolv.conf text. Unknown lines, malformed addresses and comments are skipped (libc does
// the same), so this never fails.
ResolvConf parse_resolv_conf(std::string_view text);

}  // namespace berth::net
