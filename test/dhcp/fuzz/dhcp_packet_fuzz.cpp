// libFuzzer target: the DHCP codec and the responder on arbitrary bytes. Beyond "no crash": what
// parses serializes and parses back to the same value, and every reply the responder encodes
// parses and fits the client's limit.

#include <boost/asio/ip/address_v4.hpp>
#include <cstddef>
#include <cstdint>

#include "dhcp/dhcp_packet.hpp"
#include "dhcp/dhcp_responder.hpp"
#include "fuzz_check.hpp"
#include "test/dhcp/vm_config.hpp"

using namespace berth::dhcp;

namespace {

const DhcpResponder& responder() {
  static const DhcpResponder instance([] {
    DhcpConfig config = test::vm_dhcp_config();
    config.classless_routes = ClasslessRoutes::kSend;
    return config;
  }());
  return instance;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteView input(data, size);
  (void)decode_domain_search(input);
  (void)decode_classless_routes(input);

  auto packet = parse_dhcp_packet(input);
  if (!packet)
    return 0;
  const auto bytes = serialize_dhcp_packet(*packet, 1 << 20);
  FUZZ_CHECK(bytes.has_value());
  const auto again = parse_dhcp_packet(*bytes);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(*again == *packet);

  // Pretend the packet came from the VM, so the responder goes past the MAC check.
  packet->set_ethernet_address({0x52, 0x54, 0x00, 0x12, 0x34, 0x56});
  const Decision decision = responder().decide(*packet);
  if (decision.reply) {
    const auto encoded = responder().encode(decision);
    FUZZ_CHECK(encoded.has_value() || packet->options.find(Option::kClientIdentifier));
    if (encoded) {
      FUZZ_CHECK(encoded->payload.size() >= kMinimumPayloadSize);
      FUZZ_CHECK(encoded->payload.size() <= decision.max_payload);
      const auto reply = parse_dhcp_packet(encoded->payload);
      FUZZ_CHECK(reply.has_value());
      FUZZ_CHECK(reply->options.message_type().has_value());
    }
  }
  return 0;
}
