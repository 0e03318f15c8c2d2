// The DHCPv6 codec and responder, and the Router Solicitation/Advertisement codec, against bytes
// captured from real programs (ISC dhclient -6, dnsmasq 2.90, the Linux kernel; record_v6.sh).

#include <catch2/catch.hpp>

#include "dhcp/v6/dhcpv6_message.hpp"
#include "dhcp/v6/dhcpv6_responder.hpp"
#include "dhcp/v6/ndp.hpp"
#include "test_util.hpp"

using namespace berth::dhcp;
using namespace berth::dhcp::v6;
using berth::dhcp::test::fixture;
using boost::asio::ip::address_v6;
using boost::asio::ip::make_address_v6;

namespace {

const Bytes kOurDuid{0x00, 0x03, 0x00, 0x01, 0x02, 0xb3, 0x00, 0x00, 0x00, 0x01};

Message message(const std::string& name) {
  auto parsed = parse_message(fixture(name));
  REQUIRE(parsed);
  return *parsed;
}

Dhcpv6Config config() {
  Dhcpv6Config c;
  c.interface = "br0";
  c.server_duid = kOurDuid;
  c.client_address = make_address_v6("fd00:b3::5");
  c.prefix = make_address_v6("fd00:b3::");
  c.prefix_length = 64;
  c.dns_servers = {make_address_v6("fd00:b3::1")};
  c.search_domains = {"default.svc.cluster.local", "svc.cluster.local", "cluster.local"};
  return c;
}

// The IA_NAs of `reply`, decoded.
std::vector<IdentityAssociation> ias(const Message& reply) {
  std::vector<IdentityAssociation> out;
  for (const ByteView value : reply.options.find_all(Option::kIaNa)) {
    auto ia = decode_ia(value);
    REQUIRE(ia);
    out.push_back(*ia);
  }
  return out;
}

std::vector<IaAddress> addresses_of(const IdentityAssociation& ia) {
  std::vector<IaAddress> out;
  for (const ByteView value : ia.options.find_all(Option::kIaAddress)) {
    auto address = decode_ia_address(value);
    REQUIRE(address);
    out.push_back(*address);
  }
  return out;
}

std::optional<StatusCode> status_of(const Options& options) {
  const Bytes* value = options.find(Option::kStatusCode);
  if (!value)
    return std::nullopt;
  return decode_status(*value)->code;
}

// The reply as the client sees it: serialized and parsed again.
Message on_the_wire(const Decision& decision) {
  REQUIRE(decision.reply);
  auto parsed = parse_message(serialize_message(*decision.reply));
  REQUIRE(parsed);
  return *parsed;
}

// `request` turned into another type, with `server_id` as its Server Identifier (none if empty).
Message as(Message request, MessageType type, const Bytes& server_id) {
  request.type = type;
  Options options;
  for (const auto& [option_code, value] : request.options.entries())
    if (option_code != code(Option::kServerId))
      options.add(option_code, value);
  if (!server_id.empty())
    options.add(Option::kServerId, server_id);
  request.options = std::move(options);
  return request;
}

Bytes ia_na_with(std::uint32_t iaid, std::vector<address_v6> held) {
  IdentityAssociation ia{iaid, 0, 0, {}};
  for (const auto& address : held)
    ia.options.add(Option::kIaAddress, encode_ia_address({address, 100, 200, {}}));
  return encode_ia(ia);
}

}  // namespace

TEST_CASE("dhcpv6: codec parses dhclient's SOLICIT and serializes it byte for byte") {
  const Bytes bytes = fixture("dhclient6-5-solicit.bin");
  const Message solicit = message("dhclient6-5-solicit.bin");
  CHECK(solicit.type == MessageType::kSolicit);
  CHECK(solicit.options.contains(Option::kClientId));
  CHECK(solicit.options.contains(Option::kElapsedTime));
  const auto ia = ias(solicit);
  REQUIRE(ia.size() == 1);
  CHECK(addresses_of(ia[0]).empty());
  const auto requested = decode_u16_list(*solicit.options.find(Option::kOptionRequest));
  REQUIRE(requested);
  CHECK(std::find(requested->begin(), requested->end(), code(Option::kDnsServers))
        != requested->end());
  CHECK(std::find(requested->begin(), requested->end(), code(Option::kDomainList))
        != requested->end());
  CHECK(serialize_message(solicit) == bytes);
}

