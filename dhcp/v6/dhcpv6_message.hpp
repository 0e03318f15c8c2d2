#pragma once
// One DHCPv6 client/server message (RFC 8415 §8) as a value, the option table, the wire codec, and
// the encodings of the options Berth reads or writes: IA_NA (§21.4), IA Address (§21.6), Status
// Code (§21.13), the Option Request list (§21.7), DNS servers and the domain search list (RFC
// 3646). Pure: bytes in, values out; parsing untrusted bytes never throws and never reads out of
// bounds. Relay messages are refused: the VM sits directly on the bridge, no relay serves it.

#include <boost/asio/ip/address_v6.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dhcp/byte_io.hpp"
#include "dhcp/parse_error.hpp"

namespace berth::dhcp::v6 {

inline constexpr std::uint16_t kClientPort = 546;
inline constexpr std::uint16_t kServerPort = 547;
inline constexpr std::size_t kHeaderSize = 4;  // msg-type + transaction-id

enum class MessageType : std::uint8_t {
  kSolicit = 1,
  kAdvertise = 2,
  kRequest = 3,
  kConfirm = 4,
  kRenew = 5,
  kRebind = 6,
  kReply = 7,
  kRelease = 8,
  kDecline = 9,
  kReconfigure = 10,
  kInformationRequest = 11,
  kRelayForward = 12,
  kRelayReply = 13,
};

std::string_view to_string(MessageType type);

// The option codes Berth reads or writes; others pass through as bytes.
enum class Option : std::uint16_t {
  kClientId = 1,
  kServerId = 2,
  kIaNa = 3,
  kIaTa = 4,
  kIaAddress = 5,
  kOptionRequest = 6,
  kPreference = 7,
  kElapsedTime = 8,
  kRelayMessage = 9,
  kAuthentication = 11,
  kServerUnicast = 12,
  kStatusCode = 13,
  kRapidCommit = 14,
  kUserClass = 15,
  kVendorClass = 16,
  kVendorOptions = 17,
  kInterfaceId = 18,
  kReconfigureMessage = 19,
  kReconfigureAccept = 20,
  kDnsServers = 23,  // RFC 3646
  kDomainList = 24,  // RFC 3646
  kIaPd = 25,
  kIaPrefix = 26,
  kInformationRefreshTime = 32,
  kSolMaxRt = 82,
  kInfMaxRt = 83,
};

constexpr std::uint16_t code(Option option) {
  return static_cast<std::uint16_t>(option);
}

enum class StatusCode : std::uint16_t {
  kSuccess = 0,
  kUnspecFail = 1,
  kNoAddrsAvail = 2,
  kNoBinding = 3,
  kNotOnLink = 4,
  kUseMulticast = 5,
  kNoPrefixAvail = 6,
};

// How an option's value is laid out; decides the length rules checked when it is parsed.
enum class OptionType {
  kBytes,       // opaque, any length
  kDuid,        // a DUID: a 2-byte type and 1..128 bytes (§11)
  kEmpty,       // no data
  kU8,          // exactly 1 byte
  kU16,         // exactly 2 bytes
  kU32,         // exactly 4 bytes
  kIa,          // IAID, T1, T2 (12 bytes) then options: IA_NA, IA_PD
  kIaTa,        // IAID (4 bytes) then options
  kIaAddress,   // address, preferred, valid (24 bytes) then options
  kIaPrefix,    // preferred, valid, length, prefix (25 bytes) then options
  kU16List,     // a multiple of 2 bytes
  kIpv6List,    // a non-empty multiple of 16 bytes
  kDomainList,  // uncompressed RFC 1035 names
  kStatusCode,  // a 2-byte code then UTF-8 text
};

struct OptionDef {
  std::uint16_t code;
  std::string_view name;
  OptionType type;
  bool single;  // at most once in one option area (§21: Client/Server Identifier, ORO, ...)
};

// The table entry for `code`, or nullptr for codes Berth has no definition for (kept as bytes).
const OptionDef* find_option_def(std::uint16_t code);
// The whole table, sorted by code.
std::span<const OptionDef> option_defs();

// One option area (a message's, or one encapsulated in an IA or IA Address): options in order,
// repeats kept (a client may send several IA_NA).
class Options {
 public:
  using Entry = std::pair<std::uint16_t, Bytes>;

  void add(std::uint16_t code, Bytes value) { entries_.emplace_back(code, std::move(value)); }
  void add(Option option, Bytes value) { add(code(option), std::move(value)); }
  // The first value of `option`, or nullptr.
  const Bytes* find(Option option) const;
  // Every value of `option`, in order.
  std::vector<ByteView> find_all(Option option) const;
  bool contains(Option option) const { return find(option) != nullptr; }

  const std::vector<Entry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }
  friend bool operator==(const Options&, const Options&) = default;

 private:
  std::vector<Entry> entries_;
};

// Parses an option area. Each known option's length is checked against its type and a single
// option may not repeat. `base` is where `data` starts in the message, for error offsets.
ParseResult<Options> parse_options(ByteView data, std::size_t base = 0);
void serialize_options(const Options& options, Bytes& out);

struct Message {
  MessageType type = MessageType::kSolicit;
  std::uint32_t transaction_id = 0;  // 24 bits
  Options options;
  friend bool operator==(const Message&, const Message&) = default;
};

// Parses a UDP payload. Errors: shorter than 4 bytes, a relay message (type 12/13) or a type
// over 13, an option running past the end, an invalid known option.
ParseResult<Message> parse_message(ByteView payload);
Bytes serialize_message(const Message& message);

struct IaAddress {
  boost::asio::ip::address_v6 address;
  std::uint32_t preferred_lifetime = 0;
  std::uint32_t valid_lifetime = 0;
  Options options;
  friend bool operator==(const IaAddress&, const IaAddress&) = default;
};

// IA_NA and IA_PD share this layout.
struct IdentityAssociation {
  std::uint32_t iaid = 0;
  std::uint32_t t1 = 0;
  std::uint32_t t2 = 0;
  Options options;
  friend bool operator==(const IdentityAssociation&, const IdentityAssociation&) = default;
};

struct Status {
  StatusCode code = StatusCode::kSuccess;
  std::string message;
  friend bool operator==(const Status&, const Status&) = default;
};

ParseResult<IdentityAssociation> decode_ia(ByteView data);
Bytes encode_ia(const IdentityAssociation& ia);
// IA_TA: the IAID and options only.
ParseResult<IdentityAssociation> decode_ia_ta(ByteView data);
Bytes encode_ia_ta(const IdentityAssociation& ia);
ParseResult<IaAddress> decode_ia_address(ByteView data);
Bytes encode_ia_address(const IaAddress& address);
ParseResult<Status> decode_status(ByteView data);
Bytes encode_status(StatusCode code, std::string_view message);
ParseResult<std::vector<std::uint16_t>> decode_u16_list(ByteView data);
Bytes encode_addresses(std::span<const boost::asio::ip::address_v6> addresses);
ParseResult<std::vector<boost::asio::ip::address_v6>> decode_addresses(ByteView data);
// Names without compression (§10); nullopt when a name is empty, has an empty label, a label
// over 63 bytes or is over 253 characters.
std::optional<Bytes> encode_domain_list(std::span<const std::string> domains);
ParseResult<std::vector<std::string>> decode_domain_list(ByteView data);

}  // namespace berth::dhcp::v6
