// Whole DHCP exchanges in-process: the responder fed with packets captured from real clients.

#include "dhcp/dhcp_responder.hpp"

#include <catch2/catch.hpp>

#include "test/dhcp/vm_config.hpp"
#include "test_util.hpp"

using namespace berth::dhcp;
using berth::MacAddress;
using berth::dhcp::test::fixture;
using berth::dhcp::test::vm_dhcp_config;
using boost::asio::ip::address_v4;
using boost::asio::ip::make_address_v4;

namespace {

const MacAddress kVmMac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

DhcpPacket packet(const std::string& name) {
  auto p = parse_dhcp_packet(fixture(name));
  REQUIRE(p);
  return *p;
}

// The reply as a client would see it: encoded, then parsed again.
DhcpPacket on_the_wire(const DhcpResponder& responder, const Decision& decision) {
  const auto encoded = responder.encode(decision);
  REQUIRE(encoded);
  CHECK_FALSE(encoded->trimmed);
  CHECK(encoded->payload.size() >= 300);
  CHECK(encoded->payload.size() <= decision.max_payload);
  auto p = parse_dhcp_packet(encoded->payload);
  REQUIRE(p);
  return *p;
}

std::vector<std::uint8_t> option_codes(const DhcpPacket& p) {
  std::vector<std::uint8_t> codes;
  for (const auto& entry : p.options.entries())
    codes.push_back(entry.first);
  return codes;
}

void check_configuration(const DhcpPacket& reply) {
  CHECK(reply.options.ipv4(Option::kSubnetMask) == make_address_v4("255.255.255.252"));
  CHECK(*reply.options.find(Option::kRouter) == Bytes{192, 168, 254, 1});
  CHECK(*reply.options.find(Option::kDomainNameServer) == Bytes{192, 168, 254, 1});
  CHECK(reply.options.text(Option::kHostName) == "vm-0");
  CHECK(reply.options.text(Option::kDomainName) == "default.svc.cluster.local");
  CHECK(reply.options.u16(Option::kInterfaceMtu) == 1450);
  CHECK(reply.options.ipv4(Option::kBroadcastAddress) == make_address_v4("192.168.254.3"));
  CHECK(decode_domain_search(*reply.options.find(Option::kDomainSearch))
        == std::vector<std::string>{"default.svc.cluster.local", "svc.cluster.local",
                                    "cluster.local"});
  // Never echoed (RFC 2131 Table 3).
  for (const Option never : {Option::kRequestedAddress, Option::kParameterRequestList,
                             Option::kMaxMessageSize, Option::kVendorClass})
    CHECK_FALSE(reply.options.contains(never));
}

void check_lease(const DhcpPacket& reply) {
  CHECK(reply.yiaddr == make_address_v4("192.168.254.2"));
  CHECK(reply.options.u32(Option::kLeaseTime) == 3600);
  CHECK(reply.options.u32(Option::kRenewalTime) == 1800);
  CHECK(reply.options.u32(Option::kRebindingTime) == 3150);
  CHECK(reply.options.ipv4(Option::kServerIdentifier) == make_address_v4("192.168.254.1"));
}

}  // namespace