TEST_CASE("dhcpv6: codec reads dnsmasq's ADVERTISE and REPLY") {
  for (const char* name : {"dhclient6-6-advertise.bin", "dhclient6-12-reply.bin"}) {
    INFO(name);
    const Message reply = message(name);
    const auto ia = ias(reply);
    REQUIRE(ia.size() == 1);
    const auto held = addresses_of(ia[0]);
    REQUIRE(held.size() == 1);
    CHECK(held[0].address == make_address_v6("fd00:b3::5"));
    CHECK(held[0].valid_lifetime == 7200);
    const auto dns = decode_addresses(*reply.options.find(Option::kDnsServers));
    REQUIRE(dns);
    CHECK(*dns == std::vector{make_address_v6("fd00:b3::1")});
    const auto domains = decode_domain_list(*reply.options.find(Option::kDomainList));
    REQUIRE(domains);
    CHECK(*domains
          == std::vector<std::string>{"default.svc.cluster.local", "svc.cluster.local",
                                      "cluster.local"});
    CHECK(serialize_message(reply) == fixture(name));
  }
  CHECK(message("dhclient6-14-release.bin").type == MessageType::kRelease);
  CHECK(message("dhclient6-16-information-request.bin").type == MessageType::kInformationRequest);
}

TEST_CASE("dhcpv6: codec refuses malformed messages") {
  CHECK_FALSE(parse_message(Bytes{1, 0, 0}));                             // short header
  CHECK_FALSE(parse_message(Bytes{12, 0, 0, 1}));                         // relay-forward
  CHECK_FALSE(parse_message(Bytes{0, 0, 0, 1}));                          // type 0
  CHECK_FALSE(parse_message(Bytes{1, 0, 0, 1, 0, 1, 0, 4, 0, 3}));        // option past the end
  CHECK_FALSE(parse_message(Bytes{1, 0, 0, 1, 0, 1, 0, 2, 0, 3}));        // DUID of 2 bytes
  CHECK_FALSE(parse_message(Bytes{1, 0, 0, 1, 0, 8, 0, 1, 0}));           // elapsed time of 1 byte
  CHECK_FALSE(parse_message(Bytes{1, 0, 0, 1, 0, 14, 0, 1, 0}));          // rapid commit with data
  CHECK_FALSE(parse_message(Bytes{1, 0, 0, 1, 0, 3, 0, 4, 0, 0, 0, 1}));  // IA_NA of 4 bytes
  // The same Client Identifier twice.
  CHECK_FALSE(parse_message(Bytes{1, 0, 0, 1, 0, 1, 0, 3, 0, 3, 1, 0, 1, 0, 3, 0, 3, 1}));
  const auto error = parse_message(Bytes{1, 0, 0, 1, 0, 1, 0, 2, 0, 3}).error();
  CHECK(to_string(error) == "DHCPv6 option 1 (client-id): a DUID is 3 to 130 bytes at byte 4");
  // Domain lists: no compression, no dots or NULs inside labels, every name terminated.
  CHECK_FALSE(decode_domain_list(Bytes{1, 'a', 0xC0, 0}));
  CHECK_FALSE(decode_domain_list(Bytes{3, 'a', '.', 'b', 0}));
  CHECK_FALSE(decode_domain_list(Bytes{1, 'a'}));
  CHECK_FALSE(decode_domain_list(Bytes{0}));
  const std::vector<std::string> bad{"a..b"};
  CHECK_FALSE(encode_domain_list(bad));
  // An unknown option passes through as bytes.
  const auto unknown = parse_message(Bytes{1, 0, 0, 1, 0x12, 0x34, 0, 1, 9});
  REQUIRE(unknown);
  CHECK(unknown->options.entries().front().first == 0x1234);
}

