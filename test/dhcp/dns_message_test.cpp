// The DNS codec against queries dig sent and answers dnsmasq gave (fixtures/record_dns.sh), the
// forwarder's rewrites, and a table of malformed messages.

#include "dhcp/dns/dns_message.hpp"

#include <catch2/catch.hpp>

#include "test_util.hpp"

using namespace berth::dhcp;
using namespace berth::dhcp::dns;
using berth::dhcp::test::fixture;
using berth::dhcp::test::make_query;
using berth::dhcp::test::make_response;

namespace {

Message parsed(const Bytes& bytes) {
  auto m = parse_message(bytes);
  INFO((m ? std::string() : to_string(m.error())));
  REQUIRE(m);
  return *m;
}

std::uint16_t arcount(const Bytes& m) {
  return load_u16(m, 10);
}

}  // namespace

TEST_CASE("dhcp/dns: dig's queries: header, question, OPT", "[dns][codec]") {
  const Message edns = parsed(fixture("dig-edns-a.bin"));
  CHECK_FALSE(edns.header.is_response());
  CHECK(edns.header.opcode() == 0);
  CHECK(edns.header.qdcount == 1);
  REQUIRE(edns.question);
  CHECK(edns.question->name_text() == "vm.test.");
  CHECK(edns.question->type == 1);
  CHECK(edns.question->qclass == 1);
  REQUIRE(edns.edns);
  CHECK(edns.edns->udp_size == 1232);
  CHECK(edns.edns->size > 11);  // dig sends a cookie option
  CHECK(edns.opt_is_last);

  const Message plain = parsed(fixture("dig-noedns-a.bin"));
  CHECK_FALSE(plain.edns);
  CHECK(plain.question->name_text() == "vm.test.");

  const Message txt = parsed(fixture("dig-edns4096-txt.bin"));
  CHECK(txt.edns->udp_size == 4096);
  CHECK(txt.question->type == 16);
}

TEST_CASE("dhcp/dns: dnsmasq's answers parse, with their OPT", "[dns][codec]") {
  const Message a = parsed(fixture("dnsmasq-a-reply.bin"));
  CHECK(a.header.is_response());
  CHECK(a.header.ancount == 1);
  CHECK(a.edns);
  const Message txt = parsed(fixture("dnsmasq-txt-reply.bin"));
  CHECK(txt.header.ancount == 8);
  CHECK(fixture("dnsmasq-txt-reply.bin").size() > 800);
  CHECK_FALSE(txt.header.truncated());
  REQUIRE(txt.edns);
  CHECK(txt.opt_is_last);
  const Message noedns = parsed(fixture("dnsmasq-noedns-a-reply.bin"));
  CHECK_FALSE(noedns.edns);
}

TEST_CASE("dhcp/dns: upstream queries: new ID, the question as sent, one OPT with 1232",
          "[dns][forward]") {
  const Bytes edns_query = fixture("dig-edns-a.bin");  // with a cookie option
  const Message guest = parsed(edns_query);
  const Bytes up = make_upstream_query(edns_query, guest, 0xBEEF);
  const Message u = parsed(up);
  CHECK(u.header.id == 0xBEEF);
  CHECK(u.header.flags == guest.header.flags);
  CHECK(u.question->name == guest.question->name);
  CHECK(u.edns->udp_size == kAdvertisedUdpSize);
  CHECK(u.edns->size == 11);  // the guest's cookie stays with the guest
  CHECK(up.size() == guest.question_end + 11);
  CHECK(arcount(up) == 1);

  const Bytes big = fixture("dig-edns4096-txt.bin");
  CHECK(parsed(make_upstream_query(big, parsed(big), 1)).edns->udp_size == 1232);

  Bytes dnssec = make_query(3, "vm.test", 1, 4096);
  dnssec[dnssec.size() - 4] = 0x80;  // DO
  CHECK(parsed(make_upstream_query(dnssec, parsed(dnssec), 3)).edns->dnssec_ok());

  const Bytes plain = fixture("dig-noedns-a.bin");
  const Bytes added = make_upstream_query(plain, parsed(plain), 7);
  const Message a = parsed(added);
  REQUIRE(a.edns);
  CHECK(a.edns->udp_size == 1232);
  CHECK_FALSE(a.edns->dnssec_ok());
  CHECK(arcount(added) == 1);
  CHECK(added.size() == plain.size() + 11);
}

