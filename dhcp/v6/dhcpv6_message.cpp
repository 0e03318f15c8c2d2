#include "dhcp/v6/dhcpv6_message.hpp"

#include <algorithm>
#include <array>
#include <set>

namespace berth::dhcp::v6 {
namespace {

using boost::asio::ip::address_v6;

// Sorted by code (find_option_def searches it).
constexpr std::array kOptionDefs{
    OptionDef{1, "client-id", OptionType::kDuid, true},
    OptionDef{2, "server-id", OptionType::kDuid, true},
    OptionDef{3, "ia-na", OptionType::kIa, false},
    OptionDef{4, "ia-ta", OptionType::kIaTa, false},
    OptionDef{5, "ia-address", OptionType::kIaAddress, false},
    OptionDef{6, "option-request", OptionType::kU16List, true},
    OptionDef{7, "preference", OptionType::kU8, true},
    OptionDef{8, "elapsed-time", OptionType::kU16, true},
    OptionDef{9, "relay-message", OptionType::kBytes, true},
    OptionDef{11, "authentication", OptionType::kBytes, true},
    OptionDef{12, "server-unicast", OptionType::kIpv6List, true},
    OptionDef{13, "status-code", OptionType::kStatusCode, true},
    OptionDef{14, "rapid-commit", OptionType::kEmpty, true},
    OptionDef{15, "user-class", OptionType::kBytes, true},
    OptionDef{16, "vendor-class", OptionType::kBytes, false},
    OptionDef{17, "vendor-options", OptionType::kBytes, false},
    OptionDef{18, "interface-id", OptionType::kBytes, true},
    OptionDef{19, "reconfigure-message", OptionType::kU8, true},
    OptionDef{20, "reconfigure-accept", OptionType::kEmpty, true},
    OptionDef{23, "dns-servers", OptionType::kIpv6List, true},
    OptionDef{24, "domain-list", OptionType::kDomainList, true},
    OptionDef{25, "ia-pd", OptionType::kIa, false},
    OptionDef{26, "ia-prefix", OptionType::kIaPrefix, false},
    OptionDef{32, "information-refresh-time", OptionType::kU32, true},
    OptionDef{82, "sol-max-rt", OptionType::kU32, true},
    OptionDef{83, "inf-max-rt", OptionType::kU32, true},
};

constexpr std::size_t kMaxDuidData = 128;
constexpr std::size_t kMaxDomainLength = 253;

std::optional<std::string_view> check_length(OptionType type, ByteView value) {
  const std::size_t size = value.size();
  switch (type) {
    case OptionType::kBytes:
      return std::nullopt;
    case OptionType::kDuid:
      if (size < 3 || size > 2 + kMaxDuidData)
        return "a DUID is 3 to 130 bytes";
      return std::nullopt;
    case OptionType::kEmpty:
      return size == 0 ? std::nullopt : std::optional<std::string_view>("must be empty");
    case OptionType::kU8:
      return size == 1 ? std::nullopt : std::optional<std::string_view>("bad length");
    case OptionType::kU16:
      return size == 2 ? std::nullopt : std::optional<std::string_view>("bad length");
    case OptionType::kU32:
      return size == 4 ? std::nullopt : std::optional<std::string_view>("bad length");
    case OptionType::kIa:
      return size >= 12 ? std::nullopt : std::optional<std::string_view>("IA shorter than 12");
    case OptionType::kIaTa:
      return size >= 4 ? std::nullopt : std::optional<std::string_view>("IA_TA shorter than 4");
    case OptionType::kIaAddress:
      return size >= 24 ? std::nullopt
                        : std::optional<std::string_view>("IA address shorter than 24");
    case OptionType::kIaPrefix:
      return size >= 25 ? std::nullopt
                        : std::optional<std::string_view>("IA prefix shorter than 25");
    case OptionType::kU16List:
      return size % 2 == 0 ? std::nullopt : std::optional<std::string_view>("odd length");
    case OptionType::kIpv6List:
      return size > 0 && size % 16 == 0
                 ? std::nullopt
                 : std::optional<std::string_view>("not a non-empty multiple of 16 bytes");
    case OptionType::kDomainList:
      return decode_domain_list(value).has_value()
                 ? std::nullopt
                 : std::optional<std::string_view>("bad domain list");
    case OptionType::kStatusCode:
      return size >= 2 ? std::nullopt : std::optional<std::string_view>("status shorter than 2");
  }
  return std::nullopt;
}

std::uint32_t load_u32(ByteView data, std::size_t offset) {
  ByteReader reader(data, offset);
  return reader.u32().value_or(0);
}

address_v6 load_address(ByteView data, std::size_t offset) {
  address_v6::bytes_type bytes{};
  std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(offset), bytes.size(), bytes.begin());
  return address_v6(bytes);
}

void put_address(Bytes& out, const address_v6& address) {
  const auto bytes = address.to_bytes();
  out.insert(out.end(), bytes.begin(), bytes.end());
}

}  // namespace