TEST_CASE("dhcpv6: responder advertises the one address to dhclient's SOLICIT") {
  const Dhcpv6Responder responder(config());
  const Message solicit = message("dhclient6-5-solicit.bin");
  const Decision decision = responder.decide(solicit);
  CHECK(decision.action == Action::kAdvertise);
  CHECK_FALSE(decision.address_given);
  const Message advert = on_the_wire(decision);
  CHECK(advert.type == MessageType::kAdvertise);
  CHECK(advert.transaction_id == solicit.transaction_id);
  CHECK(*advert.options.find(Option::kServerId) == kOurDuid);
  CHECK(*advert.options.find(Option::kClientId) == *solicit.options.find(Option::kClientId));
  CHECK(*advert.options.find(Option::kPreference) == Bytes{255});
  const auto ia = ias(advert);
  REQUIRE(ia.size() == 1);
  CHECK(ia[0].iaid == ias(solicit)[0].iaid);
  CHECK(ia[0].t1 == 1800);
  CHECK(ia[0].t2 == 2880);
  const auto held = addresses_of(ia[0]);
  REQUIRE(held.size() == 1);
  CHECK(held[0].address == make_address_v6("fd00:b3::5"));
  CHECK(held[0].preferred_lifetime == 3600);
  CHECK(held[0].valid_lifetime == 7200);
  CHECK(*decode_addresses(*advert.options.find(Option::kDnsServers))
        == std::vector{make_address_v6("fd00:b3::1")});
  CHECK(decode_domain_list(*advert.options.find(Option::kDomainList))->size() == 3);

  // Its REQUEST to us gets the lease; one to dnsmasq (the captured one) is not ours.
  const Decision lease = responder.decide(as(solicit, MessageType::kRequest, kOurDuid));
  CHECK(lease.action == Action::kReplyLease);
  CHECK(lease.address_given);
  CHECK(on_the_wire(lease).type == MessageType::kReply);
  CHECK(responder.decide(message("dhclient6-11-request.bin")).action == Action::kIgnoreOtherServer);
  CHECK(responder.decide(as(solicit, MessageType::kRenew, kOurDuid)).action == Action::kReplyLease);
  CHECK(responder.decide(as(solicit, MessageType::kRebind, {})).action == Action::kReplyLease);
}

TEST_CASE("dhcpv6: responder gives the address at once to a SOLICIT with rapid commit") {
  Message solicit = message("dhclient6-5-solicit.bin");
  solicit.options.add(Option::kRapidCommit, {});
  const Decision decision = Dhcpv6Responder(config()).decide(solicit);
  CHECK(decision.action == Action::kReplyRapidCommit);
  CHECK(decision.address_given);
  const Message reply = on_the_wire(decision);
  CHECK(reply.type == MessageType::kReply);
  CHECK(reply.options.contains(Option::kRapidCommit));
  CHECK_FALSE(reply.options.contains(Option::kPreference));

  Dhcpv6Config refusing = config();
  refusing.rapid_commit = RapidCommit::kRefuse;
  CHECK(Dhcpv6Responder(refusing).decide(solicit).action == Action::kAdvertise);
}

TEST_CASE("dhcpv6: responder withdraws a foreign address and serves one IA only") {
  const Dhcpv6Responder responder(config());
  Message renew = as(message("dhclient6-5-solicit.bin"), MessageType::kRenew, kOurDuid);
  Options options;
  for (const auto& [option_code, value] : renew.options.entries())
    if (option_code != code(Option::kIaNa))
      options.add(option_code, value);
  options.add(Option::kIaNa, ia_na_with(7, {make_address_v6("fd00:99::5")}));
  options.add(Option::kIaNa, ia_na_with(8, {}));
  options.add(Option::kIaPd, ia_na_with(9, {}));
  renew.options = options;
  const Decision decision = responder.decide(renew);
  REQUIRE(decision.action == Action::kReplyLease);
  const Message reply = on_the_wire(decision);
  const auto ia = ias(reply);
  REQUIRE(ia.size() == 2);
  const auto held = addresses_of(ia[0]);
  REQUIRE(held.size() == 2);
  CHECK(held[0].address == make_address_v6("fd00:99::5"));
  CHECK(held[0].valid_lifetime == 0);
  CHECK(held[1].address == make_address_v6("fd00:b3::5"));
  CHECK(held[1].valid_lifetime == 7200);
  CHECK(ia[1].iaid == 8);
  CHECK(status_of(ia[1].options) == StatusCode::kNoAddrsAvail);
  const auto pd = decode_ia(*reply.options.find(Option::kIaPd));
  CHECK(status_of(pd->options) == StatusCode::kNoPrefixAvail);
}

