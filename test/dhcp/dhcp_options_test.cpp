// The option table and the encodings of options 119 and 121.

#include "dhcp/dhcp_options.hpp"

#include <catch2/catch.hpp>
#include <set>

#include "test_util.hpp"

using namespace berth::dhcp;
using boost::asio::ip::make_address_v4;

TEST_CASE("dhcp: the option table: sorted, unique, with the codes the server uses",
          "[dhcp][options]") {
  std::set<std::string_view> names;
  int previous = -1;
  for (const auto& def : option_defs()) {
    CHECK(def.code > previous);
    previous = def.code;
    CHECK(names.insert(def.name).second);
  }
  for (const Option option :
       {Option::kSubnetMask, Option::kRouter, Option::kDomainNameServer, Option::kHostName,
        Option::kDomainName, Option::kInterfaceMtu, Option::kLeaseTime, Option::kMessageType,
        Option::kServerIdentifier, Option::kRenewalTime, Option::kRebindingTime,
        Option::kClientIdentifier, Option::kDomainSearch, Option::kClasslessRoutes})
    CHECK(find_option_def(code(option)) != nullptr);
  CHECK(find_option_def(53)->name == "message-type");
  CHECK(find_option_def(200) == nullptr);
  CHECK_FALSE(check_option_value(200, Bytes{1, 2, 3}));  // unknown codes pass as bytes
}

TEST_CASE("dhcp: option 119: the RFC 3397 example, with and without compression",
          "[dhcp][options]") {
  const std::vector<std::string> domains = {"eng.apple.com.", "marketing.apple.com."};
  const Bytes compressed = {3, 'e', 'n', 'g', 5,   'a', 'p', 'p', 'l', 'e', 3,   'c',  'o', 'm',
                            0, 9,   'm', 'a', 'r', 'k', 'e', 't', 'i', 'n', 'g', 0xC0, 0x04};
  CHECK(encode_domain_search(domains, NameCompression::kOn) == compressed);
  const auto plain = encode_domain_search(domains, NameCompression::kOff);
  REQUIRE(plain);
  CHECK(plain->size() == 15 + 21);
  const std::vector<std::string> expected = {"eng.apple.com", "marketing.apple.com"};
  CHECK(decode_domain_search(compressed) == expected);
  CHECK(decode_domain_search(*plain) == expected);
}

TEST_CASE("dhcp: option 119: Kubernetes search lists round-trip, compression is case-blind",
          "[dhcp][options]") {
  const std::vector<std::string> k8s = {"default.svc.cluster.local", "svc.cluster.local",
                                        "cluster.local", "Example.ORG", "example.org"};
  const auto encoded = encode_domain_search(k8s, NameCompression::kOn);
  REQUIRE(encoded);
  CHECK(encoded->size() == 27 + 2 + 2 + 13 + 2);
  const auto decoded = decode_domain_search(*encoded);
  REQUIRE(decoded);
  CHECK((*decoded)[0] == "default.svc.cluster.local");
  CHECK((*decoded)[2] == "cluster.local");
  CHECK((*decoded)[4] == "Example.ORG");  // the first spelling is the one written
}

TEST_CASE("dhcp: option 119: invalid names are refused", "[dhcp][options]") {
  for (const std::string& bad : std::vector<std::string>{
           "", ".", "a..b", std::string(64, 'a') + ".com", std::string(250, 'a') + ".com",
           std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "."
               + std::string(63, 'd')}) {
    INFO(bad);
    const std::string one[] = {bad};
    CHECK_FALSE(encode_domain_search(one, NameCompression::kOff));
  }
  const std::string longest[] = {std::string(63, 'a') + "." + std::string(63, 'b') + "."
                                 + std::string(63, 'c') + "." + std::string(61, 'd')};
  CHECK(encode_domain_search(longest, NameCompression::kOff));
}

TEST_CASE("dhcp: option 119: malformed data", "[dhcp][options][malformed]") {
  const std::vector<Bytes> bad = {
      {0},                              // empty name
      {3, 'c', 'o'},                    // label past the end
      {3, 'c', 'o', 'm'},               // no terminator
      {0xC0},                           // cut pointer
      {0xC0, 0x00},                     // pointer to itself
      {1, 'a', 0, 0xC0, 0x05},          // forward pointer
      {0x40, 'a', 0},                   // extended label type
      {1, 'a', 0, 1, 'b', 0xC0, 0x03},  // pointer into the current name: a loop
  };
  for (const auto& data : bad) {
    INFO(data.size());
    CHECK_FALSE(decode_domain_search(data));
  }
  Bytes too_long;
  for (int i = 0; i < 5; ++i) {
    too_long.push_back(63);
    too_long.insert(too_long.end(), 63, 'x');
  }
  too_long.push_back(0);
  CHECK_FALSE(decode_domain_search(too_long));
}

TEST_CASE("dhcp: option 121: RFC 3442 encoding", "[dhcp][options]") {
  const std::vector<ClasslessRoute> routes = {
      {make_address_v4("10.0.0.0"), 8, make_address_v4("1.2.3.4")},
      {make_address_v4("192.168.254.0"), 30, make_address_v4("0.0.0.0")},
      {make_address_v4("0.0.0.0"), 0, make_address_v4("192.168.254.1")},
  };
  const Bytes expected = {8, 10, 1, 2, 3, 4, 30, 192, 168, 254, 0, 0, 0, 0, 0, 0, 192, 168, 254, 1};
  CHECK(encode_classless_routes(routes) == expected);
  CHECK(decode_classless_routes(expected) == routes);
  const ClasslessRoute bad[] = {{make_address_v4("10.0.0.0"), 33, make_address_v4("1.2.3.4")}};
  CHECK_FALSE(encode_classless_routes(bad));
  CHECK_FALSE(decode_classless_routes(Bytes{}));
  CHECK_FALSE(decode_classless_routes(Bytes{24, 10, 0, 0, 1, 2, 3}));
}

TEST_CASE("dhcp: the option container keeps order, replaces in place, reads typed values",
          "[dhcp][options]") {
  DhcpOptions options;
  options.set_u8(Option::kMessageType, 1);
  options.set_ipv4(Option::kServerIdentifier, make_address_v4("192.168.254.1"));
  options.set_u32(Option::kLeaseTime, 3600);
  options.set_u8(Option::kMessageType, 5);
  REQUIRE(options.entries().size() == 3);
  CHECK(options.entries()[0].first == 53);
  CHECK(options.message_type() == MessageType::kAck);
  CHECK(options.u32(Option::kLeaseTime) == 3600);
  CHECK_FALSE(options.u16(Option::kLeaseTime));  // wrong width
  CHECK(options.ipv4(Option::kServerIdentifier) == make_address_v4("192.168.254.1"));
  options.erase(code(Option::kLeaseTime));
  CHECK_FALSE(options.contains(Option::kLeaseTime));
  options.set_text(Option::kHostName, "vm");
  options.append(code(Option::kHostName), Bytes{'-', '0', 0});
  CHECK(options.text(Option::kHostName) == "vm-0");  // a trailing NUL is tolerated
}
