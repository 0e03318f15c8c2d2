#include "dhcp/dns/dns_message.hpp"

#include <algorithm>

#include "dhcp/domain_name.hpp"

namespace berth::dhcp::dns {
namespace {

constexpr std::uint16_t kFlagResponse = 0x8000;
constexpr std::uint16_t kFlagTruncated = 0x0200;
constexpr std::uint16_t kFlagRecursionDesired = 0x0100;
constexpr std::uint16_t kFlagRecursionAvailable = 0x0080;
constexpr std::size_t kArcountOffset = 10;

std::uint8_t ascii_lower(std::uint8_t c) {
  return c >= 'A' && c <= 'Z' ? static_cast<std::uint8_t>(c - 'A' + 'a') : c;
}

// Reads the name at `offset` (see read_wire_name); no pointer leads into the header, which is
// rewritten on the way through.
ParseResult<std::size_t> read_name(ByteView bytes, std::size_t offset, Bytes* out) {
  return read_wire_name(bytes, offset, out, kHeaderSize);
}

void put_opt(Bytes& out, std::uint16_t udp_size, std::uint32_t ttl) {
  put_u8(out, 0);  // root name
  put_u16(out, kTypeOpt);
  put_u16(out, udp_size);
  put_u32(out, ttl);
  put_u16(out, 0);  // no options
}

// Header + question section of `message` with the given id and flags, no records, and an OPT
// record when `opt_ttl` is set.
Bytes header_and_question(ByteView message, const Message& view, std::uint16_t id,
                          std::uint16_t flags, std::optional<std::uint32_t> opt_ttl) {
  Bytes out;
  put_u16(out, id);
  put_u16(out, flags);
  put_u16(out, view.header.qdcount);
  put_u16(out, 0);
  put_u16(out, 0);
  put_u16(out, opt_ttl ? 1 : 0);
  if (view.question && view.header.qdcount == 1) {
    // The name written out in full: a compression pointer in `message` may lead into the
    // sections left out here (a hostile upstream's answer), which would leave it dangling.
    out.insert(out.end(), view.question->name.begin(), view.question->name.end());
    put_u16(out, view.question->type);
    put_u16(out, view.question->qclass);
  } else {
    out.insert(out.end(), message.begin() + kHeaderSize,
               message.begin() + static_cast<std::ptrdiff_t>(view.question_end));
    if (!parse_message(out)) {  // the same danger with several questions: send none
      out.resize(kHeaderSize);
      store_u16(out, 4, 0);
    }
  }
  if (opt_ttl)
    put_opt(out, kAdvertisedUdpSize, *opt_ttl);
  return out;
}

// Whether `edited` (a copy of a reply with bytes changed) still parses with the same question:
// a name compressed through the changed bytes would otherwise come out different or broken.
bool intact(ByteView edited, const Message& original) {
  const auto again = parse_message(edited);
  if (!again)
    return false;
  if (!original.question)
    return !again->question;
  return again->question && again->question->matches(*original.question)
         && again->question->name == original.question->name;
}

}  // namespace

std::string Question::name_text() const {
  std::string text;
  std::size_t pos = 0;
  while (pos < name.size() && name[pos] != 0) {
    const std::size_t length = name[pos];
    for (std::size_t i = 1; i <= length && pos + i < name.size(); ++i)
      text += static_cast<char>(name[pos + i]);
    text += '.';
    pos += length + 1;
  }
  return text.empty() ? "." : text;
}

bool Question::matches(const Question& other) const {
  return type == other.type && qclass == other.qclass
         && std::equal(
             name.begin(), name.end(), other.name.begin(), other.name.end(),
             [](std::uint8_t a, std::uint8_t b) { return ascii_lower(a) == ascii_lower(b); });
}

ParseResult<Message> parse_message(ByteView bytes) {
  if (bytes.size() < kHeaderSize)
    return ParseError{"shorter than the 12-byte DNS header", bytes.size()};
  ByteReader in(bytes);
  Message message;
  message.header = {*in.u16(), *in.u16(), *in.u16(), *in.u16(), *in.u16(), *in.u16()};
  std::size_t offset = kHeaderSize;
  for (unsigned i = 0; i < message.header.qdcount; ++i) {
    Question question;
    auto end = read_name(bytes, offset, i == 0 ? &question.name : nullptr);
    if (!end)
      return end.error();
    ByteReader fixed(bytes, *end);
    const auto type = fixed.u16();
    const auto qclass = fixed.u16();
    if (!type || !qclass)
      return ParseError{"question runs past the end of the message", offset};
    question.type = *type;
    question.qclass = *qclass;
    if (i == 0)
      message.question = std::move(question);
    offset = fixed.offset();
  }
  message.question_end = offset;
  const unsigned answers = message.header.ancount + message.header.nscount;
  const unsigned records = answers + message.header.arcount;
  for (unsigned i = 0; i < records; ++i) {
    const std::size_t start = offset;
    auto end = read_name(bytes, offset, nullptr);
    if (!end)
      return end.error();
    ByteReader fixed(bytes, *end);
    const auto type = fixed.u16();
    const auto rclass = fixed.u16();
    const auto ttl = fixed.u32();
    const auto rdlength = fixed.u16();
    if (!type || !rclass || !ttl || !rdlength || !fixed.skip(*rdlength))
      return ParseError{"record runs past the end of the message", start};
    offset = fixed.offset();
    if (*type != kTypeOpt)
      continue;
    if (i < answers)
      return ParseError{"OPT record outside the additional section", start};
    if (message.edns)
      return ParseError{"more than one OPT record", start};
    if (*end != start + 1)
      return ParseError{"OPT record with a non-root name", start};
    message.edns = Edns{*rclass, *ttl, start, offset - start};
    message.opt_is_last = i + 1 == records;
  }
  if (offset != bytes.size())
    return ParseError{"bytes after the last record", offset};
  return message;
}

Bytes make_upstream_query(ByteView query, const Message& view, std::uint16_t id) {
  const std::uint32_t dnssec_ok = view.edns ? view.edns->ttl & 0x8000 : 0;
  return header_and_question(query, view, id, view.header.flags, dnssec_ok);
}

bool is_reply_to(const Message& reply, std::uint16_t id, const Question& question) {
  return reply.header.is_response() && reply.header.id == id && reply.header.qdcount == 1
         && reply.question && reply.question->matches(question);
}

std::size_t guest_udp_limit(const Message& guest) {
  if (!guest.edns)
    return kClassicUdpLimit;
  return std::max<std::size_t>(kClassicUdpLimit, guest.edns->udp_size);
}

Bytes make_guest_response(ByteView reply, const Message& reply_view, const Message& guest,
                          Transport transport) {
  Bytes out(reply.begin(), reply.end());
  store_u16(out, 0, guest.header.id);
  bool must_truncate = false;
  if (reply_view.edns) {
    if (!guest.edns) {
      // EDNS0 is hop by hop: a guest that sent no OPT gets none back.
      if (reply_view.opt_is_last) {
        const auto begin = out.begin() + static_cast<std::ptrdiff_t>(reply_view.edns->offset);
        out.erase(begin, begin + static_cast<std::ptrdiff_t>(reply_view.edns->size));
        store_u16(out, kArcountOffset, static_cast<std::uint16_t>(reply_view.header.arcount - 1));
        // A hostile name can run through the OPT's bytes by compression; then cut the answer.
        must_truncate = !intact(out, reply_view);
      } else {
        must_truncate = true;  // records after the OPT may point into it: do not cut
      }
    } else {
      store_u16(out, reply_view.edns->offset + 3, kAdvertisedUdpSize);
      must_truncate = !intact(out, reply_view);  // a hostile name ran through those two bytes
    }
  }
  const std::size_t limit = transport == Transport::kUdp ? guest_udp_limit(guest) : 0xFFFF;
  if (out.size() <= limit && !must_truncate)
    return out;
  std::optional<std::uint32_t> opt_ttl;
  if (guest.edns)
    opt_ttl = reply_view.edns ? reply_view.edns->ttl : guest.edns->ttl & 0x8000;
  return header_and_question(reply, reply_view, guest.header.id,
                             reply_view.header.flags | kFlagTruncated, opt_ttl);
}

Bytes make_error_response(ByteView query, const Message& guest, Rcode rcode) {
  const std::uint16_t flags = static_cast<std::uint16_t>(
      kFlagResponse | (guest.header.flags & 0x7800) | (guest.header.flags & kFlagRecursionDesired)
      | kFlagRecursionAvailable | static_cast<std::uint16_t>(rcode));
  std::optional<std::uint32_t> opt_ttl;
  if (guest.edns)
    opt_ttl = guest.edns->ttl & 0x8000;  // version 0, the guest's DO bit
  return header_and_question(query, guest, guest.header.id, flags, opt_ttl);
}

}  // namespace berth::dhcp::dns
