// The DHCP codec against packets captured from real clients (busybox udhcpc, ISC dhclient) and a
// real server (dnsmasq): see fixtures/record.sh. Plus a table of malformed inputs.

#include "dhcp/dhcp_packet.hpp"

#include <catch2/catch.hpp>

#include "test_util.hpp"

using namespace berth::dhcp;
using berth::MacAddress;
using berth::dhcp::test::fixture;
using boost::asio::ip::make_address_v4;

namespace {

const MacAddress kVmMac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

DhcpPacket parsed(const std::string& name) {
  const Bytes bytes = fixture(name);
  auto packet = parse_dhcp_packet(bytes);
  INFO(name << ": " << (packet ? std::string() : to_string(packet.error())));
  REQUIRE(packet.has_value());
  return *packet;
}

Bytes hex(std::string_view text) {
  Bytes out;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2)
    out.push_back(
        static_cast<std::uint8_t>(std::stoi(std::string(text.substr(i, 2)), nullptr, 16)));
  return out;
}

// A minimal valid DISCOVER followed by `options` (raw bytes, without END).
Bytes discover_with(const Bytes& options) {
  DhcpPacket packet;
  packet.xid = 0x01020304;
  packet.set_ethernet_address(kVmMac);
  Bytes bytes = *serialize_dhcp_packet(packet, 1500);
  bytes.resize(240);
  put_bytes(bytes, options);
  bytes.push_back(255);
  return bytes;
}

}  // namespace

TEST_CASE("dhcp: every captured packet parses and serializes back to the same bytes",
          "[dhcp][codec]") {
  for (const char* name :
       {"udhcpc-1-discover.bin", "udhcpc-2-offer.bin", "udhcpc-3-request.bin", "udhcpc-4-ack.bin",
        "udhcpc-5-request.bin", "udhcpc-6-ack.bin", "udhcpc-7-release.bin",
        "dhclient-1-discover.bin", "dhclient-2-offer.bin", "dhclient-3-request.bin",
        "dhclient-4-ack.bin", "dhclient-5-request.bin", "dhclient-6-ack.bin",
        "dhclient-7-release.bin"}) {
    INFO(name);
    const Bytes bytes = fixture(name);
    const DhcpPacket packet = parsed(name);
    CHECK(packet.ethernet_address() == kVmMac);
    const auto again = serialize_dhcp_packet(packet, 1500);
    REQUIRE(again);
    CHECK(*again == bytes);
  }
}

TEST_CASE("dhcp: udhcpc's DISCOVER: what the server reads from it", "[dhcp][codec]") {
  const DhcpPacket p = parsed("udhcpc-1-discover.bin");
  CHECK(p.op == BootOp::kRequest);
  CHECK(p.options.message_type() == MessageType::kDiscover);
  CHECK(p.xid == 0x7b747621);
  CHECK_FALSE(p.broadcast());
  CHECK(p.options.u16(Option::kMaxMessageSize) == 576);
  CHECK(*p.options.find(Option::kParameterRequestList) == Bytes{1, 3, 6, 12, 15, 28, 42});
  CHECK(*p.options.find(Option::kClientIdentifier) == hex("01525400123456"));
  CHECK(p.options.text(Option::kHostName) == "vm-0");
  CHECK(p.options.text(Option::kVendorClass) == "udhcp 1.35.0");
}

