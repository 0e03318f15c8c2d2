#include "dhcp/ipv4_udp.hpp"

namespace berth::dhcp {
namespace {

constexpr std::uint8_t kProtocolUdp = 17;
constexpr std::size_t kIpHeaderSize = 20;
constexpr std::size_t kUdpHeaderSize = 8;

std::uint32_t add_words(std::uint32_t sum, ByteView data) {
  std::size_t i = 0;
  for (; i + 1 < data.size(); i += 2)
    sum += load_u16(data, i);
  if (i < data.size())
    sum += std::uint32_t{data[i]} << 8;
  return sum;
}

std::uint16_t fold(std::uint32_t sum) {
  while (sum >> 16)
    sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

}  // namespace

std::uint16_t internet_checksum(ByteView data) {
  return fold(add_words(0, data));
}

Bytes build_ipv4_udp(const UdpAddressing& addressing, ByteView payload) {
  const auto udp_length = static_cast<std::uint16_t>(kUdpHeaderSize + payload.size());
  const auto total_length = static_cast<std::uint16_t>(kIpHeaderSize + udp_length);
  Bytes out;
  out.reserve(total_length);
  put_u8(out, 0x45);  // version 4, header length 5 words
  put_u8(out, 0);     // DSCP/ECN
  put_u16(out, total_length);
  put_u16(out, 0);  // identification
  put_u16(out, 0);  // flags, fragment offset
  put_u8(out, 64);  // TTL
  put_u8(out, kProtocolUdp);
  put_u16(out, 0);  // header checksum, below
  put_u32(out, addressing.source.to_uint());
  put_u32(out, addressing.destination.to_uint());
  store_u16(out, 10, internet_checksum(ByteView(out).first(kIpHeaderSize)));

  put_u16(out, addressing.source_port);
  put_u16(out, addressing.destination_port);
  put_u16(out, udp_length);
  put_u16(out, 0);  // checksum, below
  put_bytes(out, payload);

  Bytes pseudo;
  put_u32(pseudo, addressing.source.to_uint());
  put_u32(pseudo, addressing.destination.to_uint());
  put_u8(pseudo, 0);
  put_u8(pseudo, kProtocolUdp);
  put_u16(pseudo, udp_length);
  std::uint16_t checksum =
      fold(add_words(add_words(0, pseudo), ByteView(out).subspan(kIpHeaderSize)));
  if (checksum == 0)
    checksum = 0xFFFF;  // RFC 768: zero means "no checksum"
  store_u16(out, kIpHeaderSize + 6, checksum);
  return out;
}

}  // namespace berth::dhcp
