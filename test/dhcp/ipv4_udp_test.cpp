// Checksums of the raw frames the DHCP server sends.

#include "dhcp/ipv4_udp.hpp"

#include <catch2/catch.hpp>

#include "test_util.hpp"

using namespace berth::dhcp;
using boost::asio::ip::make_address_v4;

TEST_CASE("dhcp: the RFC 1071 example checksum", "[dhcp][ipv4]") {
  // RFC 1071 §3: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2; the checksum its complement.
  const Bytes data = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  CHECK(internet_checksum(data) == 0x220d);
  const Bytes odd = {0x01};
  CHECK(internet_checksum(odd) == 0xfeff);
}

TEST_CASE("dhcp: an OFFER as a datagram: headers and both checksums verify", "[dhcp][ipv4]") {
  const Bytes payload = berth::dhcp::test::fixture("udhcpc-2-offer.bin");
  const Bytes datagram = build_ipv4_udp(
      {make_address_v4("192.168.254.1"), 67, make_address_v4("192.168.254.2"), 68}, payload);
  REQUIRE(datagram.size() == 20 + 8 + payload.size());
  CHECK(datagram[0] == 0x45);
  CHECK(load_u16(datagram, 2) == datagram.size());
  CHECK(datagram[8] == 64);
  CHECK(datagram[9] == 17);
  CHECK(Bytes(datagram.begin() + 12, datagram.begin() + 20)
        == Bytes{192, 168, 254, 1, 192, 168, 254, 2});
  CHECK(internet_checksum(ByteView(datagram).first(20)) == 0);  // a valid header sums to ffff
  CHECK(load_u16(datagram, 20) == 67);
  CHECK(load_u16(datagram, 22) == 68);
  CHECK(load_u16(datagram, 24) == 8 + payload.size());
  // Receiver's check: pseudo-header + UDP header + payload sums to ffff.
  Bytes check = {192, 168, 254, 1, 192, 168, 254, 2, 0, 17};
  put_u16(check, static_cast<std::uint16_t>(8 + payload.size()));
  check.insert(check.end(), datagram.begin() + 20, datagram.end());
  CHECK(internet_checksum(check) == 0);
  CHECK(load_u16(datagram, 26) != 0);
  CHECK(Bytes(datagram.begin() + 28, datagram.end()) == payload);
}

TEST_CASE("dhcp: a UDP checksum that computes to zero is sent as ffff", "[dhcp][ipv4]") {
  // Search for a two-byte payload that makes the checksum 0 (transmitted as ffff, RFC 768).
  const UdpAddressing addressing{make_address_v4("10.0.0.1"), 67, make_address_v4("10.0.0.2"), 68};
  bool found = false;
  for (unsigned v = 0; v <= 0xFFFF && !found; ++v) {
    Bytes payload;
    put_u16(payload, static_cast<std::uint16_t>(v));
    const Bytes datagram = build_ipv4_udp(addressing, payload);
    if (load_u16(datagram, 26) == 0xFFFF) {
      found = true;
      Bytes check = {10, 0, 0, 1, 10, 0, 0, 2, 0, 17, 0, 10};
      check.insert(check.end(), datagram.begin() + 20, datagram.end());
      CHECK((internet_checksum(check) == 0 || internet_checksum(check) == 0xFFFF));
    }
    CHECK(load_u16(datagram, 26) != 0);
  }
  CHECK(found);
}