TEST_CASE("dhcp/dns: RFC 5452: a reply must match ID and question", "[dns][forward]") {
  const Bytes query = fixture("dig-edns-a.bin");
  const Message q = parsed(query);
  const Message reply = parsed(fixture("dnsmasq-a-reply.bin"));
  CHECK(is_reply_to(reply, q.header.id, *q.question));
  CHECK_FALSE(is_reply_to(reply, static_cast<std::uint16_t>(q.header.id + 1), *q.question));
  Question other = *q.question;
  other.type = 28;
  CHECK_FALSE(is_reply_to(reply, q.header.id, other));
  Question upper = *q.question;
  upper.name[1] = 'V';  // "Vm.test": DNS names compare case-insensitively
  CHECK(is_reply_to(reply, q.header.id, upper));
  CHECK_FALSE(is_reply_to(q, q.header.id, *q.question));  // a query is no reply
}

TEST_CASE("dhcp/dns: EDNS0 hop by hop and truncation for the guest", "[dns][forward]") {
  const Bytes big_reply = fixture("dnsmasq-txt-reply.bin");
  const Message big = parsed(big_reply);

  SECTION("a guest without EDNS0 gets at most 512 bytes, TC set, no OPT") {
    const Bytes guest_query = make_query(0x1234, "big.test", 16);
    const Bytes out = make_guest_response(big_reply, big, parsed(guest_query), Transport::kUdp);
    CHECK(out.size() <= 512);
    const Message m = parsed(out);
    CHECK(m.header.id == 0x1234);
    CHECK(m.header.truncated());
    CHECK(m.header.ancount == 0);
    CHECK_FALSE(m.edns);
    CHECK(m.question->name_text() == "big.test.");
  }
  SECTION("a guest with 4096 gets it all, OPT saying our size") {
    const Bytes guest_query = fixture("dig-edns4096-txt.bin");
    const Bytes out = make_guest_response(big_reply, big, parsed(guest_query), Transport::kUdp);
    const Message m = parsed(out);
    CHECK(out.size() == big_reply.size());
    CHECK_FALSE(m.header.truncated());
    CHECK(m.header.ancount == 8);
    CHECK(m.edns->udp_size == kAdvertisedUdpSize);
  }
  SECTION("a guest with EDNS0 but a smaller size gets TC and an OPT") {
    const Bytes guest_query = make_query(9, "big.test", 16, 600);
    const Bytes out = make_guest_response(big_reply, big, parsed(guest_query), Transport::kUdp);
    const Message m = parsed(out);
    CHECK(m.header.truncated());
    CHECK(m.edns);
    CHECK(out.size() <= 600);
  }
  SECTION("over TCP nothing is cut, but OPT still goes for a guest that sent none") {
    const Bytes guest_query = make_query(5, "big.test", 16);
    const Bytes out = make_guest_response(big_reply, big, parsed(guest_query), Transport::kTcp);
    const Message m = parsed(out);
    CHECK_FALSE(m.header.truncated());
    CHECK(m.header.ancount == 8);
    CHECK_FALSE(m.edns);
    CHECK(out.size() == big_reply.size() - 11);
  }
  SECTION("a small answer keeps its records; OPT removed for a plain guest") {
    const Bytes reply = fixture("dnsmasq-a-reply.bin");
    const Bytes guest_query = fixture("dig-noedns-a.bin");
    const Bytes out =
        make_guest_response(reply, parsed(reply), parsed(guest_query), Transport::kUdp);
    const Message m = parsed(out);
    CHECK(m.header.ancount == 1);
    CHECK_FALSE(m.edns);
    CHECK(m.header.id == parsed(guest_query).header.id);
    CHECK(out.size() == reply.size() - 11);
  }
}

