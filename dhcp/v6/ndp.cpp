#include "dhcp/v6/ndp.hpp"

#include <algorithm>
#include <span>

#include "dhcp/v6/dhcpv6_message.hpp"

namespace berth::dhcp::v6 {
namespace {

using boost::asio::ip::address_v6;

constexpr std::uint8_t kOptionSourceLinkLayer = 1;
constexpr std::uint8_t kOptionPrefixInformation = 3;
constexpr std::uint8_t kOptionMtu = 5;
constexpr std::uint8_t kOptionRdnss = 25;  // RFC 8106
constexpr std::uint8_t kOptionDnssl = 31;  // RFC 8106
constexpr std::size_t kMaxOptionUnits = 255;
// (255 * 8 - 8) / 16: the addresses one RDNSS option holds.
constexpr std::size_t kMaxRdnssAddresses = 127;

constexpr std::uint8_t kFlagManaged = 0x80;
constexpr std::uint8_t kFlagOther = 0x40;
constexpr std::uint8_t kFlagOnLink = 0x80;
constexpr std::uint8_t kFlagAutonomous = 0x40;

constexpr std::size_t kSolicitationHeader = 8;
constexpr std::size_t kAdvertisementHeader = 16;

struct RawOption {
  std::uint8_t type;
  ByteView body;  // after type and length
};

// Splits an option area into options; an error drops the whole message (§6.1).
ParseResult<std::vector<RawOption>> split_options(ByteView icmp, std::size_t start) {
  std::vector<RawOption> options;
  ByteReader reader(icmp, start);
  while (!reader.at_end()) {
    const std::size_t at = reader.offset();
    const auto type = reader.u8();
    const auto units = reader.u8();
    if (!type || !units)
      return ParseError{"truncated NDP option", at};
    if (*units == 0)
      return ParseError{"NDP option of length 0", at};
    const auto body = reader.bytes(std::size_t{*units} * 8 - 2);
    if (!body)
      return ParseError{"NDP option runs past the end", at};
    options.push_back({*type, *body});
  }
  return options;
}

std::optional<MacAddress> link_layer_address(ByteView body) {
  if (body.size() != 6)
    return std::nullopt;
  MacAddress mac{};
  std::copy(body.begin(), body.end(), mac.begin());
  return mac;
}

address_v6 load_address(ByteView data) {
  address_v6::bytes_type bytes{};
  std::copy_n(data.begin(), bytes.size(), bytes.begin());
  return address_v6(bytes);
}

// Appends type, length and body padded with zeros to a multiple of 8; false when too long.
bool put_option(Bytes& out, std::uint8_t type, const Bytes& body) {
  const std::size_t units = (body.size() + 2 + 7) / 8;
  if (units > kMaxOptionUnits)
    return false;
  put_u8(out, type);
  put_u8(out, static_cast<std::uint8_t>(units));
  put_bytes(out, body);
  out.resize(out.size() + units * 8 - 2 - body.size(), 0);
  return true;
}

Bytes prefix_body(const PrefixInformation& prefix) {
  Bytes body;
  put_u8(body, prefix.length);
  put_u8(body, static_cast<std::uint8_t>((prefix.on_link ? kFlagOnLink : 0)
                                         | (prefix.autonomous ? kFlagAutonomous : 0)));
  put_u32(body, prefix.valid_lifetime);
  put_u32(body, prefix.preferred_lifetime);
  put_u32(body, 0);
  const auto bytes = prefix.prefix.to_bytes();
  body.insert(body.end(), bytes.begin(), bytes.end());
  return body;
}

std::optional<PrefixInformation> read_prefix(ByteView body) {
  if (body.size() != 30 || body[0] > 128)
    return std::nullopt;
  ByteReader reader(body, 2);
  PrefixInformation prefix;
  prefix.length = body[0];
  prefix.on_link = (body[1] & kFlagOnLink) != 0;
  prefix.autonomous = (body[1] & kFlagAutonomous) != 0;
  prefix.valid_lifetime = *reader.u32();
  prefix.preferred_lifetime = *reader.u32();
  prefix.prefix = load_address(body.subspan(14));
  return prefix;
}

void read_rdnss(ByteView body, RouterAdvertisement& advert) {
  // RFC 8106 §5.1: length 3 or more and odd, so the addresses fill the rest.
  if (body.size() < 6 + 16 || (body.size() - 6) % 16 != 0)
    return;
  advert.dns_lifetime = ByteReader(body, 2).u32().value_or(0);
  for (std::size_t offset = 6; offset < body.size(); offset += 16)
    advert.dns_servers.push_back(load_address(body.subspan(offset)));
}

// Where the names of a DNSSL option end and its zero padding starts (a zero byte where a name
// would start), or nullopt when a label runs past the end.
std::optional<std::size_t> names_end(ByteView names) {
  std::size_t pos = 0;
  bool name_started = false;
  while (pos < names.size()) {
    const std::uint8_t length = names[pos];
    if (length == 0 && !name_started)
      return pos;
    name_started = length != 0;
    pos += 1 + std::size_t{length};
  }
  return pos == names.size() ? std::optional<std::size_t>(pos) : std::nullopt;
}

void read_dnssl(ByteView body, RouterAdvertisement& advert) {
  if (body.size() < 6)
    return;
  const ByteView names = body.subspan(6);
  const auto end = names_end(names);
  if (!end || *end == 0
      || std::any_of(names.begin() + static_cast<std::ptrdiff_t>(*end), names.end(),
                     [](std::uint8_t byte) { return byte != 0; }))
    return;
  const auto decoded = decode_domain_list(names.first(*end));
  if (!decoded)
    return;
  advert.search_lifetime = ByteReader(body, 2).u32().value_or(0);
  advert.search_domains.insert(advert.search_domains.end(), decoded->begin(), decoded->end());
}

}  // namespace

ParseResult<RouterSolicitation> parse_router_solicitation(ByteView icmp) {
  if (icmp.size() < kSolicitationHeader)
    return ParseError{"shorter than a router solicitation", icmp.size()};
  if (icmp[0] != kRouterSolicitation || icmp[1] != 0)
    return ParseError{"not a router solicitation", 0};
  const auto options = split_options(icmp, kSolicitationHeader);
  if (!options)
    return options.error();
  RouterSolicitation solicitation;
  for (const auto& option : *options)
    if (option.type == kOptionSourceLinkLayer && !solicitation.source_link_layer)
      solicitation.source_link_layer = link_layer_address(option.body);
  return solicitation;
}

std::optional<Bytes> serialize_router_advertisement(const RouterAdvertisement& advert) {
  Bytes out;
  put_u8(out, kRouterAdvertisement);
  put_u8(out, 0);
  put_u16(out, 0);  // checksum: the kernel's
  put_u8(out, advert.hop_limit);
  put_u8(out, static_cast<std::uint8_t>((advert.managed ? kFlagManaged : 0)
                                        | (advert.other ? kFlagOther : 0)));
  put_u16(out, advert.router_lifetime);
  put_u32(out, advert.reachable_time);
  put_u32(out, advert.retrans_timer);
  if (advert.source_link_layer)
    put_option(out, kOptionSourceLinkLayer,
               Bytes(advert.source_link_layer->begin(), advert.source_link_layer->end()));
  if (advert.mtu) {
    Bytes body;
    put_u16(body, 0);
    put_u32(body, *advert.mtu);
    put_option(out, kOptionMtu, body);
  }
  for (const auto& prefix : advert.prefixes)
    put_option(out, kOptionPrefixInformation, prefix_body(prefix));
  // Lists longer than one option holds go into several (a parser merges them again).
  for (std::size_t first = 0; first < advert.dns_servers.size(); first += kMaxRdnssAddresses) {
    const auto chunk =
        std::span(advert.dns_servers)
            .subspan(first, std::min(kMaxRdnssAddresses, advert.dns_servers.size() - first));
    Bytes body;
    put_u16(body, 0);
    put_u32(body, advert.dns_lifetime);
    put_bytes(body, encode_addresses(chunk));
    put_option(out, kOptionRdnss, body);
  }
  Bytes body;
  for (const auto& domain : advert.search_domains) {
    const std::string one[] = {domain};
    const auto name = encode_domain_list(one);
    if (!name)
      return std::nullopt;
    if (!body.empty() && body.size() + name->size() + 2 > kMaxOptionUnits * 8) {
      put_option(out, kOptionDnssl, body);
      body.clear();
    }
    if (body.empty()) {
      put_u16(body, 0);
      put_u32(body, advert.search_lifetime);
    }
    put_bytes(body, *name);
  }
  if (!body.empty())
    put_option(out, kOptionDnssl, body);
  return out;
}

ParseResult<RouterAdvertisement> parse_router_advertisement(ByteView icmp) {
  if (icmp.size() < kAdvertisementHeader)
    return ParseError{"shorter than a router advertisement", icmp.size()};
  if (icmp[0] != kRouterAdvertisement || icmp[1] != 0)
    return ParseError{"not a router advertisement", 0};
  const auto options = split_options(icmp, kAdvertisementHeader);
  if (!options)
    return options.error();
  RouterAdvertisement advert;
  ByteReader header(icmp, 4);
  advert.hop_limit = *header.u8();
  const std::uint8_t flags = *header.u8();
  advert.managed = (flags & kFlagManaged) != 0;
  advert.other = (flags & kFlagOther) != 0;
  advert.router_lifetime = *header.u16();
  advert.reachable_time = *header.u32();
  advert.retrans_timer = *header.u32();
  for (const auto& option : *options) {
    switch (option.type) {
      case kOptionSourceLinkLayer:
        if (!advert.source_link_layer)
          advert.source_link_layer = link_layer_address(option.body);
        break;
      case kOptionMtu:
        if (!advert.mtu && option.body.size() == 6)
          advert.mtu = ByteReader(option.body, 2).u32();
        break;
      case kOptionPrefixInformation:
        if (const auto prefix = read_prefix(option.body))
          advert.prefixes.push_back(*prefix);
        break;
      case kOptionRdnss:
        read_rdnss(option.body, advert);
        break;
      case kOptionDnssl:
        read_dnssl(option.body, advert);
        break;
      default:
        break;
    }
  }
  return advert;
}

address_v6 eui64_address(const address_v6& prefix, const MacAddress& mac) {
  auto bytes = prefix.to_bytes();
  bytes[8] = static_cast<std::uint8_t>(mac[0] ^ 0x02);
  bytes[9] = mac[1];
  bytes[10] = mac[2];
  bytes[11] = 0xff;
  bytes[12] = 0xfe;
  bytes[13] = mac[3];
  bytes[14] = mac[4];
  bytes[15] = mac[5];
  return address_v6(bytes);
}

}  // namespace berth::dhcp::v6