TEST_CASE("dhcp: udhcpc: DISCOVER, OFFER, REQUEST, ACK, renew, release", "[dhcp][responder]") {
  const DhcpResponder responder(vm_dhcp_config());

  const DhcpPacket discover = packet("udhcpc-1-discover.bin");
  const Decision offer = responder.decide(discover);
  REQUIRE(offer.action == Action::kOffer);
  CHECK(offer.transition == LeaseTransition::kNone);
  CHECK(offer.max_payload == 548);  // udhcpc's option 57 says 576
  CHECK(offer.destination.kind == DestinationKind::kClientUnconfigured);
  CHECK(offer.destination.address == make_address_v4("192.168.254.2"));
  CHECK(offer.destination.mac == kVmMac);
  const DhcpPacket o = on_the_wire(responder, offer);
  CHECK(o.op == BootOp::kReply);
  CHECK(o.xid == discover.xid);
  CHECK(o.chaddr == discover.chaddr);
  CHECK(o.options.message_type() == MessageType::kOffer);
  check_lease(o);
  check_configuration(o);
  // 61 echoed byte for byte (RFC 6842).
  CHECK(*o.options.find(Option::kClientIdentifier)
        == *discover.options.find(Option::kClientIdentifier));
  // 53, 54, 51, 58, 59 first; then udhcpc's request list order (1 3 6 12 15 28), then the rest.
  const auto codes = option_codes(o);
  REQUIRE(codes.size() >= 11);
  CHECK(std::vector<std::uint8_t>(codes.begin(), codes.begin() + 11)
        == std::vector<std::uint8_t>{53, 54, 51, 58, 59, 1, 3, 6, 12, 15, 28});

  const Decision ack = responder.decide(packet("udhcpc-3-request.bin"));
  REQUIRE(ack.action == Action::kAck);
  CHECK(ack.transition == LeaseTransition::kBound);
  const DhcpPacket a = on_the_wire(responder, ack);
  CHECK(a.options.message_type() == MessageType::kAck);
  check_lease(a);
  check_configuration(a);

  const Decision renew = responder.decide(packet("udhcpc-5-request.bin"));
  REQUIRE(renew.action == Action::kAck);
  CHECK(renew.transition == LeaseTransition::kRenewed);
  CHECK(renew.destination.kind == DestinationKind::kClient);
  CHECK(renew.destination.address == make_address_v4("192.168.254.2"));
  CHECK(on_the_wire(responder, renew).ciaddr == make_address_v4("192.168.254.2"));

  const Decision release = responder.decide(packet("udhcpc-7-release.bin"));
  CHECK(release.action == Action::kRelease);
  CHECK_FALSE(release.reply);
}

TEST_CASE("dhcp: dhclient: DORA, INIT-REBOOT, release", "[dhcp][responder]") {
  const DhcpResponder responder(vm_dhcp_config());
  const Decision offer = responder.decide(packet("dhclient-1-discover.bin"));
  REQUIRE(offer.action == Action::kOffer);
  CHECK(offer.max_payload == 548);  // no option 57: 576
  CHECK_FALSE(on_the_wire(responder, offer).options.contains(Option::kClientIdentifier));
  CHECK(responder.decide(packet("dhclient-3-request.bin")).action == Action::kAck);
  const Decision reboot = responder.decide(packet("dhclient-5-request.bin"));
  REQUIRE(reboot.action == Action::kAck);
  CHECK(reboot.transition == LeaseTransition::kBound);
  check_configuration(on_the_wire(responder, reboot));
  CHECK(responder.decide(packet("dhclient-7-release.bin")).action == Action::kRelease);
}