TEST_CASE("dhcp/dns: a name that runs through the OPT record: the answer is cut, not broken",
          "[dns][forward][malformed]") {
  // Found by the fuzzer: the answer's name points back into its own label bytes, whose lengths
  // then reach into the OPT record. Removing the OPT for a plain guest would break the name.
  const Bytes reply = {0xb0, 0x49, 0x41, 0x80, 0, 1, 0, 1, 0,    0,    0,    1, 2, 0x76, 2, 2, 2, 2,
                       0,    1,    0,    2,    2, 2, 2, 1, 0xc0, 0x18, 0,    1, 0, 1,    0, 0, 0, 0,
                       0,    4,    10,   1,    2, 3, 0, 0, 0x29, 4,    0xd0, 0, 0, 0,    0, 0, 0};
  const Message view = parsed(reply);
  const Bytes out =
      make_guest_response(reply, view, parsed(fixture("dig-noedns-a.bin")), Transport::kUdp);
  const Message m = parsed(out);
  CHECK(m.header.truncated());
  CHECK(m.header.ancount == 0);
  CHECK_FALSE(m.edns);
}

TEST_CASE("dhcp/dns: a question name that points into the answer: the truncated reply keeps it",
          "[dns][forward][malformed]") {
  // Found by the fuzzer (in CI): the question's name ends with a pointer whose labels run on into
  // the answer and OPT records. A cut reply copied the question's raw bytes, pointer included,
  // without the records it pointed into; now the name is written out in full.
  const Bytes reply = {0xb0, 0x49, 0x85, 0x80, 0,    1, 0,    1,    0,    0, 0,    1,    2,  1, 0,
                       4,    0x10, 0,    0xff, 0xff, 4, 1,    1,    0,    1, 0xc0, 0x16, 0,  0, 0,
                       1,    0,    0,    0,    0,    0, 0x30, 8,    0,    0, 0,    4,    10, 1, 2,
                       3,    0,    0,    0x29, 4,    0, 0,    0xd0, 0x29, 0, 0,    0};
  const Message view = parsed(reply);
  REQUIRE(view.question);
  for (const char* guest : {"dig-noedns-a.bin", "dig-edns-a.bin"}) {
    const Bytes out = make_guest_response(reply, view, parsed(fixture(guest)), Transport::kUdp);
    const Message m = parsed(out);
    CHECK(m.header.qdcount == 1);
    REQUIRE(m.question);
    CHECK(m.question->matches(*view.question));
  }
}

TEST_CASE("dhcp/dns: error responses: SERVFAIL, NOTIMP", "[dns][forward]") {
  const Bytes query = fixture("dig-edns-a.bin");
  const Message q = parsed(query);
  const Bytes out = make_error_response(query, q, Rcode::kServFail);
  const Message m = parsed(out);
  CHECK(m.header.is_response());
  CHECK(m.header.id == q.header.id);
  CHECK(m.header.rcode() == 2);
  CHECK((m.header.flags & 0x0100) != 0);  // RD copied
  CHECK(m.question->matches(*q.question));
  CHECK(m.edns);
  const Bytes plain = fixture("dig-noedns-a.bin");
  CHECK_FALSE(parsed(make_error_response(plain, parsed(plain), Rcode::kNotImp)).edns);
}

