#include "drive/image/nbd.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <string_view>

namespace berth::drive::nbd {
namespace {

constexpr std::size_t kGreetingSize = 18;
constexpr std::size_t kOptionHeaderSize = 16;
constexpr std::size_t kRequestSize = 28;
constexpr std::size_t kExportNameZeroes = 124;
constexpr std::uint32_t kPreferredBlock = 4096;

std::uint64_t load(ByteView data, std::size_t offset, std::size_t width) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < width; ++i)
    value = value << 8 | data[offset + i];
  return value;
}

void put(Bytes& out, std::uint64_t value, std::size_t width) {
  for (std::size_t i = width; i > 0; --i)
    out.push_back(static_cast<std::uint8_t>(value >> (8 * (i - 1))));
}

// A bounded reader for option payloads: every read says whether the bytes were there.
class Reader {
 public:
  explicit Reader(ByteView data) : data_(data) {}
  std::optional<std::uint64_t> number(std::size_t width) {
    if (data_.size() - offset_ < width)
      return std::nullopt;
    const auto value = load(data_, offset_, width);
    offset_ += width;
    return value;
  }
  std::optional<ByteView> bytes(std::size_t count) {
    if (data_.size() - offset_ < count)
      return std::nullopt;
    const auto view = data_.subspan(offset_, count);
    offset_ += count;
    return view;
  }
  bool at_end() const { return offset_ == data_.size(); }

 private:
  ByteView data_;
  std::size_t offset_ = 0;
};

// Appends text byte by byte (GCC 12 at -O3 warns falsely about inserting a char range).
void put_text(Bytes& out, std::string_view text) {
  for (const char c : text)
    out.push_back(static_cast<std::uint8_t>(c));
}

std::string_view as_text(ByteView bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

}  // namespace

ServerSession::ServerSession(Export exported) : export_(std::move(exported)) {
  put(out_, kNbdMagic, 8);
  put(out_, kOptionMagic, 8);
  put(out_, kFlagFixedNewstyle | kFlagNoZeroes, 2);
  static_assert(kGreetingSize == 18);
}

void ServerSession::feed(ByteView data) {
  if (closed())
    return;
  in_.insert(in_.end(), data.begin(), data.end());
  while (!closed() && step()) {
  }
  if (in_offset_ > 0) {
    in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(in_offset_));
    in_offset_ = 0;
  }
}

Bytes ServerSession::take_output() {
  Bytes out;
  out.swap(out_);
  return out;
}

std::vector<ReadRequest> ServerSession::take_reads() {
  std::vector<ReadRequest> reads;
  reads.swap(reads_);
  return reads;
}

void ServerSession::reply_read(const ReadRequest& request, ByteView data) {
  if (data.size() != request.length) {
    reply_error(request.cookie, kEio);
    return;
  }
  put(out_, kSimpleReplyMagic, 4);
  put(out_, 0, 4);
  put(out_, request.cookie, 8);
  out_.insert(out_.end(), data.begin(), data.end());
}

void ServerSession::reply_error(std::uint64_t cookie, std::uint32_t error) {
  put(out_, kSimpleReplyMagic, 4);
  put(out_, error, 4);
  put(out_, cookie, 8);
}

bool ServerSession::step() {
  switch (phase_) {
    case Phase::kClientFlags:
      return step_client_flags();
    case Phase::kOptions:
      return step_option();
    case Phase::kTransmission:
      return step_command();
    case Phase::kClosed:
      return false;
  }
  return false;
}

bool ServerSession::step_client_flags() {
  const ByteView in(in_.data() + in_offset_, in_.size() - in_offset_);
  if (in.size() < 4)
    return false;
  const auto flags = load(in, 0, 4);
  in_offset_ += 4;
  if ((flags & kFlagFixedNewstyle) == 0) {
    close("the client does not speak the fixed newstyle handshake");
    return false;
  }
  if ((flags & ~std::uint64_t{kFlagFixedNewstyle | kFlagNoZeroes}) != 0) {
    close(fmt::format("unknown client flags {:#x}", flags));
    return false;
  }
  no_zeroes_ = (flags & kFlagNoZeroes) != 0;
  phase_ = Phase::kOptions;
  return true;
}

bool ServerSession::step_option() {
  const ByteView in(in_.data() + in_offset_, in_.size() - in_offset_);
  if (in.size() < kOptionHeaderSize)
    return false;
  if (load(in, 0, 8) != kOptionMagic) {
    close("an option without the IHAVEOPT magic");
    return false;
  }
  const auto option = static_cast<std::uint32_t>(load(in, 8, 4));
  const auto length = static_cast<std::uint32_t>(load(in, 12, 4));
  if (length > kMaxOptionLength) {
    close(fmt::format("option {} of {} bytes (at most {})", option, length, kMaxOptionLength));
    return false;
  }
  if (in.size() < kOptionHeaderSize + length)
    return false;
  in_offset_ += kOptionHeaderSize + length;
  handle_option(option, in.subspan(kOptionHeaderSize, length));
  return !closed();
}