TEST_CASE("dhcpv6: responder answers CONFIRM RELEASE DECLINE and INFORMATION-REQUEST") {
  const Dhcpv6Responder responder(config());
  const Message solicit = message("dhclient6-5-solicit.bin");
  Message confirm = as(solicit, MessageType::kConfirm, {});
  confirm.options.add(Option::kIaNa, ia_na_with(1, {make_address_v6("fd00:b3::5")}));
  Decision decision = responder.decide(confirm);
  CHECK(decision.action == Action::kReplyConfirm);
  CHECK(status_of(on_the_wire(decision).options) == StatusCode::kSuccess);
  confirm.options.add(Option::kIaNa, ia_na_with(2, {make_address_v6("2001:db8::5")}));
  CHECK(status_of(on_the_wire(responder.decide(confirm)).options) == StatusCode::kNotOnLink);
  CHECK(responder.decide(as(solicit, MessageType::kConfirm, {})).action
        == Action::kIgnoreInvalid);  // no addresses to confirm

  decision =
      responder.decide(as(message("dhclient6-14-release.bin"), MessageType::kRelease, kOurDuid));
  CHECK(decision.action == Action::kReplyRelease);
  CHECK(status_of(on_the_wire(decision).options) == StatusCode::kSuccess);
  CHECK(responder.decide(as(solicit, MessageType::kDecline, kOurDuid)).action
        == Action::kReplyDecline);

  const Message info = message("dhclient6-16-information-request.bin");
  decision = responder.decide(info);
  CHECK(decision.action == Action::kReplyInformation);
  const Message reply = on_the_wire(decision);
  CHECK(reply.options.contains(Option::kDnsServers));
  CHECK(reply.options.contains(Option::kDomainList));
  CHECK_FALSE(reply.options.contains(Option::kIaNa));
}

TEST_CASE("dhcpv6: responder discards what RFC 8415 section 16 says to discard") {
  const Dhcpv6Responder responder(config());
  const Message solicit = message("dhclient6-5-solicit.bin");
  Message no_client = solicit;
  no_client.options = {};
  CHECK(responder.decide(no_client).action == Action::kIgnoreInvalid);
  CHECK(responder.decide(as(solicit, MessageType::kSolicit, kOurDuid)).action
        == Action::kIgnoreInvalid);
  CHECK(responder.decide(as(solicit, MessageType::kRequest, {})).action == Action::kIgnoreInvalid);
  CHECK(responder.decide(as(solicit, MessageType::kRebind, kOurDuid)).action
        == Action::kIgnoreInvalid);
  CHECK(responder.decide(as(solicit, MessageType::kInformationRequest, {})).action
        == Action::kIgnoreInvalid);  // it carries an IA_NA
  CHECK(responder.decide(as(solicit, MessageType::kReply, {})).action
        == Action::kIgnoreUnsupported);
  Message bad_ia = solicit;
  bad_ia.options.add(Option::kIaNa, Bytes{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 1, 0});
  CHECK(responder.decide(bad_ia).action == Action::kIgnoreInvalid);
}

TEST_CASE("dhcpv6: config validation names the bad value") {
  CHECK(validate_config(config()));
  Dhcpv6Config c = config();
  c.client_address = make_address_v6("fd00:99::5");
  CHECK(validate_config(c).error().message.find("not in fd00:b3::/64") != std::string::npos);
  c = config();
  c.server_duid = {0, 1};
  CHECK_FALSE(validate_config(c));
  c = config();
  c.preferred_lifetime = std::chrono::hours(3);
  CHECK_FALSE(validate_config(c));
  c = config();
  c.search_domains = {"bad..name"};
  CHECK_FALSE(validate_config(c));
  c = config();
  c.client_address = make_address_v6("fe80::5");
  c.prefix = make_address_v6("fe80::");
  CHECK_FALSE(validate_config(c));
}

TEST_CASE("ndp: codec reads the kernel's router solicitation and dnsmasq's advertisement") {
  const auto solicitation = parse_router_solicitation(fixture("dhclient6-1-rs.bin"));
  REQUIRE(solicitation);
  CHECK(solicitation->source_link_layer == berth::MacAddress{0x52, 0x54, 0x00, 0x12, 0x34, 0x56});

  const auto advert = parse_router_advertisement(fixture("dhclient6-2-ra.bin"));
  REQUIRE(advert);
  CHECK(advert->managed);
  CHECK(advert->other);
  CHECK(advert->mtu == 1500u);
  REQUIRE(advert->prefixes.size() == 1);
  CHECK(advert->prefixes[0].prefix == make_address_v6("fd00:b3::"));
  CHECK(advert->prefixes[0].length == 64);
  CHECK(advert->prefixes[0].on_link);
  CHECK_FALSE(advert->prefixes[0].autonomous);
  CHECK(advert->dns_servers == std::vector{make_address_v6("fd00:b3::1")});
  CHECK(advert->search_domains
        == std::vector<std::string>{"default.svc.cluster.local", "svc.cluster.local",
                                    "cluster.local"});
  // What berth would send with the same content reads back the same.
  const auto bytes = serialize_router_advertisement(*advert);
  REQUIRE(bytes);
  const auto again = parse_router_advertisement(*bytes);
  REQUIRE(again);
  CHECK(*again == *advert);
}

