#pragma once
// One DHCPv4/BOOTP message (RFC 2131 §2) as a value, and its wire codec. Pure: no sockets, no
// logging; parsing untrusted bytes never throws and never reads out of bounds.

#include <array>
#include <boost/asio/ip/address_v4.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "common/mac.hpp"
#include "dhcp/byte_io.hpp"
#include "dhcp/dhcp_options.hpp"
#include "dhcp/parse_error.hpp"

namespace berth::dhcp {

enum class BootOp : std::uint8_t { kRequest = 1, kReply = 2 };

inline constexpr std::uint16_t kBroadcastFlag = 0x8000;
inline constexpr std::size_t kFixedHeaderSize = 236;     // op .. file
inline constexpr std::size_t kMinimumPayloadSize = 300;  // RFC 1542 §3.1.2 (BOOTP's size)
inline constexpr std::size_t kDefaultMaxMessage = 576;   // IP datagram every client accepts
inline constexpr std::size_t kIpUdpHeaderSize = 28;

struct DhcpPacket {
  BootOp op = BootOp::kRequest;
  std::uint8_t htype = 1;  // Ethernet
  std::uint8_t hlen = 6;
  std::uint8_t hops = 0;
  std::uint32_t xid = 0;
  std::uint16_t secs = 0;
  std::uint16_t flags = 0;
  boost::asio::ip::address_v4 ciaddr;
  boost::asio::ip::address_v4 yiaddr;
  boost::asio::ip::address_v4 siaddr;
  boost::asio::ip::address_v4 giaddr;
  std::array<std::uint8_t, 16> chaddr{};
  std::array<std::uint8_t, 64> sname{};
  std::array<std::uint8_t, 128> file{};
  DhcpOptions options;

  bool broadcast() const { return (flags & kBroadcastFlag) != 0; }
  // The client's Ethernet address, when htype is Ethernet and hlen is 6.
  std::optional<MacAddress> ethernet_address() const;
  void set_ethernet_address(const MacAddress& mac);
  friend bool operator==(const DhcpPacket&, const DhcpPacket&) = default;
};

// Parses a UDP payload. Options repeated in the packet are concatenated (RFC 3396); option 52
// (overload) pulls options from `file` then `sname` (and is then dropped, those fields zeroed);
// each option of a known type must have a valid length. Errors: shorter than 240 bytes, bad
// op/hlen, wrong magic cookie, an option running past its area, an invalid known option.
ParseResult<DhcpPacket> parse_dhcp_packet(ByteView payload);

// Serializes `packet`: options in container order, values over 255 bytes split into consecutive
// instances (RFC 3396), END, then zero padding up to 300 bytes. nullopt when the result would be
// larger than `max_payload` bytes (the caller drops or shortens options).
std::optional<Bytes> serialize_dhcp_packet(const DhcpPacket& packet, std::size_t max_payload);

}  // namespace berth::dhcp
