#pragma once
// Bounds-checked big-endian reading and writing of wire formats. Internal to the codecs: every read
// says whether the bytes were there, so a parser cannot run past its input.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace berth::dhcp {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

class ByteReader {
 public:
  explicit ByteReader(ByteView data, std::size_t offset = 0) : data_(data), offset_(offset) {}

  std::size_t offset() const { return offset_; }
  std::size_t remaining() const { return offset_ <= data_.size() ? data_.size() - offset_ : 0; }
  bool at_end() const { return remaining() == 0; }

  // Each read returns nullopt (and consumes nothing) when fewer bytes remain than it needs.
  std::optional<std::uint8_t> u8() {
    if (remaining() < 1)
      return std::nullopt;
    return data_[offset_++];
  }
  std::optional<std::uint16_t> u16() {
    if (remaining() < 2)
      return std::nullopt;
    const auto value = static_cast<std::uint16_t>(data_[offset_] << 8 | data_[offset_ + 1]);
    offset_ += 2;
    return value;
  }
  std::optional<std::uint32_t> u32() {
    if (remaining() < 4)
      return std::nullopt;
    const std::uint32_t value = std::uint32_t{data_[offset_]} << 24
                                | std::uint32_t{data_[offset_ + 1]} << 16
                                | std::uint32_t{data_[offset_ + 2]} << 8 | data_[offset_ + 3];
    offset_ += 4;
    return value;
  }
  std::optional<ByteView> bytes(std::size_t count) {
    if (remaining() < count)
      return std::nullopt;
    const ByteView view = data_.subspan(offset_, count);
    offset_ += count;
    return view;
  }
  bool skip(std::size_t count) { return bytes(count).has_value(); }

 private:
  ByteView data_;
  std::size_t offset_;
};

inline void put_u8(Bytes& out, std::uint8_t value) {
  out.push_back(value);
}
inline void put_u16(Bytes& out, std::uint16_t value) {
  out.push_back(static_cast<std::uint8_t>(value >> 8));
  out.push_back(static_cast<std::uint8_t>(value));
}
inline void put_u32(Bytes& out, std::uint32_t value) {
  put_u16(out, static_cast<std::uint16_t>(value >> 16));
  put_u16(out, static_cast<std::uint16_t>(value));
}
inline void put_bytes(Bytes& out, ByteView bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

// Overwrites two bytes at `offset` (which the caller has checked is in range).
inline void store_u16(Bytes& out, std::size_t offset, std::uint16_t value) {
  out[offset] = static_cast<std::uint8_t>(value >> 8);
  out[offset + 1] = static_cast<std::uint8_t>(value);
}
inline std::uint16_t load_u16(ByteView data, std::size_t offset) {
  return static_cast<std::uint16_t>(data[offset] << 8 | data[offset + 1]);
}

}  // namespace berth::dhcp