std::string_view to_string(MessageType type) {
  switch (type) {
    case MessageType::kSolicit:
      return "SOLICIT";
    case MessageType::kAdvertise:
      return "ADVERTISE";
    case MessageType::kRequest:
      return "REQUEST";
    case MessageType::kConfirm:
      return "CONFIRM";
    case MessageType::kRenew:
      return "RENEW";
    case MessageType::kRebind:
      return "REBIND";
    case MessageType::kReply:
      return "REPLY";
    case MessageType::kRelease:
      return "RELEASE";
    case MessageType::kDecline:
      return "DECLINE";
    case MessageType::kReconfigure:
      return "RECONFIGURE";
    case MessageType::kInformationRequest:
      return "INFORMATION-REQUEST";
    case MessageType::kRelayForward:
      return "RELAY-FORW";
    case MessageType::kRelayReply:
      return "RELAY-REPL";
  }
  return "UNKNOWN";
}

const OptionDef* find_option_def(std::uint16_t code) {
  const auto* it =
      std::lower_bound(kOptionDefs.begin(), kOptionDefs.end(), code,
                       [](const OptionDef& def, std::uint16_t c) { return def.code < c; });
  return it != kOptionDefs.end() && it->code == code ? &*it : nullptr;
}

std::span<const OptionDef> option_defs() {
  return kOptionDefs;
}

const Bytes* Options::find(Option option) const {
  for (const auto& [entry_code, value] : entries_)
    if (entry_code == code(option))
      return &value;
  return nullptr;
}

std::vector<ByteView> Options::find_all(Option option) const {
  std::vector<ByteView> values;
  for (const auto& [entry_code, value] : entries_)
    if (entry_code == code(option))
      values.emplace_back(value);
  return values;
}

ParseResult<Options> parse_options(ByteView data, std::size_t base) {
  Options options;
  std::set<std::uint16_t> seen;
  ByteReader reader(data);
  while (!reader.at_end()) {
    const std::size_t at = base + reader.offset();
    const auto option_code = reader.u16();
    const auto length = reader.u16();
    if (!option_code || !length)
      return ParseError{"truncated option header", at, -1, Family::kV6};
    const auto value = reader.bytes(*length);
    if (!value)
      return ParseError{"option runs past the end", at, *option_code, Family::kV6};
    if (const OptionDef* def = find_option_def(*option_code)) {
      if (const auto why = check_length(def->type, *value))
        return ParseError{*why, at, *option_code, Family::kV6};
      if (def->single && !seen.insert(*option_code).second)
        return ParseError{"option repeated", at, *option_code, Family::kV6};
    }
    options.add(*option_code, Bytes(value->begin(), value->end()));
  }
  return options;
}

void serialize_options(const Options& options, Bytes& out) {
  for (const auto& [option_code, value] : options.entries()) {
    put_u16(out, option_code);
    put_u16(out, static_cast<std::uint16_t>(value.size()));
    put_bytes(out, value);
  }
}

ParseResult<Message> parse_message(ByteView payload) {
  if (payload.size() < kHeaderSize)
    return ParseError{"shorter than a DHCPv6 header", payload.size(), -1, Family::kV6};
  const std::uint8_t type = payload[0];
  if (type == 0 || type > 13)
    return ParseError{"unknown message type", 0, -1, Family::kV6};
  if (type == 12 || type == 13)
    return ParseError{"relay message (no relay serves the VM)", 0, -1, Family::kV6};
  auto options = parse_options(payload.subspan(kHeaderSize), kHeaderSize);
  if (!options)
    return options.error();
  Message message;
  message.type = static_cast<MessageType>(type);
  message.transaction_id =
      std::uint32_t{payload[1]} << 16 | std::uint32_t{payload[2]} << 8 | payload[3];
  message.options = std::move(*options);
  return message;
}

Bytes serialize_message(const Message& message) {
  Bytes out;
  put_u8(out, static_cast<std::uint8_t>(message.type));
  put_u8(out, static_cast<std::uint8_t>(message.transaction_id >> 16));
  put_u16(out, static_cast<std::uint16_t>(message.transaction_id));
  serialize_options(message.options, out);
  return out;
}

ParseResult<IdentityAssociation> decode_ia(ByteView data) {
  if (data.size() < 12)
    return ParseError{"IA shorter than 12", 0, code(Option::kIaNa), Family::kV6};
  auto options = parse_options(data.subspan(12), 12);
  if (!options)
    return options.error();
  return IdentityAssociation{load_u32(data, 0), load_u32(data, 4), load_u32(data, 8),
                             std::move(*options)};
}

Bytes encode_ia(const IdentityAssociation& ia) {
  Bytes out;
  put_u32(out, ia.iaid);
  put_u32(out, ia.t1);
  put_u32(out, ia.t2);
  serialize_options(ia.options, out);
  return out;
}

