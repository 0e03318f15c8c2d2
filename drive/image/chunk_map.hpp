#pragma once
// Which chunks of a lazily filled image (IMG_LAZY) are in the cache file: one bit per chunk
// (1 MiB by default), kept beside the image as T.chunks so a crash mid-fill resumes with what is on
// disk. Pure: the lazy store fdatasyncs the image before it writes the map (write_file_atomic), so
// the map never names bytes that are not durable.
//
// Persisted form (all integers big-endian):
//   "BERTHMAP" | u32 version (1) | u32 chunk size | u64 image size | u32 validator length |
//   validator (the ETag or Last-Modified the bytes came from) | ceil(chunks / 8) bytes of bits,
//   chunk i is bit (i % 8) of byte i / 8; bits past the last chunk are zero.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace berth::drive {

inline constexpr std::uint32_t kDefaultChunkSize = 1u << 20;

// The chunks [first, last] that an access touches.
struct ChunkSpan {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
};

class ChunkMap {
 public:
  // An empty map of an image of `image_size` bytes; chunk_size must be a power of two >= 4096
  // (checked by callers through validate_chunk_size).
  ChunkMap(std::uint64_t image_size, std::uint32_t chunk_size, std::string validator);

  // Reads the persisted form; an error (kIntegrity) when it is malformed, or when it describes
  // another image (size, chunk size or validator differ): the caller starts the fill over.
  static Result<ChunkMap> decode(std::span<const std::uint8_t> bytes, std::uint64_t image_size,
                                 std::uint32_t chunk_size, std::string_view validator);
  std::vector<std::uint8_t> encode() const;

  std::uint64_t image_size() const { return image_size_; }
  std::uint32_t chunk_size() const { return chunk_size_; }
  std::uint64_t chunk_count() const { return count_; }
  // The byte range [begin, end) of chunk `index` (the last one may be short).
  std::uint64_t chunk_begin(std::uint64_t index) const { return index * chunk_size_; }
  std::uint64_t chunk_end(std::uint64_t index) const;
  // The chunks that [offset, offset + length) touches; nullopt when empty or past the image.
  std::optional<ChunkSpan> span_of(std::uint64_t offset, std::uint64_t length) const;

  bool present(std::uint64_t index) const;
  void mark(std::uint64_t index);
  // Whether every chunk that [offset, offset + length) touches is present.
  bool covers(std::uint64_t offset, std::uint64_t length) const;
  // The first missing chunk at or after `from`, wrapping to the start; nullopt when complete.
  std::optional<std::uint64_t> next_missing(std::uint64_t from) const;

  std::uint64_t present_chunks() const { return present_; }
  std::uint64_t present_bytes() const;
  bool complete() const { return present_ == count_; }

 private:
  std::uint64_t image_size_;
  std::uint32_t chunk_size_;
  std::string validator_;
  std::uint64_t count_;
  std::uint64_t present_ = 0;
  std::vector<std::uint8_t> bits_;
};

// Checks a chunk size: a power of two from 4 KiB to 64 MiB. Error: kInvalidInput, naming it.
Result<void> validate_chunk_size(std::uint64_t chunk_size);

}  // namespace berth::drive
