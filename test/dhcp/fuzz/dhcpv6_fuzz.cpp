// libFuzzer target: the DHCPv6 codec and responder on arbitrary bytes. Beyond "no crash": what
// parses serializes to the same bytes, every IA decodes or is refused, and every reply the
// responder makes parses again and answers the same transaction.

#include <boost/asio/ip/address_v6.hpp>
#include <cstddef>
#include <cstdint>

#include "dhcp/v6/dhcpv6_message.hpp"
#include "dhcp/v6/dhcpv6_responder.hpp"
#include "fuzz_check.hpp"

using namespace berth::dhcp;
using namespace berth::dhcp::v6;

namespace {

const Dhcpv6Responder& responder() {
  static const Dhcpv6Responder instance([] {
    Dhcpv6Config config;
    config.interface = "br0";
    config.server_duid = {0x00, 0x03, 0x00, 0x01, 0x02, 0xb3, 0x00, 0x00, 0x00, 0x01};
    config.client_address = boost::asio::ip::make_address_v6("fd00:b3::5");
    config.prefix = boost::asio::ip::make_address_v6("fd00:b3::");
    config.dns_servers = {boost::asio::ip::make_address_v6("fd00:b3::1")};
    config.search_domains = {"default.svc.cluster.local", "cluster.local"};
    return config;
  }());
  return instance;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteView input(data, size);
  (void)decode_domain_list(input);
  (void)decode_ia(input);
  (void)decode_ia_address(input);

  const auto message = parse_message(input);
  if (!message)
    return 0;
  FUZZ_CHECK(serialize_message(*message) == Bytes(input.begin(), input.end()));
  for (const ByteView value : message->options.find_all(Option::kIaNa))
    if (const auto ia = decode_ia(value))
      FUZZ_CHECK(encode_ia(*ia) == Bytes(value.begin(), value.end()));

  const Decision decision = responder().decide(*message);
  if (decision.reply) {
    const auto reply = parse_message(serialize_message(*decision.reply));
    FUZZ_CHECK(reply.has_value());
    FUZZ_CHECK(reply->transaction_id == message->transaction_id);
    FUZZ_CHECK(reply->options.contains(Option::kServerId));
  }
  return 0;
}