TEST_CASE("dhcp: NAK: broadcast, with 54 and a message, without 51 or yiaddr",
          "[dhcp][responder]") {
  const DhcpResponder responder(vm_dhcp_config());
  SECTION("init-reboot for another address (the VM moved from another network)") {
    DhcpPacket request = packet("dhclient-5-request.bin");
    request.options.set_ipv4(Option::kRequestedAddress, make_address_v4("10.0.0.9"));
    const Decision nak = responder.decide(request);
    REQUIRE(nak.action == Action::kNak);
    CHECK(nak.destination.kind == DestinationKind::kBroadcast);
    CHECK(nak.destination.address == address_v4::broadcast());
    CHECK(nak.destination.mac == MacAddress{0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
    const DhcpPacket n = on_the_wire(responder, nak);
    CHECK(n.options.message_type() == MessageType::kNak);
    CHECK(n.options.ipv4(Option::kServerIdentifier) == make_address_v4("192.168.254.1"));
    CHECK_FALSE(n.options.contains(Option::kLeaseTime));
    CHECK_FALSE(n.options.contains(Option::kSubnetMask));
    CHECK(n.yiaddr.is_unspecified());
    CHECK(n.options.text(Option::kMessage) == "requested 10.0.0.9, the lease is 192.168.254.2");
  }
  SECTION("selecting us with the wrong address") {
    DhcpPacket request = packet("udhcpc-3-request.bin");
    request.options.set_ipv4(Option::kRequestedAddress, make_address_v4("192.168.254.3"));
    CHECK(responder.decide(request).action == Action::kNak);
  }
  SECTION("renewing an address that is not the lease") {
    DhcpPacket request = packet("udhcpc-5-request.bin");
    request.ciaddr = make_address_v4("192.168.254.3");
    CHECK(responder.decide(request).action == Action::kNak);
  }
}

TEST_CASE("dhcp: what is ignored: other servers, other clients, server messages, BOOTP",
          "[dhcp][responder]") {
  const DhcpResponder responder(vm_dhcp_config());
  DhcpPacket other_server = packet("udhcpc-3-request.bin");
  other_server.options.set_ipv4(Option::kServerIdentifier, make_address_v4("192.168.254.9"));
  CHECK(responder.decide(other_server).action == Action::kIgnoreOtherServer);
  CHECK_FALSE(responder.decide(other_server).reply);

  DhcpPacket stranger = packet("udhcpc-1-discover.bin");
  stranger.set_ethernet_address({0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc});
  const Decision d = responder.decide(stranger);
  CHECK(d.action == Action::kIgnoreForeignClient);
  CHECK(d.why == "DHCPDISCOVER from 52:54:00:aa:bb:cc, not the VM's MAC 52:54:00:12:34:56");
  CHECK_FALSE(d.reply);

  DhcpPacket offer = packet("udhcpc-2-offer.bin");
  CHECK(responder.decide(offer).action == Action::kIgnoreUnsupported);  // a BOOTREPLY
  offer.op = BootOp::kRequest;
  CHECK(responder.decide(offer).action == Action::kIgnoreUnsupported);  // OFFER from a client

  DhcpPacket bootp = packet("udhcpc-1-discover.bin");
  bootp.options = {};
  CHECK(responder.decide(bootp).action == Action::kIgnoreUnsupported);

  DhcpPacket odd = packet("udhcpc-3-request.bin");
  odd.options.erase(code(Option::kServerIdentifier));
  odd.options.erase(code(Option::kRequestedAddress));
  CHECK(responder.decide(odd).action == Action::kIgnoreUnsupported);
}

TEST_CASE("dhcp: DECLINE and INFORM", "[dhcp][responder]") {
  const DhcpResponder responder(vm_dhcp_config());
  DhcpPacket decline = packet("udhcpc-3-request.bin");
  decline.options.set_u8(Option::kMessageType, 4);
  const Decision d = responder.decide(decline);
  CHECK(d.action == Action::kDecline);
  CHECK_FALSE(d.reply);
  CHECK(d.why == "the VM reports 192.168.254.2 already in use on the link");

  DhcpPacket inform = packet("udhcpc-5-request.bin");
  inform.options.set_u8(Option::kMessageType, 8);
  const Decision i = responder.decide(inform);
  REQUIRE(i.action == Action::kAckInform);
  CHECK(i.transition == LeaseTransition::kNone);
  CHECK(i.destination.kind == DestinationKind::kClient);
  const DhcpPacket ack = on_the_wire(responder, i);
  CHECK(ack.options.message_type() == MessageType::kAck);
  CHECK(ack.yiaddr.is_unspecified());
  CHECK(ack.ciaddr == make_address_v4("192.168.254.2"));
  CHECK_FALSE(ack.options.contains(Option::kLeaseTime));
  CHECK_FALSE(ack.options.contains(Option::kRenewalTime));
  check_configuration(ack);
}

TEST_CASE("dhcp: reply destinations (RFC 2131 §4.1)", "[dhcp][responder]") {
  const DhcpResponder responder(vm_dhcp_config());
  DhcpPacket discover = packet("udhcpc-1-discover.bin");
  discover.flags = kBroadcastFlag;
  CHECK(responder.decide(discover).destination.kind == DestinationKind::kBroadcast);
  CHECK(on_the_wire(responder, responder.decide(discover)).broadcast());
}

TEST_CASE("dhcp: a relayed request (giaddr set) is ignored: the VM is directly attached",
          "[dhcp][responder]") {
  const DhcpResponder responder(vm_dhcp_config());
  for (const char* name : {"udhcpc-1-discover.bin", "udhcpc-3-request.bin"}) {
    DhcpPacket relayed = packet(name);
    REQUIRE(responder.decide(relayed).reply);
    relayed.giaddr = make_address_v4("10.9.9.9");
    const Decision d = responder.decide(relayed);
    INFO(name);
    CHECK(d.action == Action::kIgnoreUnsupported);
    CHECK_FALSE(d.reply);
    CHECK(d.transition == LeaseTransition::kNone);
    CHECK(d.why.find("relayed by 10.9.9.9") != std::string::npos);
  }
}

TEST_CASE("dhcp: option 121 when enabled: the default route, last", "[dhcp][responder]") {
  DhcpConfig config = vm_dhcp_config();
  config.classless_routes = ClasslessRoutes::kSend;
  const DhcpResponder responder(config);
  const DhcpPacket o = on_the_wire(responder, responder.decide(packet("udhcpc-1-discover.bin")));
  const auto routes = decode_classless_routes(*o.options.find(Option::kClasslessRoutes));
  REQUIRE(routes);
  REQUIRE_FALSE(routes->empty());
  CHECK(routes->back() == ClasslessRoute{address_v4::any(), 0, make_address_v4("192.168.254.1")});
  CHECK(o.options.contains(Option::kRouter));  // for clients without 121
}

TEST_CASE("dhcp: size limits: option 57 and the MTU, long search lists trimmed",
          "[dhcp][responder]") {
  DhcpConfig config = vm_dhcp_config();
  DhcpPacket discover = packet("udhcpc-1-discover.bin");
  discover.options.set_u16(Option::kMaxMessageSize, 9000);
  CHECK(DhcpResponder(config).decide(discover).max_payload == 1450 - 28);
  discover.options.set_u16(Option::kMaxMessageSize, 300);  // below 576: ignored
  CHECK(DhcpResponder(config).decide(discover).max_payload == 548);

  for (int i = 0; i < 8; ++i)
    config.search_domains.push_back(std::string(50, static_cast<char>('a' + i)) + ".example");
  const DhcpResponder responder(config);
  discover.options.erase(code(Option::kMaxMessageSize));
  const Decision offer = responder.decide(discover);
  const auto encoded = responder.encode(offer);
  REQUIRE(encoded);
  CHECK(encoded->trimmed);
  CHECK(encoded->payload.size() <= 548);
  const auto o = parse_dhcp_packet(encoded->payload);
  REQUIRE(o);
  check_lease(*o);
  const auto search = decode_domain_search(*o->options.find(Option::kDomainSearch));
  REQUIRE(search);
  CHECK(search->size() >= 3);
  CHECK(search->size() < config.search_domains.size());
  CHECK((*search)[0] == "default.svc.cluster.local");
}

TEST_CASE("dhcp: configuration validation names the bad value", "[dhcp][responder]") {
  CHECK(validate_config(vm_dhcp_config()));
  DhcpConfig c = vm_dhcp_config();
  c.client_address = make_address_v4("192.168.253.2");
  CHECK(validate_config(c).error().message
        == "DHCP: client address 192.168.253.2 is not in the server's subnet 192.168.254.1/30");
  c = vm_dhcp_config();
  c.client_mac = {0x01, 0, 0, 0, 0, 1};
  CHECK(validate_config(c).error().message == "DHCP: client MAC 01:00:00:00:00:01 is not unicast");
  c = vm_dhcp_config();
  c.search_domains = {"bad..name"};
  CHECK(validate_config(c).error().message
        == "DHCP: search domain \"bad..name\" is not a valid domain name");
  c = vm_dhcp_config();
  c.mtu = 500;
  CHECK(validate_config(c).error().message == "DHCP: MTU 500 is below 576");
  c = vm_dhcp_config();
  c.interface.clear();
  CHECK_FALSE(validate_config(c));
}