TEST_CASE("dhcp: the REQUEST states as real clients send them", "[dhcp][codec]") {
  SECTION("udhcpc selecting: 50 and 54, ciaddr 0") {
    const DhcpPacket p = parsed("udhcpc-3-request.bin");
    CHECK(p.options.ipv4(Option::kServerIdentifier) == make_address_v4("192.168.254.1"));
    CHECK(p.options.ipv4(Option::kRequestedAddress) == make_address_v4("192.168.254.2"));
    CHECK(p.ciaddr.is_unspecified());
  }
  SECTION("udhcpc renewing: ciaddr, no 50 or 54") {
    const DhcpPacket p = parsed("udhcpc-5-request.bin");
    CHECK(p.ciaddr == make_address_v4("192.168.254.2"));
    CHECK_FALSE(p.options.contains(Option::kServerIdentifier));
    CHECK_FALSE(p.options.contains(Option::kRequestedAddress));
  }
  SECTION("dhclient init-reboot: 50 without 54") {
    const DhcpPacket p = parsed("dhclient-5-request.bin");
    CHECK(p.options.ipv4(Option::kRequestedAddress) == make_address_v4("192.168.254.2"));
    CHECK_FALSE(p.options.contains(Option::kServerIdentifier));
    CHECK(p.ciaddr.is_unspecified());
  }
  SECTION("releases carry ciaddr and 54") {
    for (const char* name : {"udhcpc-7-release.bin", "dhclient-7-release.bin"}) {
      const DhcpPacket p = parsed(name);
      CHECK(p.options.message_type() == MessageType::kRelease);
      CHECK(p.ciaddr == make_address_v4("192.168.254.2"));
      CHECK(p.options.ipv4(Option::kServerIdentifier) == make_address_v4("192.168.254.1"));
    }
  }
}

TEST_CASE("dhcp: dnsmasq's OFFER: a real server's options, 119 with compression", "[dhcp][codec]") {
  const DhcpPacket p = parsed("dhclient-2-offer.bin");
  CHECK(p.op == BootOp::kReply);
  CHECK(p.options.message_type() == MessageType::kOffer);
  CHECK(p.yiaddr == make_address_v4("192.168.254.2"));
  CHECK(p.options.u32(Option::kLeaseTime) == 120);
  CHECK(p.options.ipv4(Option::kSubnetMask) == make_address_v4("255.255.255.252"));
  CHECK(p.options.u16(Option::kInterfaceMtu) == 1450);
  const auto search = decode_domain_search(*p.options.find(Option::kDomainSearch));
  REQUIRE(search);
  CHECK(*search
        == std::vector<std::string>{"default.svc.cluster.local", "svc.cluster.local",
                                    "cluster.local"});
}

TEST_CASE("dhcp: RFC 3396: repeated options are concatenated, long ones split", "[dhcp][codec]") {
  // Option 119 in two pieces: "\x07example" + "\x03org\x00".
  const Bytes bytes = discover_with(hex("3501017708076578616d706c657705036f726700"));
  auto p = parse_dhcp_packet(bytes);
  REQUIRE(p);
  CHECK(decode_domain_search(*p->options.find(Option::kDomainSearch))
        == std::vector<std::string>{"example.org"});

  DhcpPacket big;
  big.options.set_u8(Option::kMessageType, 2);
  big.options.set(code(Option::kVendorClass), Bytes(300, 'v'));
  const auto wire = serialize_dhcp_packet(big, 1500);
  REQUIRE(wire);
  CHECK((*wire)[243] == 60);
  CHECK((*wire)[244] == 255);
  CHECK((*wire)[245 + 255] == 60);
  CHECK((*wire)[246 + 255] == 45);
  const auto back = parse_dhcp_packet(*wire);
  REQUIRE(back);
  CHECK(back->options == big.options);
}

TEST_CASE("dhcp: option overload (52) pulls options from file and sname", "[dhcp][codec]") {
  Bytes bytes =
      discover_with(hex("35010134010"
                        "3"));
  // file (offset 108) holds hostname "vm", sname (offset 44) holds MTU 1400.
  const Bytes file_options = hex("0c02766dff");
  const Bytes sname_options = hex("1a020578ff");
  std::copy(file_options.begin(), file_options.end(), bytes.begin() + 108);
  std::copy(sname_options.begin(), sname_options.end(), bytes.begin() + 44);
  const auto p = parse_dhcp_packet(bytes);
  REQUIRE(p);
  CHECK(p->options.text(Option::kHostName) == "vm");
  CHECK(p->options.u16(Option::kInterfaceMtu) == 1400);
  CHECK_FALSE(p->options.contains(Option::kOverload));
  CHECK(p->file == std::array<std::uint8_t, 128>{});
  const auto again = parse_dhcp_packet(*serialize_dhcp_packet(*p, 576));
  REQUIRE(again.has_value());
  CHECK(*again == *p);
}

