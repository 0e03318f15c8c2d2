#include "dhcp/dhcp_packet.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace berth::dhcp {
namespace {

constexpr std::array<std::uint8_t, 4> kMagicCookie = {99, 130, 83, 99};
constexpr std::size_t kCookieOffset = kFixedHeaderSize;
constexpr std::size_t kSnameOffset = 44;
constexpr std::size_t kFileOffset = 108;

boost::asio::ip::address_v4 read_ipv4(ByteReader& in) {
  const auto value = in.u32();
  return boost::asio::ip::address_v4(value.value_or(0));
}

void write_ipv4(Bytes& out, boost::asio::ip::address_v4 address) {
  put_u32(out, address.to_uint());
}

// Reads the options of one area (the options field, `file` or `sname`) into `options`,
// concatenating repeated codes. `base` is the area's offset in the packet, for error offsets.
std::optional<ParseError> read_option_area(ByteView area, std::size_t base, DhcpOptions& options) {
  ByteReader in(area);
  while (!in.at_end()) {
    const std::size_t start = in.offset();
    const std::uint8_t option_code = *in.u8();
    if (option_code == code(Option::kPad))
      continue;
    if (option_code == code(Option::kEnd))
      return std::nullopt;
    const auto length = in.u8();
    if (!length)
      return ParseError{"option length missing", base + start, option_code};
    const auto value = in.bytes(*length);
    if (!value)
      return ParseError{"option runs past the end of its area", base + start, option_code};
    options.append(option_code, *value);
  }
  return std::nullopt;
}

}  // namespace

std::optional<MacAddress> DhcpPacket::ethernet_address() const {
  if (htype != 1 || hlen != 6)
    return std::nullopt;
  MacAddress mac;
  std::copy_n(chaddr.begin(), 6, mac.begin());
  return mac;
}

void DhcpPacket::set_ethernet_address(const MacAddress& mac) {
  htype = 1;
  hlen = 6;
  chaddr.fill(0);
  std::copy(mac.begin(), mac.end(), chaddr.begin());
}

ParseResult<DhcpPacket> parse_dhcp_packet(ByteView payload) {
  if (payload.size() < kCookieOffset + kMagicCookie.size())
    return ParseError{"shorter than the 240-byte DHCP header", payload.size()};
  ByteReader in(payload);
  DhcpPacket packet;
  const std::uint8_t op = *in.u8();
  if (op != 1 && op != 2)
    return ParseError{"op is neither BOOTREQUEST nor BOOTREPLY", 0};
  packet.op = static_cast<BootOp>(op);
  packet.htype = *in.u8();
  packet.hlen = *in.u8();
  if (packet.hlen > packet.chaddr.size())
    return ParseError{"hlen over 16", 2};
  packet.hops = *in.u8();
  packet.xid = *in.u32();
  packet.secs = *in.u16();
  packet.flags = *in.u16();
  packet.ciaddr = read_ipv4(in);
  packet.yiaddr = read_ipv4(in);
  packet.siaddr = read_ipv4(in);
  packet.giaddr = read_ipv4(in);
  const auto copy_field = [&in](auto& field) {
    const auto bytes = in.bytes(field.size());
    std::copy(bytes->begin(), bytes->end(), field.begin());
  };
  copy_field(packet.chaddr);
  copy_field(packet.sname);
  copy_field(packet.file);
  if (!std::equal(kMagicCookie.begin(), kMagicCookie.end(), payload.begin() + kCookieOffset))
    return ParseError{"magic cookie is not 99.130.83.99", kCookieOffset};

  const std::size_t options_offset = kCookieOffset + kMagicCookie.size();
  if (auto error =
          read_option_area(payload.subspan(options_offset), options_offset, packet.options))
    return *error;
  // RFC 2131 §4.1: with option 52, `file` then `sname` hold more options. They are framing, like
  // RFC 3396 splitting: the value keeps the options and empty fields, and drops option 52.
  if (const auto overload = packet.options.u8(Option::kOverload)) {
    if (*overload & 1) {
      if (auto error = read_option_area(packet.file, kFileOffset, packet.options))
        return *error;
      packet.file.fill(0);
    }
    if (*overload & 2) {
      if (auto error = read_option_area(packet.sname, kSnameOffset, packet.options))
        return *error;
      packet.sname.fill(0);
    }
    if (*overload >= 1 && *overload <= 3)
      packet.options.erase(code(Option::kOverload));
  }
  for (const auto& [option_code, value] : packet.options.entries()) {
    if (const auto reason = check_option_value(option_code, value))
      return ParseError{*reason, options_offset, option_code};
  }
  return packet;
}

std::optional<Bytes> serialize_dhcp_packet(const DhcpPacket& packet, std::size_t max_payload) {
  Bytes out;
  out.reserve(kDefaultMaxMessage);
  put_u8(out, static_cast<std::uint8_t>(packet.op));
  put_u8(out, packet.htype);
  put_u8(out, packet.hlen);
  put_u8(out, packet.hops);
  put_u32(out, packet.xid);
  put_u16(out, packet.secs);
  put_u16(out, packet.flags);
  write_ipv4(out, packet.ciaddr);
  write_ipv4(out, packet.yiaddr);
  write_ipv4(out, packet.siaddr);
  write_ipv4(out, packet.giaddr);
  put_bytes(out, packet.chaddr);
  put_bytes(out, packet.sname);
  put_bytes(out, packet.file);
  put_bytes(out, kMagicCookie);
  for (const auto& [option_code, value] : packet.options.entries()) {
    if (option_code == code(Option::kPad) || option_code == code(Option::kEnd))
      continue;
    // RFC 3396: a value over 255 bytes goes out as consecutive instances of the same code.
    std::size_t done = 0;
    do {
      const std::size_t chunk = std::min<std::size_t>(255, value.size() - done);
      put_u8(out, option_code);
      put_u8(out, static_cast<std::uint8_t>(chunk));
      out.insert(out.end(), value.begin() + static_cast<std::ptrdiff_t>(done),
                 value.begin() + static_cast<std::ptrdiff_t>(done + chunk));
      done += chunk;
    } while (done < value.size());
  }
  put_u8(out, code(Option::kEnd));
  if (out.size() < kMinimumPayloadSize)
    out.resize(kMinimumPayloadSize, 0);
  if (out.size() > max_payload)
    return std::nullopt;
  return out;
}

}  // namespace berth::dhcp
