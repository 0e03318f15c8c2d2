#include "drive/image/chunk_map.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>

namespace berth::drive {
namespace {

constexpr std::string_view kMagic = "BERTHMAP";
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kHeaderSize = 8 + 4 + 4 + 8 + 4;

void put(std::vector<std::uint8_t>& out, std::uint64_t value, std::size_t width) {
  for (std::size_t i = width; i > 0; --i)
    out.push_back(static_cast<std::uint8_t>(value >> (8 * (i - 1))));
}
std::uint64_t load(std::span<const std::uint8_t> data, std::size_t offset, std::size_t width) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < width; ++i)
    value = value << 8 | data[offset + i];
  return value;
}

// Appends text byte by byte (GCC 12 at -O3 warns falsely about inserting a char range).
void put_text(std::vector<std::uint8_t>& out, std::string_view text) {
  for (const char c : text)
    out.push_back(static_cast<std::uint8_t>(c));
}

Error stale(std::string what) {
  return {ErrorKind::kIntegrity, "the chunk map " + std::move(what) + "; the fill starts over"};
}

}  // namespace

ChunkMap::ChunkMap(std::uint64_t image_size, std::uint32_t chunk_size, std::string validator)
    : image_size_(image_size),
      chunk_size_(chunk_size),
      validator_(std::move(validator)),
      count_(image_size / chunk_size + (image_size % chunk_size != 0 ? 1 : 0)),
      bits_((count_ + 7) / 8, 0) {}

Result<ChunkMap> ChunkMap::decode(std::span<const std::uint8_t> bytes, std::uint64_t image_size,
                                  std::uint32_t chunk_size, std::string_view validator) {
  if (bytes.size() < kHeaderSize
      || std::string_view(reinterpret_cast<const char*>(bytes.data()), 8) != kMagic)
    return stale("is not a berth chunk map");
  if (load(bytes, 8, 4) != kVersion)
    return stale(fmt::format("has version {} (this berth writes {})", load(bytes, 8, 4), kVersion));
  if (load(bytes, 12, 4) != chunk_size || load(bytes, 16, 8) != image_size)
    return stale(fmt::format("is of {} bytes in chunks of {}, the image now {} in chunks of {}",
                             load(bytes, 16, 8), load(bytes, 12, 4), image_size, chunk_size));
  const auto validator_length = load(bytes, 24, 4);
  ChunkMap map(image_size, chunk_size, std::string(validator));
  if (bytes.size() - kHeaderSize < validator_length
      || bytes.size() - kHeaderSize - validator_length != map.bits_.size())
    return stale(fmt::format("has {} bytes, not what its header says", bytes.size()));
  const auto recorded = bytes.subspan(kHeaderSize, validator_length);
  if (std::string_view(reinterpret_cast<const char*>(recorded.data()), recorded.size())
      != validator)
    return stale("was filled from another version of the source (its validator changed)");
  const auto bits = bytes.subspan(kHeaderSize + validator_length);
  for (std::uint64_t i = 0; i < map.count_; ++i) {
    if ((bits[i / 8] >> (i % 8) & 1) != 0)
      map.mark(i);
  }
  if (!std::equal(bits.begin(), bits.end(), map.bits_.begin()))
    return stale("has bits set past the last chunk");
  return map;
}

std::vector<std::uint8_t> ChunkMap::encode() const {
  std::vector<std::uint8_t> out;
  put_text(out, kMagic);
  put(out, kVersion, 4);
  put(out, chunk_size_, 4);
  put(out, image_size_, 8);
  put(out, validator_.size(), 4);
  put_text(out, validator_);
  out.insert(out.end(), bits_.begin(), bits_.end());
  return out;
}

std::uint64_t ChunkMap::chunk_end(std::uint64_t index) const {
  return std::min(image_size_, (index + 1) * chunk_size_);
}

std::optional<ChunkSpan> ChunkMap::span_of(std::uint64_t offset, std::uint64_t length) const {
  if (length == 0 || offset >= image_size_ || length > image_size_ - offset)
    return std::nullopt;
  return ChunkSpan{offset / chunk_size_, (offset + length - 1) / chunk_size_};
}

bool ChunkMap::present(std::uint64_t index) const {
  return index < count_ && (bits_[index / 8] >> (index % 8) & 1) != 0;
}

void ChunkMap::mark(std::uint64_t index) {
  if (index >= count_ || present(index))
    return;
  bits_[index / 8] = static_cast<std::uint8_t>(bits_[index / 8] | 1u << (index % 8));
  ++present_;
}

bool ChunkMap::covers(std::uint64_t offset, std::uint64_t length) const {
  const auto span = span_of(offset, length);
  if (!span)
    return false;
  for (auto i = span->first; i <= span->last; ++i) {
    if (!present(i))
      return false;
  }
  return true;
}

std::optional<std::uint64_t> ChunkMap::next_missing(std::uint64_t from) const {
  if (complete())
    return std::nullopt;
  for (std::uint64_t step = 0; step < count_; ++step) {
    const auto index = (from + step) % count_;
    if (!present(index))
      return index;
  }
  return std::nullopt;
}

std::uint64_t ChunkMap::present_bytes() const {
  std::uint64_t bytes = present_ * chunk_size_;
  if (count_ > 0 && present(count_ - 1))
    bytes -= count_ * chunk_size_ - image_size_;
  return bytes;
}

Result<void> validate_chunk_size(std::uint64_t chunk_size) {
  if (chunk_size < 4096 || chunk_size > (64u << 20) || !std::has_single_bit(chunk_size))
    return invalid_input(fmt::format(
        "IMG_LAZY_CHUNK: {} is not a power of two from 4096 to 67108864 bytes", chunk_size));
  return {};
}

}  // namespace berth::drive