ParseResult<IdentityAssociation> decode_ia_ta(ByteView data) {
  if (data.size() < 4)
    return ParseError{"IA_TA shorter than 4", 0, code(Option::kIaTa), Family::kV6};
  auto options = parse_options(data.subspan(4), 4);
  if (!options)
    return options.error();
  return IdentityAssociation{load_u32(data, 0), 0, 0, std::move(*options)};
}

Bytes encode_ia_ta(const IdentityAssociation& ia) {
  Bytes out;
  put_u32(out, ia.iaid);
  serialize_options(ia.options, out);
  return out;
}

ParseResult<IaAddress> decode_ia_address(ByteView data) {
  if (data.size() < 24)
    return ParseError{"IA address shorter than 24", 0, code(Option::kIaAddress), Family::kV6};
  auto options = parse_options(data.subspan(24), 24);
  if (!options)
    return options.error();
  return IaAddress{load_address(data, 0), load_u32(data, 16), load_u32(data, 20),
                   std::move(*options)};
}

Bytes encode_ia_address(const IaAddress& address) {
  Bytes out;
  out.reserve(64);  // also keeps GCC 12's -Wstringop-overflow quiet about an empty vector
  put_address(out, address.address);
  put_u32(out, address.preferred_lifetime);
  put_u32(out, address.valid_lifetime);
  serialize_options(address.options, out);
  return out;
}

ParseResult<Status> decode_status(ByteView data) {
  if (data.size() < 2)
    return ParseError{"status shorter than 2", 0, code(Option::kStatusCode), Family::kV6};
  return Status{static_cast<StatusCode>(load_u16(data, 0)),
                std::string(data.begin() + 2, data.end())};
}

Bytes encode_status(StatusCode status, std::string_view message) {
  Bytes out;
  out.reserve(2 + message.size());
  put_u16(out, static_cast<std::uint16_t>(status));
  out.insert(out.end(), message.begin(), message.end());
  return out;
}

ParseResult<std::vector<std::uint16_t>> decode_u16_list(ByteView data) {
  if (data.size() % 2 != 0)
    return ParseError{"odd length", 0, code(Option::kOptionRequest), Family::kV6};
  std::vector<std::uint16_t> values;
  for (std::size_t offset = 0; offset < data.size(); offset += 2)
    values.push_back(load_u16(data, offset));
  return values;
}

Bytes encode_addresses(std::span<const address_v6> addresses) {
  Bytes out;
  out.reserve(16 * addresses.size());
  for (const auto& address : addresses)
    put_address(out, address);
  return out;
}

ParseResult<std::vector<address_v6>> decode_addresses(ByteView data) {
  if (data.empty() || data.size() % 16 != 0)
    return ParseError{"not a non-empty multiple of 16 bytes", 0, code(Option::kDnsServers),
                      Family::kV6};
  std::vector<address_v6> addresses;
  for (std::size_t offset = 0; offset < data.size(); offset += 16)
    addresses.push_back(load_address(data, offset));
  return addresses;
}

std::optional<Bytes> encode_domain_list(std::span<const std::string> domains) {
  Bytes out;
  for (const auto& domain : domains) {
    std::string_view name = domain;
    if (name.ends_with('.'))
      name.remove_suffix(1);
    if (name.empty() || name.size() > kMaxDomainLength || name.find('\0') != std::string_view::npos)
      return std::nullopt;
    std::size_t start = 0;
    while (start <= name.size()) {
      const std::size_t dot = std::min(name.find('.', start), name.size());
      const std::size_t length = dot - start;
      if (length == 0 || length > 63)
        return std::nullopt;
      put_u8(out, static_cast<std::uint8_t>(length));
      out.insert(out.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
                 name.begin() + static_cast<std::ptrdiff_t>(dot));
      start = dot + 1;
    }
    put_u8(out, 0);
  }
  return out;
}

ParseResult<std::vector<std::string>> decode_domain_list(ByteView data) {
  constexpr int kCode = code(Option::kDomainList);
  std::vector<std::string> names;
  ByteReader reader(data);
  std::string name;
  while (!reader.at_end()) {
    const std::size_t at = reader.offset();
    const std::uint8_t length = *reader.u8();
    if (length == 0) {
      if (name.empty())
        return ParseError{"empty name", at, kCode, Family::kV6};
      names.push_back(std::move(name));
      name.clear();
      continue;
    }
    if (length > 63)
      return ParseError{"compressed or extended label", at, kCode, Family::kV6};
    const auto label = reader.bytes(length);
    if (!label)
      return ParseError{"label runs past the end", at, kCode, Family::kV6};
    if (std::any_of(label->begin(), label->end(),
                    [](std::uint8_t byte) { return byte == '.' || byte == 0; }))
      return ParseError{"label with a dot or NUL", at, kCode, Family::kV6};
    if (!name.empty())
      name.push_back('.');
    name.append(label->begin(), label->end());
    if (name.size() > kMaxDomainLength)
      return ParseError{"name longer than 253 characters", at, kCode, Family::kV6};
  }
  if (!name.empty())
    return ParseError{"name not terminated", data.size(), kCode, Family::kV6};
  return names;
}

}  // namespace berth::dhcp::v6