void ServerSession::handle_option(std::uint32_t option, ByteView data) {
  switch (static_cast<Option>(option)) {
    case Option::kExportName:
      handle_export_name(data);
      return;
    case Option::kAbort:
      option_reply(option, OptionReply::kAck);
      close("");
      return;
    case Option::kList: {
      if (!data.empty()) {
        option_reply(option, OptionReply::kErrInvalid);
        return;
      }
      Bytes server;
      put(server, export_.name.size(), 4);
      put_text(server, export_.name);
      option_reply(option, OptionReply::kServer, server);
      option_reply(option, OptionReply::kAck);
      return;
    }
    case Option::kInfo:
    case Option::kGo:
      handle_go(option, data);
      return;
    case Option::kStructuredReply:
      break;
  }
  option_reply(option, OptionReply::kErrUnsup);
}

// GO and INFO: u32 name length, the name, u16 count, count u16 information requests.
void ServerSession::handle_go(std::uint32_t option, ByteView data) {
  Reader reader(data);
  const auto name_length = reader.number(4);
  const auto name = name_length ? reader.bytes(*name_length) : std::nullopt;
  const auto count = name ? reader.number(2) : std::nullopt;
  const auto requests = count ? reader.bytes(*count * 2) : std::nullopt;
  if (!requests || !reader.at_end()) {
    option_reply(option, OptionReply::kErrInvalid);
    return;
  }
  if (!name->empty() && as_text(*name) != export_.name) {
    option_reply(option, OptionReply::kErrUnknown);
    return;
  }
  put_export_info(option);
  bool block_size = false;
  for (std::size_t i = 0; i < *count; ++i)
    block_size |= load(*requests, i * 2, 2) == static_cast<std::uint16_t>(Info::kBlockSize);
  if (block_size) {
    Bytes info;
    put(info, static_cast<std::uint16_t>(Info::kBlockSize), 2);
    put(info, 1, 4);
    put(info, kPreferredBlock, 4);
    put(info, kMaxReadLength, 4);
    option_reply(option, OptionReply::kInfo, info);
  }
  option_reply(option, OptionReply::kAck);
  if (static_cast<Option>(option) == Option::kGo)
    phase_ = Phase::kTransmission;
}

// The oldest way in: no reply header, no error reply; an unknown name closes the session.
void ServerSession::handle_export_name(ByteView data) {
  if (!data.empty() && as_text(data) != export_.name) {
    close(fmt::format("EXPORT_NAME of an unknown export \"{}\"", as_text(data)));
    return;
  }
  put(out_, export_.size, 8);
  put(out_, transmission_flags(), 2);
  if (!no_zeroes_)
    out_.insert(out_.end(), kExportNameZeroes, 0);
  phase_ = Phase::kTransmission;
}

void ServerSession::put_export_info(std::uint32_t option) {
  Bytes info;
  put(info, static_cast<std::uint16_t>(Info::kExport), 2);
  put(info, export_.size, 8);
  put(info, transmission_flags(), 2);
  option_reply(option, OptionReply::kInfo, info);
}

void ServerSession::option_reply(std::uint32_t option, OptionReply type, ByteView data) {
  put(out_, kReplyMagic, 8);
  put(out_, option, 4);
  put(out_, static_cast<std::uint32_t>(type), 4);
  put(out_, data.size(), 4);
  out_.insert(out_.end(), data.begin(), data.end());
}

bool ServerSession::step_command() {
  const ByteView in(in_.data() + in_offset_, in_.size() - in_offset_);
  if (skip_payload_ > 0) {
    const auto skipped = std::min<std::uint64_t>(skip_payload_, in.size());
    in_offset_ += skipped;
    skip_payload_ -= skipped;
    return skip_payload_ == 0;
  }
  if (in.size() < kRequestSize)
    return false;
  if (load(in, 0, 4) != kRequestMagic) {
    close("a request without the request magic");
    return false;
  }
  in_offset_ += kRequestSize;
  handle_command(static_cast<std::uint16_t>(load(in, 4, 2)),
                 static_cast<std::uint16_t>(load(in, 6, 2)), load(in, 8, 8), load(in, 16, 8),
                 static_cast<std::uint32_t>(load(in, 24, 4)));
  return !closed();
}

void ServerSession::handle_command(std::uint16_t /*flags*/, std::uint16_t type,
                                   std::uint64_t cookie, std::uint64_t offset,
                                   std::uint32_t length) {
  switch (static_cast<Command>(type)) {
    case Command::kRead: {
      const bool inside = offset <= export_.size && length <= export_.size - offset;
      if (length == 0 || length > kMaxReadLength || !inside) {
        ++refused_;
        reply_error(cookie, kEinval);
        return;
      }
      reads_.push_back({cookie, offset, length});
      return;
    }
    case Command::kWrite:
      ++refused_;
      skip_payload_ = length;
      reply_error(cookie, kEperm);
      return;
    case Command::kDisc:
      close("");
      return;
  }
  ++refused_;
  reply_error(cookie, kEinval);
}

std::uint16_t ServerSession::transmission_flags() const {
  // The image never changes under a reader, so several connections may share it.
  return kTransmitHasFlags | kTransmitReadOnly | kTransmitCanMultiConn;
}

void ServerSession::close(std::string reason) {
  phase_ = Phase::kClosed;
  close_reason_ = std::move(reason);
}

}  // namespace berth::drive::nbd
