#pragma once
// DHCPv4 options: the code → name/type table, the ordered option container of a packet, and the
// encodings of option 119 (domain search, RFC 3397) and 121 (classless static routes, RFC 3442).
// Pure: bytes in, values out.

#include <boost/asio/ip/address_v4.hpp>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dhcp/byte_io.hpp"
#include "dhcp/parse_error.hpp"

namespace berth::dhcp {

// The option codes Berth reads or writes (RFC 2132 unless noted). Others pass through as bytes.
enum class Option : std::uint8_t {
  kPad = 0,
  kSubnetMask = 1,
  kRouter = 3,
  kDomainNameServer = 6,
  kHostName = 12,
  kDomainName = 15,
  kInterfaceMtu = 26,
  kBroadcastAddress = 28,
  kRequestedAddress = 50,
  kLeaseTime = 51,
  kOverload = 52,
  kMessageType = 53,
  kServerIdentifier = 54,
  kParameterRequestList = 55,
  kMessage = 56,
  kMaxMessageSize = 57,
  kRenewalTime = 58,
  kRebindingTime = 59,
  kVendorClass = 60,
  kClientIdentifier = 61,
  kDomainSearch = 119,     // RFC 3397
  kClasslessRoutes = 121,  // RFC 3442
  kEnd = 255,
};

constexpr std::uint8_t code(Option option) {
  return static_cast<std::uint8_t>(option);
}

// DHCP message types (option 53).
enum class MessageType : std::uint8_t {
  kDiscover = 1,
  kOffer = 2,
  kRequest = 3,
  kDecline = 4,
  kAck = 5,
  kNak = 6,
  kRelease = 7,
  kInform = 8,
};

std::string_view to_string(MessageType type);

// How an option's value is laid out; decides the length rules checked when a packet is parsed.
enum class OptionType {
  kBytes,            // opaque, any length
  kFlag,             // no data (length 0)
  kU8,               // exactly 1 byte
  kU16,              // exactly 2 bytes
  kU32,              // exactly 4 bytes
  kIpv4,             // exactly 4 bytes
  kIpv4List,         // a non-empty multiple of 4 bytes
  kIpv4Pairs,        // a non-empty multiple of 8 bytes
  kU8List,           // at least 1 byte
  kU16List,          // a non-empty multiple of 2 bytes
  kText,             // at least 1 byte, not NUL-terminated (a trailing NUL is tolerated)
  kMessageType,      // 1 byte, 1..8
  kOverload,         // 1 byte, 1..3
  kClientId,         // at least 2 bytes (type + identifier)
  kDomainList,       // RFC 1035 names, compression allowed (option 119)
  kClasslessRoutes,  // RFC 3442 (option 121)
};

struct OptionDef {
  std::uint8_t code;
  std::string_view name;
  OptionType type;
};

// The table entry for `code`, or nullptr for codes Berth has no definition for (kept as bytes).
const OptionDef* find_option_def(std::uint8_t code);

// The whole table, sorted by code (for tests and documentation).
std::span<const OptionDef> option_defs();

// Checks `value` against the length rules of `code`'s type; nullopt when it is acceptable or the
// code is unknown, else the reason.
std::optional<std::string_view> check_option_value(std::uint8_t code, ByteView value);

// The options of one packet, in order, each code once with its whole value (RFC 3396: repeated
// codes are concatenated when parsed, and long values split again when serialized).
class DhcpOptions {
 public:
  using Entry = std::pair<std::uint8_t, Bytes>;

  // Sets `code` to `value`: replaces an existing value in place, else appends.
  void set(std::uint8_t code, Bytes value);
  void set(Option option, Bytes value) { set(code(option), std::move(value)); }
  void set_u8(Option option, std::uint8_t value);
  void set_u16(Option option, std::uint16_t value);
  void set_u32(Option option, std::uint32_t value);
  void set_ipv4(Option option, boost::asio::ip::address_v4 address);
  void set_ipv4_list(Option option, std::span<const boost::asio::ip::address_v4> addresses);
  void set_text(Option option, std::string_view text);
  // Appends to an existing value (RFC 3396 concatenation), else adds the option.
  void append(std::uint8_t code, ByteView more);
  void erase(std::uint8_t code);

  // The value of `code`, or nullptr when absent.
  const Bytes* find(std::uint8_t code) const;
  const Bytes* find(Option option) const { return find(code(option)); }
  bool contains(Option option) const { return find(option) != nullptr; }

  // Typed reads: nullopt when absent or not of the expected length.
  std::optional<std::uint8_t> u8(Option option) const;
  std::optional<std::uint16_t> u16(Option option) const;
  std::optional<std::uint32_t> u32(Option option) const;
  std::optional<boost::asio::ip::address_v4> ipv4(Option option) const;
  std::optional<std::string> text(Option option) const;
  // Option 53, when present and in 1..8.
  std::optional<MessageType> message_type() const;

  const std::vector<Entry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }
  friend bool operator==(const DhcpOptions&, const DhcpOptions&) = default;

 private:
  std::vector<Entry> entries_;
};

// Whether option 119 may use RFC 1035 compression pointers (smaller; every common client decodes
// them).
enum class NameCompression { kOff, kOn };

// Encodes a domain search list as option 119 data. Names may end with a dot; nullopt when a name
// is empty, has an empty label, a label over 63 bytes or is over 253 characters.
std::optional<Bytes> encode_domain_search(std::span<const std::string> domains,
                                          NameCompression compression);

// Decodes option 119 data (compression pointers must point backwards).
ParseResult<std::vector<std::string>> decode_domain_search(ByteView data);

struct ClasslessRoute {
  boost::asio::ip::address_v4 destination;
  unsigned prefix_length = 0;  // 0..32
  boost::asio::ip::address_v4 router;
  friend bool operator==(const ClasslessRoute&, const ClasslessRoute&) = default;
};

// Encodes option 121 data; nullopt when a prefix length is over 32. The caller orders the routes
// (RFC 3442 clients ignore option 3 when 121 is present: include 0.0.0.0/0 as the last route).
std::optional<Bytes> encode_classless_routes(std::span<const ClasslessRoute> routes);

// Decodes option 121 data.
ParseResult<std::vector<ClasslessRoute>> decode_classless_routes(ByteView data);

}  // namespace berth::dhcp
