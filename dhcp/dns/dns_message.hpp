#pragma once
// The parts of DNS (RFC 1035, RFC 6891) a forwarder needs: the header, the question, the OPT
// record, and the rewrites done on the way through (ID, EDNS0 payload size, truncation). Pure:
// bytes in, values out; parsing untrusted bytes never throws and never reads out of bounds.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "dhcp/byte_io.hpp"
#include "dhcp/parse_error.hpp"

namespace berth::dhcp::dns {

inline constexpr std::size_t kHeaderSize = 12;
inline constexpr std::uint16_t kClassicUdpLimit = 512;     // without EDNS0 (RFC 1035 §4.2.1)
inline constexpr std::uint16_t kAdvertisedUdpSize = 1232;  // DNS flag day 2020
inline constexpr std::uint16_t kTypeOpt = 41;

enum class Rcode : std::uint8_t {
  kNoError = 0,
  kFormErr = 1,
  kServFail = 2,
  kNxDomain = 3,
  kNotImp = 4,
  kRefused = 5,
};

struct Header {
  std::uint16_t id = 0;
  std::uint16_t flags = 0;
  std::uint16_t qdcount = 0;
  std::uint16_t ancount = 0;
  std::uint16_t nscount = 0;
  std::uint16_t arcount = 0;

  bool is_response() const { return (flags & 0x8000) != 0; }
  std::uint8_t opcode() const { return static_cast<std::uint8_t>((flags >> 11) & 0xF); }
  bool truncated() const { return (flags & 0x0200) != 0; }
  std::uint8_t rcode() const { return static_cast<std::uint8_t>(flags & 0xF); }
};

struct Question {
  Bytes name;  // wire form without compression, as received (case preserved)
  std::uint16_t type = 0;
  std::uint16_t qclass = 0;

  // "www.example.org." (escapes nothing; for logs).
  std::string name_text() const;
  // Same name (ASCII case-insensitive), type and class.
  bool matches(const Question& other) const;
};

struct Edns {
  std::uint16_t udp_size = 0;  // the requestor's payload size (OPT CLASS)
  std::uint32_t ttl = 0;       // extended RCODE, version, DO and Z flags
  std::size_t offset = 0;      // where the OPT record starts in the message
  std::size_t size = 0;        // its length in bytes
  bool dnssec_ok() const { return (ttl & 0x8000) != 0; }
};

// A parsed view of a whole message: every section walked and bounds-checked.
struct Message {
  Header header;
  std::optional<Question> question;        // the first question, if any
  std::size_t question_end = kHeaderSize;  // offset just past the question section
  std::optional<Edns> edns;                // the OPT record, if any
  bool opt_is_last = false;                // the OPT record is the final record
};

// Parses and validates a message: header, all questions and records (names with compression
// pointers that point backwards, lengths within the message), at most one OPT record, in the
// additional section, with the root name.
ParseResult<Message> parse_message(ByteView bytes);

// What the forwarder sends upstream for a guest's query: a fresh `id`, the guest's flags and
// question section as received, and one OPT record advertising kAdvertisedUdpSize with the guest's
// DO bit (EDNS0 is hop by hop: the answer is fitted to the guest on the way back; the guest's own
// OPT options, such as its cookie, are not forwarded). `query` must be what parse_message accepted
// as `view`.
Bytes make_upstream_query(ByteView query, const Message& view, std::uint16_t id);

// Whether `reply` answers the upstream query with `id` and `question` (RFC 5452: a response with
// the same ID and question; the caller checks the source address).
bool is_reply_to(const Message& reply, std::uint16_t id, const Question& question);

enum class Transport { kUdp, kTcp };

// The guest's view of an upstream reply: the guest's ID back, OPT removed when the guest sent none
// (else its size set to ours), and, over UDP, cut to what the guest accepts (512 without EDNS0, its
// advertised size with it): an answer that does not fit becomes header + question (+ OPT) with TC
// set, so the guest retries over TCP. `guest` is the guest's query as parsed.
Bytes make_guest_response(ByteView reply, const Message& reply_view, const Message& guest,
                          Transport transport);

// A reply with `rcode` and no records for the guest's query (its ID, question and RD flag; an
// OPT record when the guest sent one).
Bytes make_error_response(ByteView query, const Message& guest, Rcode rcode);

// The largest UDP response the guest accepts (512 without EDNS0, else its size, at least 512).
std::size_t guest_udp_limit(const Message& guest);

}  // namespace berth::dhcp::dns
