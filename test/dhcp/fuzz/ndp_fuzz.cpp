// libFuzzer target: the router solicitation and advertisement codec on arbitrary bytes. What
// parses as an advertisement serializes and parses back to the same value.

#include <cstddef>
#include <cstdint>

#include "dhcp/v6/ndp.hpp"
#include "fuzz_check.hpp"

using namespace berth::dhcp;
using namespace berth::dhcp::v6;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteView input(data, size);
  (void)parse_router_solicitation(input);
  const auto advert = parse_router_advertisement(input);
  if (!advert)
    return 0;
  const auto bytes = serialize_router_advertisement(*advert);
  FUZZ_CHECK(bytes.has_value());
  const auto again = parse_router_advertisement(*bytes);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(*again == *advert);
  return 0;
}
