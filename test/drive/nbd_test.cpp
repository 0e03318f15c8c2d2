// The NBD server codec: the handshake QEMU's NBD client performs (structured replies asked for and
// refused, GO with a block-size request), reads and their replies, and what is refused or closes.

#include "drive/image/nbd.hpp"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace berth::drive::nbd {
namespace {

void put(Bytes& out, std::uint64_t value, std::size_t width) {
  for (std::size_t i = width; i > 0; --i)
    out.push_back(static_cast<std::uint8_t>(value >> (8 * (i - 1))));
}
std::uint64_t load(const Bytes& data, std::size_t offset, std::size_t width) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < width; ++i)
    value = value << 8 | data.at(offset + i);
  return value;
}

Bytes option(std::uint32_t code, const Bytes& data) {
  Bytes out;
  put(out, kOptionMagic, 8);
  put(out, code, 4);
  put(out, data.size(), 4);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Bytes go_data(const std::string& name, const std::vector<std::uint16_t>& infos) {
  Bytes data;
  put(data, name.size(), 4);
  for (const char c : name)  // not insert(): a false GCC 12 -O3 stringop-overflow warning
    data.push_back(static_cast<std::uint8_t>(c));
  put(data, infos.size(), 2);
  for (auto info : infos)
    put(data, info, 2);
  return data;
}

Bytes request(std::uint16_t type, std::uint64_t cookie, std::uint64_t offset,
              std::uint32_t length) {
  Bytes out;
  put(out, kRequestMagic, 4);
  put(out, 0, 2);
  put(out, type, 2);
  put(out, cookie, 8);
  put(out, offset, 8);
  put(out, length, 4);
  return out;
}

Bytes client_flags(std::uint32_t flags) {
  Bytes out;
  put(out, flags, 4);
  return out;
}

// An option reply parsed back: option, type and data.
struct Reply {
  std::uint32_t option = 0;
  std::uint32_t type = 0;
  Bytes data;
};
std::vector<Reply> option_replies(const Bytes& out) {
  std::vector<Reply> replies;
  std::size_t at = 0;
  while (at < out.size()) {
    REQUIRE(load(out, at, 8) == kReplyMagic);
    Reply reply{static_cast<std::uint32_t>(load(out, at + 8, 4)),
                static_cast<std::uint32_t>(load(out, at + 12, 4)),
                {}};
    const auto length = load(out, at + 16, 4);
    reply.data.assign(out.begin() + static_cast<std::ptrdiff_t>(at + 20),
                      out.begin() + static_cast<std::ptrdiff_t>(at + 20 + length));
    replies.push_back(reply);
    at += 20 + length;
  }
  return replies;
}

// What QEMU's client sends up to transmission: flags, STRUCTURED_REPLY, GO "base" + BLOCK_SIZE.
Bytes qemu_handshake() {
  Bytes in = client_flags(kFlagFixedNewstyle | kFlagNoZeroes);
  const auto structured = option(8, {});
  in.insert(in.end(), structured.begin(), structured.end());
  const auto go = option(7, go_data("base", {3}));
  in.insert(in.end(), go.begin(), go.end());
  return in;
}

TEST_CASE("nbd: the greeting is NBDMAGIC IHAVEOPT and fixed newstyle + no zeroes", "[nbd]") {
  ServerSession session({"base", 1 << 20});
  const auto greeting = session.take_output();
  REQUIRE(greeting.size() == 18);
  CHECK(load(greeting, 0, 8) == kNbdMagic);
  CHECK(load(greeting, 8, 8) == kOptionMagic);
  CHECK(load(greeting, 16, 2) == 3);
  CHECK(session.phase() == Phase::kClientFlags);
}

TEST_CASE("nbd: QEMU's handshake, a read, its reply and a disconnect", "[nbd]") {
  const std::uint64_t size = 3ull << 30;  // past 32 bits
  ServerSession session({"base", size});
  (void)session.take_output();
  session.feed(qemu_handshake());
  REQUIRE(session.phase() == Phase::kTransmission);

  const auto replies = option_replies(session.take_output());
  REQUIRE(replies.size() == 4);
  CHECK(replies[0].option == 8);
  CHECK(replies[0].type == static_cast<std::uint32_t>(OptionReply::kErrUnsup));
  CHECK(replies[1].type == static_cast<std::uint32_t>(OptionReply::kInfo));
  REQUIRE(replies[1].data.size() == 12);
  CHECK(load(replies[1].data, 0, 2) == 0);
  CHECK(load(replies[1].data, 2, 8) == size);
  CHECK(load(replies[1].data, 10, 2)
        == (kTransmitHasFlags | kTransmitReadOnly | kTransmitCanMultiConn));
  REQUIRE(replies[2].data.size() == 14);
  CHECK(load(replies[2].data, 0, 2) == 3);
  CHECK(load(replies[2].data, 10, 4) == kMaxReadLength);
  CHECK(replies[3].option == 7);
  CHECK(replies[3].type == static_cast<std::uint32_t>(OptionReply::kAck));

  session.feed(request(0, 0xabcdef0123, size - 4096, 4096));
  const auto reads = session.take_reads();
  REQUIRE(reads.size() == 1);
  CHECK(reads[0] == ReadRequest{0xabcdef0123, size - 4096, 4096});

  const Bytes data(4096, 0x5a);
  session.reply_read(reads[0], data);
  const auto reply = session.take_output();
  REQUIRE(reply.size() == 16 + 4096);
  CHECK(load(reply, 0, 4) == kSimpleReplyMagic);
  CHECK(load(reply, 4, 4) == 0);
  CHECK(load(reply, 8, 8) == 0xabcdef0123);
  CHECK(reply[16] == 0x5a);

  session.feed(request(2, 7, 0, 0));
  CHECK(session.closed());
  CHECK(session.close_reason().empty());
}

TEST_CASE("nbd: input split at every byte gives the same reads and replies", "[nbd]") {
  Bytes in = qemu_handshake();
  for (std::uint64_t i = 0; i < 3; ++i) {
    const auto read = request(0, i, i * 512, 512);
    in.insert(in.end(), read.begin(), read.end());
  }
  ServerSession whole({"base", 1 << 20});
  whole.feed(in);
  ServerSession split({"base", 1 << 20});
  for (auto byte : in)
    split.feed(ByteView(&byte, 1));
  CHECK(whole.take_output() == split.take_output());
  const auto reads = split.take_reads();
  CHECK(whole.take_reads() == reads);
  REQUIRE(reads.size() == 3);
  CHECK(reads[2].offset == 1024);
}

TEST_CASE("nbd: EXPORT_NAME answers size and flags, with the 124 zeroes unless declined", "[nbd]") {
  for (std::uint32_t flags : {1u, 3u}) {
    ServerSession session({"base", 4096});
    (void)session.take_output();
    Bytes in = client_flags(flags);
    const auto name = option(1, Bytes{'b', 'a', 's', 'e'});
    in.insert(in.end(), name.begin(), name.end());
    session.feed(in);
    const auto out = session.take_output();
    CHECK(out.size() == (flags == 1 ? 10u + 124u : 10u));
    CHECK(load(out, 0, 8) == 4096);
    CHECK(session.phase() == Phase::kTransmission);
  }
  ServerSession unknown({"base", 4096});
  Bytes in = client_flags(3);
  const auto name = option(1, Bytes{'x'});
  in.insert(in.end(), name.begin(), name.end());
  unknown.feed(in);
  CHECK(unknown.closed());
  CHECK_THAT(unknown.close_reason(), Catch::Contains("unknown export \"x\""));
}

TEST_CASE("nbd: options that are refused keep the session in option haggling", "[nbd]") {
  ServerSession session({"base", 4096});
  (void)session.take_output();
  Bytes in = client_flags(3);
  for (const auto& o :
       {option(7, go_data("other", {})), option(7, Bytes{0, 0, 0, 9, 'b'}), option(3, Bytes{1}),
        option(99, {}), option(6, go_data("", {})), option(3, {})}) {
    in.insert(in.end(), o.begin(), o.end());
  }
  session.feed(in);
  CHECK(session.phase() == Phase::kOptions);
  const auto replies = option_replies(session.take_output());
  REQUIRE(replies.size() == 8);
  CHECK(replies[0].type == static_cast<std::uint32_t>(OptionReply::kErrUnknown));
  CHECK(replies[1].type == static_cast<std::uint32_t>(OptionReply::kErrInvalid));
  CHECK(replies[2].type == static_cast<std::uint32_t>(OptionReply::kErrInvalid));
  CHECK(replies[3].type == static_cast<std::uint32_t>(OptionReply::kErrUnsup));
  CHECK(replies[4].type == static_cast<std::uint32_t>(OptionReply::kInfo));  // INFO "" = default
  CHECK(replies[5].type == static_cast<std::uint32_t>(OptionReply::kAck));
  CHECK(replies[6].type == static_cast<std::uint32_t>(OptionReply::kServer));
  CHECK(replies[6].data == Bytes{0, 0, 0, 4, 'b', 'a', 's', 'e'});
  CHECK(replies[7].type == static_cast<std::uint32_t>(OptionReply::kAck));

  session.feed(option(2, {}));
  CHECK(session.closed());
  CHECK(session.close_reason().empty());
}

TEST_CASE("nbd: writes, unknown commands and reads outside the export are refused", "[nbd]") {
  ServerSession session({"base", 8192});
  session.feed(qemu_handshake());
  (void)session.take_output();
  Bytes in = request(1, 1, 0, 5);
  in.insert(in.end(), {1, 2, 3, 4, 5});  // the payload, skipped
  for (const auto& r :
       {request(0, 2, 8192 - 512, 1024), request(0, 3, 0, 0),
        request(0, 4, ~std::uint64_t{0} - 10, 512), request(0, 5, 0, (32u << 20) + 1),
        request(3, 6, 0, 0), request(0, 7, 4096, 4096)}) {
    in.insert(in.end(), r.begin(), r.end());
  }
  session.feed(in);
  CHECK_FALSE(session.closed());
  CHECK(session.refused_commands() == 6);
  const auto out = session.take_output();
  REQUIRE(out.size() == 6 * 16);
  const std::uint32_t errors[] = {kEperm, kEinval, kEinval, kEinval, kEinval, kEinval};
  for (std::size_t i = 0; i < 6; ++i) {
    CHECK(load(out, i * 16 + 4, 4) == errors[i]);
    CHECK(load(out, i * 16 + 8, 8) == i + 1);
  }
  CHECK(session.take_reads() == std::vector<ReadRequest>{{7, 4096, 4096}});

  session.reply_read({8, 0, 512}, Bytes(100));  // wrong length: EIO, not a short reply
  const auto eio = session.take_output();
  REQUIRE(eio.size() == 16);
  CHECK(load(eio, 4, 4) == kEio);
}

TEST_CASE("nbd: malformed input closes the session and says why", "[nbd]") {
  struct Case {
    const char* name;
    Bytes input;
    const char* reason;
  };
  Bytes bad_magic = client_flags(1);
  bad_magic.insert(bad_magic.end(), 16, 0);
  Bytes too_long = client_flags(1);
  put(too_long, kOptionMagic, 8);
  put(too_long, 7, 4);
  put(too_long, 4097, 4);
  Bytes bad_request = qemu_handshake();
  bad_request.insert(bad_request.end(), 28, 0xff);
  const Case cases[] = {
      {"old style client", client_flags(0), "fixed newstyle"},
      {"unknown flags", client_flags(0x11), "unknown client flags 0x11"},
      {"option magic", bad_magic, "IHAVEOPT"},
      {"option length", too_long, "4097 bytes"},
      {"request magic", bad_request, "request magic"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    ServerSession session({"base", 4096});
    session.feed(c.input);
    CHECK(session.closed());
    CHECK_THAT(session.close_reason(), Catch::Contains(c.reason));
    session.feed(request(0, 1, 0, 512));  // ignored once closed
    CHECK(session.take_reads().empty());
  }
}

}  // namespace
}  // namespace berth::drive::nbd