TEST_CASE("dhcp/dns: malformed DNS messages are errors, never crashes", "[dns][codec][malformed]") {
  const Bytes q = make_query(1, "a.example", 1);
  auto patched = [&](std::size_t offset, Bytes patch) {
    Bytes b = q;
    std::copy(patch.begin(), patch.end(), b.begin() + static_cast<std::ptrdiff_t>(offset));
    return b;
  };
  auto appended = [&](Bytes more, std::uint16_t an, std::uint16_t ns, std::uint16_t ar) {
    Bytes b = q;
    store_u16(b, 6, an);
    store_u16(b, 8, ns);
    store_u16(b, 10, ar);
    put_bytes(b, more);
    return b;
  };
  const Bytes opt = {0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0};
  struct Case {
    const char* what;
    Bytes bytes;
    std::string_view reason;
  };
  const std::vector<Case> cases = {
      {"empty", {}, "shorter than the 12-byte"},
      {"11 bytes", Bytes(q.begin(), q.begin() + 11), "shorter than the 12-byte"},
      {"question cut", Bytes(q.begin(), q.end() - 2), "question runs past"},
      {"name cut", Bytes(q.begin(), q.begin() + 15), "past the end"},
      {"qdcount 2", patched(4, {0, 2}), "past the end"},
      {"label type 0x40", patched(12, {0x41}), "unsupported label type"},
      {"pointer to itself", patched(12, {0xC0, 12}), "does not point backwards"},
      {"forward pointer", patched(12, {0xC0, 20}), "does not point backwards"},
      {"pointer into the header (found by the fuzzer)",
       appended({0xC0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4}, 1, 0, 0), "into the header"},
      {"ancount 1, no record", patched(6, {0, 1}), "past the end"},
      {"trailing bytes",
       [&] {
         Bytes b = q;
         b.push_back(0);
         return b;
       }(),
       "bytes after"},
      {"record rdata cut", appended({0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2}, 1, 0, 0),
       "record runs past"},
      {"record with TTL cut (found by the fuzzer)", appended({0, 0, 0, 0, 0, 0, 0}, 0, 0, 1),
       "record runs past"},
      {"OPT in the answer section", appended(opt, 1, 0, 0), "outside the additional"},
      {"two OPT records",
       appended(
           [&] {
             Bytes b = opt;
             put_bytes(b, opt);
             return b;
           }(),
           0, 0, 2),
       "more than one OPT"},
      {"OPT with a name", appended({1, 'x', 0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0}, 0, 0, 1),
       "non-root name"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    const auto result = parse_message(c.bytes);
    REQUIRE_FALSE(result.has_value());
    INFO(to_string(result.error()));
    CHECK(to_string(result.error()).find(c.reason) != std::string::npos);
  }
  Bytes long_name = q;
  long_name.resize(12);
  for (int i = 0; i < 5; ++i) {
    long_name.push_back(63);
    long_name.insert(long_name.end(), 63, 'x');
  }
  put_bytes(long_name, Bytes{0, 0, 1, 0, 1});
  CHECK_FALSE(parse_message(long_name));
}

TEST_CASE("dhcp/dns: every prefix and single-byte corruption of real messages is handled",
          "[dns][codec][malformed]") {
  for (const char* name : {"dig-edns-a.bin", "dnsmasq-a-reply.bin", "dnsmasq-txt-reply.bin"}) {
    const Bytes bytes = fixture(name);
    const Message guest = parsed(fixture("dig-noedns-a.bin"));
    for (std::size_t n = 0; n <= bytes.size(); ++n)
      (void)parse_message(ByteView(bytes).first(n));
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      for (const std::uint8_t value : {0x00, 0x01, 0x29, 0x3f, 0xc0, 0xff}) {
        Bytes corrupt = bytes;
        corrupt[i] = value;
        const auto m = parse_message(corrupt);
        if (!m)
          continue;
        const Bytes out = make_guest_response(corrupt, *m, guest, Transport::kUdp);
        CHECK(out.size() <= 512);
        if (!m->header.is_response() && m->question)
          (void)parse_message(make_upstream_query(corrupt, *m, 1));
      }
    }
  }
}