TEST_CASE("dhcp: serializing pads to 300 bytes and respects the size limit", "[dhcp][codec]") {
  DhcpPacket p;
  p.options.set_u8(Option::kMessageType, 2);
  const auto small = serialize_dhcp_packet(p, 548);
  REQUIRE(small);
  CHECK(small->size() == 300);
  CHECK((*small)[243] == 255);
  p.options.set(code(Option::kVendorClass), Bytes(400, 'x'));
  CHECK_FALSE(serialize_dhcp_packet(p, 548));
  CHECK(serialize_dhcp_packet(p, 1472));
}

TEST_CASE("dhcp: malformed packets are errors, never crashes", "[dhcp][codec][malformed]") {
  const Bytes valid = fixture("udhcpc-1-discover.bin");
  auto with = [&](std::size_t offset, Bytes patch) {
    Bytes b = valid;
    std::copy(patch.begin(), patch.end(), b.begin() + static_cast<std::ptrdiff_t>(offset));
    return b;
  };
  struct Case {
    const char* what;
    Bytes bytes;
    std::string_view reason;
  };
  const std::vector<Case> cases = {
      {"empty", {}, "shorter than the 240-byte DHCP header"},
      {"239 bytes", Bytes(valid.begin(), valid.begin() + 239), "shorter than the 240-byte"},
      {"op 3", with(0, {3}), "op is neither"},
      {"hlen 17", with(2, {17}), "hlen over 16"},
      {"bad cookie", with(236, {99, 130, 83, 98}), "magic cookie"},
      {"no length byte", discover_with({}) /*patched below*/, ""},
      {"option past the end", Bytes(valid.begin(), valid.begin() + 245), "past the end"},
      {"length byte missing", Bytes(valid.begin(), valid.begin() + 244), "length missing"},
      {"type length 2", discover_with(hex("35020101")), "must be one byte, 1..8"},
      {"type 9", discover_with(hex("350109")), "must be one byte, 1..8"},
      {"type 0", discover_with(hex("350100")), "must be one byte, 1..8"},
      {"requested address length 3", discover_with(hex("3501013203010203")), "length must be 4"},
      {"routers length 5", discover_with(hex("3501010305c0a8fe0101")), "multiple of 4"},
      {"client id length 1", discover_with(hex("3501013d0101")), "at least 2"},
      {"empty host name", discover_with(hex("3501010c00")), "must not be empty"},
      {"MTU length 1", discover_with(hex("3501011a0105")), "length must be 2"},
      {"overload 4",
       discover_with(hex("3501013401"
                         "04")),
       "1..3"},
      {"119 forward pointer", discover_with(hex("3501017702c002")), "bad domain list"},
      {"119 pointer loop", discover_with(hex("3501017702c000")), "bad domain list"},
      {"121 prefix 33", discover_with(hex("3501017905210a000001")), "bad route list"},
      {"121 cut short", discover_with(hex("350101790318c0a8")), "bad route list"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    Bytes bytes = c.bytes;
    if (std::string_view(c.what) == "no length byte") {
      bytes.resize(240);
      bytes.push_back(53);  // a code and nothing after it
    }
    const auto result = parse_dhcp_packet(bytes);
    REQUIRE_FALSE(result.has_value());
    INFO(to_string(result.error()));
    CHECK(to_string(result.error()).find(c.reason) != std::string::npos);
  }
}

TEST_CASE("dhcp: every prefix and every single-byte corruption of a real packet is handled",
          "[dhcp][codec][malformed]") {
  for (const char* name : {"udhcpc-1-discover.bin", "dhclient-2-offer.bin"}) {
    const Bytes bytes = fixture(name);
    for (std::size_t n = 0; n <= bytes.size(); ++n)
      (void)parse_dhcp_packet(ByteView(bytes).first(n));
    for (std::size_t i = 236; i < bytes.size(); ++i) {
      for (const std::uint8_t value : {0x00, 0x01, 0x34, 0x77, 0xc0, 0xff}) {
        Bytes corrupt = bytes;
        corrupt[i] = value;
        if (auto p = parse_dhcp_packet(corrupt)) {
          // Whatever parsed must serialize and parse back to the same value.
          const auto again = serialize_dhcp_packet(*p, 65535);
          REQUIRE(again);
          const auto back = parse_dhcp_packet(*again);
          REQUIRE(back);
          CHECK(back->options == p->options);
        }
      }
    }
  }
}
