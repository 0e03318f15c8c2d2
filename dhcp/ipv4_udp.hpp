#pragma once
// IPv4 + UDP headers with real checksums, for DHCP replies sent as raw frames: the guest gets a
// datagram whose UDP checksum is complete whatever the offload settings of the bridge, veth or tap
// (ISC dhclient drops partial checksums), and no ARP is needed for a client without an address.

#include <boost/asio/ip/address_v4.hpp>
#include <cstdint>

#include "dhcp/byte_io.hpp"

namespace berth::dhcp {

struct UdpAddressing {
  boost::asio::ip::address_v4 source;
  std::uint16_t source_port = 0;
  boost::asio::ip::address_v4 destination;
  std::uint16_t destination_port = 0;
};

// The RFC 1071 one's-complement sum of `data`, folded and complemented.
std::uint16_t internet_checksum(ByteView data);

// An IPv4 datagram (TTL 64, no options, DF clear) carrying `payload` in UDP, with the IP header
// checksum and the UDP checksum (over the pseudo-header) filled in.
Bytes build_ipv4_udp(const UdpAddressing& addressing, ByteView payload);

}  // namespace berth::dhcp
