#include "dhcp/dhcp_options.hpp"

#include <algorithm>
#include <array>
#include <map>

#include "dhcp/domain_name.hpp"

namespace berth::dhcp {
namespace {

using T = OptionType;

// RFC 2132 and later; sorted by code.
constexpr std::array kOptionDefs = {
    OptionDef{1, "subnet-mask", T::kIpv4},
    OptionDef{2, "time-offset", T::kU32},
    OptionDef{3, "routers", T::kIpv4List},
    OptionDef{4, "time-servers", T::kIpv4List},
    OptionDef{5, "ien116-name-servers", T::kIpv4List},
    OptionDef{6, "domain-name-servers", T::kIpv4List},
    OptionDef{7, "log-servers", T::kIpv4List},
    OptionDef{8, "cookie-servers", T::kIpv4List},
    OptionDef{9, "lpr-servers", T::kIpv4List},
    OptionDef{10, "impress-servers", T::kIpv4List},
    OptionDef{11, "resource-location-servers", T::kIpv4List},
    OptionDef{12, "host-name", T::kText},
    OptionDef{13, "boot-size", T::kU16},
    OptionDef{14, "merit-dump", T::kText},
    OptionDef{15, "domain-name", T::kText},
    OptionDef{16, "swap-server", T::kIpv4},
    OptionDef{17, "root-path", T::kText},
    OptionDef{18, "extensions-path", T::kText},
    OptionDef{19, "ip-forwarding", T::kU8},
    OptionDef{20, "non-local-source-routing", T::kU8},
    OptionDef{21, "policy-filter", T::kIpv4Pairs},
    OptionDef{22, "max-dgram-reassembly", T::kU16},
    OptionDef{23, "default-ip-ttl", T::kU8},
    OptionDef{24, "path-mtu-aging-timeout", T::kU32},
    OptionDef{25, "path-mtu-plateau-table", T::kU16List},
    OptionDef{26, "interface-mtu", T::kU16},
    OptionDef{27, "all-subnets-local", T::kU8},
    OptionDef{28, "broadcast-address", T::kIpv4},
    OptionDef{29, "perform-mask-discovery", T::kU8},
    OptionDef{30, "mask-supplier", T::kU8},
    OptionDef{31, "router-discovery", T::kU8},
    OptionDef{32, "router-solicitation-address", T::kIpv4},
    OptionDef{33, "static-routes", T::kIpv4Pairs},
    OptionDef{34, "trailer-encapsulation", T::kU8},
    OptionDef{35, "arp-cache-timeout", T::kU32},
    OptionDef{36, "ieee802-3-encapsulation", T::kU8},
    OptionDef{37, "default-tcp-ttl", T::kU8},
    OptionDef{38, "tcp-keepalive-interval", T::kU32},
    OptionDef{39, "tcp-keepalive-garbage", T::kU8},
    OptionDef{40, "nis-domain", T::kText},
    OptionDef{41, "nis-servers", T::kIpv4List},
    OptionDef{42, "ntp-servers", T::kIpv4List},
    OptionDef{43, "vendor-encapsulated-options", T::kBytes},
    OptionDef{44, "netbios-name-servers", T::kIpv4List},
    OptionDef{45, "netbios-dd-server", T::kIpv4List},
    OptionDef{46, "netbios-node-type", T::kU8},
    OptionDef{47, "netbios-scope", T::kText},
    OptionDef{48, "font-servers", T::kIpv4List},
    OptionDef{49, "x-display-manager", T::kIpv4List},
    OptionDef{50, "requested-address", T::kIpv4},
    OptionDef{51, "lease-time", T::kU32},
    OptionDef{52, "option-overload", T::kOverload},
    OptionDef{53, "message-type", T::kMessageType},
    OptionDef{54, "server-identifier", T::kIpv4},
    OptionDef{55, "parameter-request-list", T::kU8List},
    OptionDef{56, "message", T::kText},
    OptionDef{57, "max-message-size", T::kU16},
    OptionDef{58, "renewal-time", T::kU32},
    OptionDef{59, "rebinding-time", T::kU32},
    OptionDef{60, "vendor-class-identifier", T::kBytes},
    OptionDef{61, "client-identifier", T::kClientId},
    OptionDef{66, "tftp-server-name", T::kText},
    OptionDef{67, "bootfile-name", T::kText},
    OptionDef{77, "user-class", T::kBytes},
    OptionDef{80, "rapid-commit", T::kFlag},
    OptionDef{81, "client-fqdn", T::kBytes},
    OptionDef{82, "relay-agent-information", T::kBytes},
    OptionDef{93, "client-system-architecture", T::kU16List},
    OptionDef{94, "client-network-interface", T::kBytes},
    OptionDef{97, "client-machine-identifier", T::kBytes},
    OptionDef{114, "captive-portal", T::kText},
    OptionDef{116, "auto-configure", T::kU8},
    OptionDef{118, "subnet-selection", T::kIpv4},
    OptionDef{119, "domain-search", T::kDomainList},
    OptionDef{121, "classless-static-routes", T::kClasslessRoutes},
    OptionDef{249, "ms-classless-static-routes", T::kClasslessRoutes},
    OptionDef{252, "wpad", T::kText},
};

static_assert(std::is_sorted(kOptionDefs.begin(), kOptionDefs.end(),
                             [](const OptionDef& a, const OptionDef& b) {
                               return a.code < b.code;
                             }));

Bytes ipv4_bytes(boost::asio::ip::address_v4 address) {
  const auto octets = address.to_bytes();
  return Bytes(octets.begin(), octets.end());
}

char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// Splits a domain name into labels; nullopt when it is not a valid host-style name for 119.
std::optional<std::vector<std::string_view>> split_labels(std::string_view name) {
  if (name.ends_with('.'))
    name.remove_suffix(1);
  if (name.empty() || name.size() > 253)
    return std::nullopt;
  std::vector<std::string_view> labels;
  while (true) {
    const auto dot = name.find('.');
    const std::string_view label = name.substr(0, dot);
    if (label.empty() || label.size() > 63)
      return std::nullopt;
    labels.push_back(label);
    if (dot == std::string_view::npos)
      break;
    name.remove_prefix(dot + 1);
  }
  return labels;
}

std::string lower_join(std::span<const std::string_view> labels) {
  std::string out;
  for (const auto label : labels) {
    if (!out.empty())
      out += '.';
    for (const char c : label)
      out += ascii_lower(c);
  }
  return out;
}

}  // namespace

std::string_view to_string(MessageType type) {
  switch (type) {
    case MessageType::kDiscover:
      return "DHCPDISCOVER";
    case MessageType::kOffer:
      return "DHCPOFFER";
    case MessageType::kRequest:
      return "DHCPREQUEST";
    case MessageType::kDecline:
      return "DHCPDECLINE";
    case MessageType::kAck:
      return "DHCPACK";
    case MessageType::kNak:
      return "DHCPNAK";
    case MessageType::kRelease:
      return "DHCPRELEASE";
    case MessageType::kInform:
      return "DHCPINFORM";
  }
  return "DHCP?";
}

const OptionDef* find_option_def(std::uint8_t code) {
  const auto it =
      std::lower_bound(kOptionDefs.begin(), kOptionDefs.end(), code,
                       [](const OptionDef& def, std::uint8_t c) { return def.code < c; });
  return it != kOptionDefs.end() && it->code == code ? &*it : nullptr;
}

std::span<const OptionDef> option_defs() {
  return kOptionDefs;
}

std::optional<std::string_view> check_option_value(std::uint8_t code, ByteView value) {
  const OptionDef* def = find_option_def(code);
  if (!def)
    return std::nullopt;
  const std::size_t n = value.size();
  switch (def->type) {
    case T::kBytes:
      return std::nullopt;
    case T::kFlag:
      return n == 0 ? std::nullopt : std::optional<std::string_view>("must be empty");
    case T::kU8:
      return n == 1 ? std::nullopt : std::optional<std::string_view>("length must be 1");
    case T::kU16:
      return n == 2 ? std::nullopt : std::optional<std::string_view>("length must be 2");
    case T::kU32:
    case T::kIpv4:
      return n == 4 ? std::nullopt : std::optional<std::string_view>("length must be 4");
    case T::kIpv4List:
      return n > 0 && n % 4 == 0
                 ? std::nullopt
                 : std::optional<std::string_view>("length must be a multiple of 4");
    case T::kIpv4Pairs:
      return n > 0 && n % 8 == 0
                 ? std::nullopt
                 : std::optional<std::string_view>("length must be a multiple of 8");
    case T::kU8List:
    case T::kText:
      return n > 0 ? std::nullopt : std::optional<std::string_view>("must not be empty");
    case T::kU16List:
      return n > 0 && n % 2 == 0
                 ? std::nullopt
                 : std::optional<std::string_view>("length must be a multiple of 2");
    case T::kMessageType:
      return n == 1 && value[0] >= 1 && value[0] <= 8
                 ? std::nullopt
                 : std::optional<std::string_view>("must be one byte, 1..8");
    case T::kOverload:
      return n == 1 && value[0] >= 1 && value[0] <= 3
                 ? std::nullopt
                 : std::optional<std::string_view>("must be one byte, 1..3");
    case T::kClientId:
      return n >= 2 ? std::nullopt : std::optional<std::string_view>("length must be at least 2");
    case T::kDomainList:
      return decode_domain_search(value) ? std::nullopt
                                         : std::optional<std::string_view>("bad domain list");
    case T::kClasslessRoutes:
      return decode_classless_routes(value) ? std::nullopt
                                            : std::optional<std::string_view>("bad route list");
  }
  return std::nullopt;
}

// ---- DhcpOptions

void DhcpOptions::set(std::uint8_t option_code, Bytes value) {
  for (auto& [c, v] : entries_) {
    if (c == option_code) {
      v = std::move(value);
      return;
    }
  }
  entries_.emplace_back(option_code, std::move(value));
}

void DhcpOptions::set_u8(Option option, std::uint8_t value) {
  set(option, Bytes{value});
}

void DhcpOptions::set_u16(Option option, std::uint16_t value) {
  Bytes bytes;
  put_u16(bytes, value);
  set(option, std::move(bytes));
}

void DhcpOptions::set_u32(Option option, std::uint32_t value) {
  Bytes bytes;
  put_u32(bytes, value);
  set(option, std::move(bytes));
}

void DhcpOptions::set_ipv4(Option option, boost::asio::ip::address_v4 address) {
  set(option, ipv4_bytes(address));
}

void DhcpOptions::set_ipv4_list(Option option,
                                std::span<const boost::asio::ip::address_v4> addresses) {
  Bytes bytes;
  for (const auto& address : addresses)
    put_bytes(bytes, ipv4_bytes(address));
  set(option, std::move(bytes));
}

void DhcpOptions::set_text(Option option, std::string_view text) {
  set(option, Bytes(text.begin(), text.end()));
}

void DhcpOptions::append(std::uint8_t option_code, ByteView more) {
  for (auto& [c, v] : entries_) {
    if (c == option_code) {
      put_bytes(v, more);
      return;
    }
  }
  entries_.emplace_back(option_code, Bytes(more.begin(), more.end()));
}

void DhcpOptions::erase(std::uint8_t option_code) {
  std::erase_if(entries_, [option_code](const Entry& e) { return e.first == option_code; });
}

const Bytes* DhcpOptions::find(std::uint8_t option_code) const {
  for (const auto& [c, v] : entries_) {
    if (c == option_code)
      return &v;
  }
  return nullptr;
}

std::optional<std::uint8_t> DhcpOptions::u8(Option option) const {
  const Bytes* v = find(option);
  if (!v || v->size() != 1)
    return std::nullopt;
  return (*v)[0];
}

std::optional<std::uint16_t> DhcpOptions::u16(Option option) const {
  const Bytes* v = find(option);
  if (!v || v->size() != 2)
    return std::nullopt;
  return load_u16(*v, 0);
}

std::optional<std::uint32_t> DhcpOptions::u32(Option option) const {
  const Bytes* v = find(option);
  if (!v || v->size() != 4)
    return std::nullopt;
  return ByteReader(*v).u32();
}

std::optional<boost::asio::ip::address_v4> DhcpOptions::ipv4(Option option) const {
  const Bytes* v = find(option);
  if (!v || v->size() != 4)
    return std::nullopt;
  return boost::asio::ip::address_v4({(*v)[0], (*v)[1], (*v)[2], (*v)[3]});
}

std::optional<std::string> DhcpOptions::text(Option option) const {
  const Bytes* v = find(option);
  if (!v)
    return std::nullopt;
  std::string s(v->begin(), v->end());
  while (!s.empty() && s.back() == '\0')
    s.pop_back();
  return s;
}

std::optional<MessageType> DhcpOptions::message_type() const {
  const auto value = u8(Option::kMessageType);
  if (!value || *value < 1 || *value > 8)
    return std::nullopt;
  return static_cast<MessageType>(*value);
}

// ---- Option 119

std::optional<Bytes> encode_domain_search(std::span<const std::string> domains,
                                          NameCompression compression) {
  Bytes out;
  std::map<std::string, std::size_t> suffix_offsets;  // lower-cased suffix → where it was written
  for (const auto& domain : domains) {
    const auto labels = split_labels(domain);
    if (!labels)
      return std::nullopt;
    std::size_t first_shared = labels->size();
    std::size_t pointer = 0;
    if (compression == NameCompression::kOn) {
      for (std::size_t i = 0; i < labels->size(); ++i) {
        const auto it = suffix_offsets.find(lower_join(std::span(*labels).subspan(i)));
        if (it != suffix_offsets.end()) {
          first_shared = i;
          pointer = it->second;
          break;
        }
      }
    }
    for (std::size_t i = 0; i < first_shared; ++i) {
      if (compression == NameCompression::kOn && out.size() <= 0x3FFF)
        suffix_offsets.emplace(lower_join(std::span(*labels).subspan(i)), out.size());
      const auto label = (*labels)[i];
      put_u8(out, static_cast<std::uint8_t>(label.size()));
      out.insert(out.end(), label.begin(), label.end());
    }
    if (first_shared < labels->size())
      put_u16(out, static_cast<std::uint16_t>(0xC000 | pointer));
    else
      put_u8(out, 0);
  }
  return out;
}

ParseResult<std::vector<std::string>> decode_domain_search(ByteView data) {
  std::vector<std::string> names;
  std::size_t offset = 0;
  while (offset < data.size()) {
    Bytes wire;
    const auto end = read_wire_name(data, offset, &wire, 0, 119);
    if (!end)
      return end.error();
    if (wire.size() == 1)
      return ParseError{"empty domain name", offset, 119};
    std::string name;
    for (std::size_t pos = 0; wire[pos] != 0; pos += 1 + wire[pos]) {
      if (!name.empty())
        name += '.';
      name.append(reinterpret_cast<const char*>(wire.data()) + pos + 1, wire[pos]);
    }
    names.push_back(std::move(name));
    offset = *end;
  }
  return names;
}

// ---- Option 121

std::optional<Bytes> encode_classless_routes(std::span<const ClasslessRoute> routes) {
  Bytes out;
  for (const auto& route : routes) {
    if (route.prefix_length > 32)
      return std::nullopt;
    put_u8(out, static_cast<std::uint8_t>(route.prefix_length));
    const auto destination = route.destination.to_bytes();
    out.insert(out.end(), destination.begin(), destination.begin() + (route.prefix_length + 7) / 8);
    put_bytes(out, ipv4_bytes(route.router));
  }
  return out;
}

ParseResult<std::vector<ClasslessRoute>> decode_classless_routes(ByteView data) {
  std::vector<ClasslessRoute> routes;
  ByteReader in(data);
  if (data.empty())
    return ParseError{"empty route list", 0, 121};
  while (!in.at_end()) {
    const std::size_t start = in.offset();
    const std::uint8_t width = *in.u8();
    if (width > 32)
      return ParseError{"prefix length over 32", start, 121};
    const auto significant = in.bytes((width + 7u) / 8);
    const auto router = in.bytes(4);
    if (!significant || !router)
      return ParseError{"route runs past the end", start, 121};
    boost::asio::ip::address_v4::bytes_type destination{};
    std::copy(significant->begin(), significant->end(), destination.begin());
    routes.push_back(ClasslessRoute{
        boost::asio::ip::address_v4(destination), width,
        boost::asio::ip::address_v4({(*router)[0], (*router)[1], (*router)[2], (*router)[3]})});
  }
  return routes;
}

}  // namespace berth::dhcp
