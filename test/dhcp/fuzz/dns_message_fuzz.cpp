// libFuzzer target: the DNS codec and the forwarder's rewrites on arbitrary bytes, taken both as a
// guest's query and as an upstream's reply. Every rewrite must parse again, and a UDP answer to
// the guest must fit what the guest allowed.

#include <cstddef>
#include <cstdint>

#include "dhcp/dns/dns_message.hpp"
#include "fuzz_check.hpp"

using namespace berth::dhcp;
using namespace berth::dhcp::dns;

namespace {

Message guest_query(std::optional<std::uint16_t> edns_size) {
  // "vm.test A" from a guest, with or without an OPT record.
  Bytes q = {0x12, 0x34, 0x01, 0x00, 0,   1,
             0,    0,    0,    0,    0,   static_cast<std::uint8_t>(edns_size ? 1 : 0),
             2,    'v',  'm',  4,    't', 'e',
             's',  't',  0,    0,    1,   0,
             1};
  if (edns_size) {
    const Bytes opt = {0,
                       0,
                       41,
                       static_cast<std::uint8_t>(*edns_size >> 8),
                       static_cast<std::uint8_t>(*edns_size),
                       0,
                       0,
                       0,
                       0,
                       0,
                       0};
    q.insert(q.end(), opt.begin(), opt.end());
  }
  return *parse_message(q);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Message guests[] = {guest_query(std::nullopt), guest_query(512), guest_query(1232),
                                   guest_query(4096)};
  const ByteView input(data, size);
  const auto message = parse_message(input);
  if (!message)
    return 0;

  if (!message->header.is_response() && message->question) {
    const Bytes upstream = make_upstream_query(input, *message, 0xBEEF);
    const auto parsed = parse_message(upstream);
    FUZZ_CHECK(parsed.has_value());
    FUZZ_CHECK(parsed->header.id == 0xBEEF);
    FUZZ_CHECK(parsed->edns.has_value() || message->header.arcount == 0xFFFF);
    const auto error = parse_message(make_error_response(input, *message, Rcode::kServFail));
    FUZZ_CHECK(error.has_value());
    FUZZ_CHECK(error->header.rcode() == 2);
  }

  for (const Message& guest : guests) {
    for (const Transport transport : {Transport::kUdp, Transport::kTcp}) {
      const Bytes out = make_guest_response(input, *message, guest, transport);
      const auto parsed = parse_message(out);
      FUZZ_CHECK(parsed.has_value());
      FUZZ_CHECK(parsed->header.id == guest.header.id);
      FUZZ_CHECK(parsed->edns.has_value() <= guest.edns.has_value());
      if (transport == Transport::kUdp && message->header.qdcount == 1)
        FUZZ_CHECK(out.size() <= guest_udp_limit(guest));
    }
  }
  return 0;
}
