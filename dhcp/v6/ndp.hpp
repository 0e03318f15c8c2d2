#pragma once
// Neighbour Discovery messages a router sends and hears (RFC 4861 §4.1, §4.2): the Router
// Solicitation a guest sends when its interface comes up and the Router Advertisement berth sends
// on the bridge, with the options that give a guest its whole IPv6 configuration: source
// link-layer address, MTU, Prefix Information (§4.6), RDNSS and DNSSL (RFC 8106). The ICMPv6
// message only (from its type byte); the checksum is left 0 for the kernel, which fills it on an
// IPPROTO_ICMPV6 raw socket. Pure: bytes in, values out, no throw, no reads out of bounds.

#include <boost/asio/ip/address_v6.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/mac.hpp"
#include "dhcp/byte_io.hpp"
#include "dhcp/parse_error.hpp"

namespace berth::dhcp::v6 {

inline constexpr std::uint8_t kRouterSolicitation = 133;
inline constexpr std::uint8_t kRouterAdvertisement = 134;

struct RouterSolicitation {
  std::optional<MacAddress> source_link_layer;
  friend bool operator==(const RouterSolicitation&, const RouterSolicitation&) = default;
};

struct PrefixInformation {
  boost::asio::ip::address_v6 prefix;
  std::uint8_t length = 64;
  bool on_link = true;     // L
  bool autonomous = true;  // A: hosts may form SLAAC addresses in it
  std::uint32_t valid_lifetime = 0;
  std::uint32_t preferred_lifetime = 0;
  friend bool operator==(const PrefixInformation&, const PrefixInformation&) = default;
};

struct RouterAdvertisement {
  std::uint8_t hop_limit = 64;
  bool managed = false;               // M: addresses from DHCPv6
  bool other = false;                 // O: other configuration from DHCPv6
  std::uint16_t router_lifetime = 0;  // seconds; 0: not a default router
  std::uint32_t reachable_time = 0;   // ms; 0: unspecified
  std::uint32_t retrans_timer = 0;    // ms; 0: unspecified
  std::optional<MacAddress> source_link_layer;
  std::optional<std::uint32_t> mtu;
  std::vector<PrefixInformation> prefixes;
  std::vector<boost::asio::ip::address_v6> dns_servers;  // RDNSS, one option
  std::uint32_t dns_lifetime = 0;                        // seconds; kept only with servers
  std::vector<std::string> search_domains;               // DNSSL, one option
  std::uint32_t search_lifetime = 0;                     // seconds; kept only with domains
  friend bool operator==(const RouterAdvertisement&, const RouterAdvertisement&) = default;
};

// Errors (RFC 4861 §6.1.1: the whole message is dropped): not type 133 or code 0, shorter than 8
// bytes, an option of length 0 or running past the end. A source link-layer option that is not 6
// bytes of address is ignored (another link type); unknown options are skipped.
ParseResult<RouterSolicitation> parse_router_solicitation(ByteView icmp);

// The message with its options in this order: source link-layer, MTU, prefixes, RDNSS, DNSSL
// (split into several options when longer than one holds: 127 servers, 2040 bytes of names).
// nullopt when a search domain is not a valid name.
std::optional<Bytes> serialize_router_advertisement(const RouterAdvertisement& advert);

// For tests and the fuzz target. Errors as for the solicitation (type 134); RDNSS and DNSSL
// options that are too short or malformed are ignored (RFC 8106 §5.3.1), repeated ones are merged,
// the last lifetime wins; a repeated MTU option keeps the first.
ParseResult<RouterAdvertisement> parse_router_advertisement(ByteView icmp);

// The address SLAAC makes from `mac` in a /64 (RFC 4291 appendix A: the modified EUI-64 interface
// identifier, the universal/local bit flipped): the one the DHCPv6 server hands out, so a guest
// that only does SLAAC and one that asks DHCPv6 end with the same address.
boost::asio::ip::address_v6 eui64_address(const boost::asio::ip::address_v6& prefix,
                                          const MacAddress& mac);

}  // namespace berth::dhcp::v6