TEST_CASE("ndp: codec lays out berth's advertisement and refuses malformed messages") {
  RouterAdvertisement advert;
  advert.managed = true;
  advert.router_lifetime = 1800;
  advert.source_link_layer = berth::MacAddress{0x02, 0xb3, 0, 0, 0, 1};
  advert.mtu = 1450;
  advert.prefixes.push_back({make_address_v6("fd00:b3::"), 64, true, true, 7200, 3600});
  advert.dns_servers = {make_address_v6("fd00:b3::1")};
  advert.dns_lifetime = 1800;
  advert.search_domains = {"svc.cluster.local"};
  advert.search_lifetime = 1800;
  const auto bytes = serialize_router_advertisement(advert);
  REQUIRE(bytes);
  // 16 header + 8 SLLA + 8 MTU + 32 prefix + 24 RDNSS + 32 DNSSL (6 + 19 name bytes, padded).
  CHECK(bytes->size() == 120);
  CHECK((*bytes)[5] == 0x80);
  CHECK((*bytes)[16 + 8 + 8 + 32] == 25);
  CHECK((*bytes)[16 + 8 + 8 + 32 + 1] == 3);
  CHECK((*bytes)[16 + 8 + 8 + 32 + 24 + 1] == 4);
  const auto again = parse_router_advertisement(*bytes);
  REQUIRE(again);
  CHECK(*again == advert);

  CHECK_FALSE(parse_router_solicitation(Bytes{133, 0, 0, 0, 0, 0, 0}));  // short
  CHECK_FALSE(parse_router_solicitation(Bytes{134, 0, 0, 0, 0, 0, 0, 0}));
  CHECK_FALSE(parse_router_solicitation(Bytes{133, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 2, 3, 4, 5, 6}));
  CHECK_FALSE(parse_router_solicitation(Bytes{133, 0, 0, 0, 0, 0, 0, 0, 1, 2, 1, 2, 3, 4, 5, 6}));
  const auto no_option = parse_router_solicitation(Bytes{133, 0, 0, 0, 0, 0, 0, 0});
  REQUIRE(no_option);
  CHECK_FALSE(no_option->source_link_layer);
  advert.search_domains = {"bad..name"};
  CHECK_FALSE(serialize_router_advertisement(advert));
}

TEST_CASE("ndp: eui64_address is the address Linux SLAAC makes from the MAC") {
  CHECK(eui64_address(make_address_v6("fd00:b3::"), {0x52, 0x54, 0x00, 0x12, 0x34, 0x56})
        == make_address_v6("fd00:b3::5054:ff:fe12:3456"));
  CHECK(eui64_address(make_address_v6("2001:db8:1:2::"), {0x02, 0, 0, 0, 0, 1})
        == make_address_v6("2001:db8:1:2::ff:fe00:1"));
}

TEST_CASE("ndp: lists longer than one option holds are split and read back the same") {
  RouterAdvertisement advert;
  for (unsigned i = 1; i <= 200; ++i) {
    auto bytes = make_address_v6("fd00:b3::").to_bytes();
    bytes[14] = static_cast<std::uint8_t>(i >> 8);
    bytes[15] = static_cast<std::uint8_t>(i);
    advert.dns_servers.emplace_back(bytes);
  }
  advert.dns_lifetime = 600;
  for (unsigned i = 0; i < 40; ++i)
    advert.search_domains.push_back(std::string(60, static_cast<char>('a' + i % 26)) + "."
                                    + std::to_string(i) + ".svc.cluster.local");
  advert.search_lifetime = 600;
  const auto bytes = serialize_router_advertisement(advert);
  REQUIRE(bytes);
  const auto again = parse_router_advertisement(*bytes);
  REQUIRE(again);
  CHECK(again->dns_servers.size() == 200);
  CHECK(again->search_domains.size() == 40);
  CHECK(*again == advert);
  // The fuzz target's find: several DNSSL options merged to more than one holds.
  const auto merged = parse_router_advertisement(fixture("ndp-fuzz-long-dnssl.bin"));
  REQUIRE(merged);
  const auto reencoded = serialize_router_advertisement(*merged);
  REQUIRE(reencoded);
  CHECK(parse_router_advertisement(*reencoded).value() == *merged);
}
