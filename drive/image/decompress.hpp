#pragma once
// Streamed decompression of gzip, xz and zstd (zlib, liblzma, libzstd): compressed bytes in,
// pieces of the decompressed stream out through a sink, constant memory whatever the size.

#include <functional>
#include <memory>
#include <span>
#include <string_view>

#include "common/error.hpp"

namespace berth::drive {

enum class Compression { kNone, kGzip, kXz, kZstd };

// "none", "gzip", "xz", "zstd".
std::string_view compression_name(Compression compression);

// The compression of a stream from its first bytes (6 are enough), by magic number; kNone when
// none matches. The name of the source is not used: the bytes say what they are.
Compression detect_compression(std::span<const char> head);

class Decompressor {
 public:
  using Sink = std::function<Result<void>(std::span<const char>)>;

  // A decompressor for `compression` (not kNone).
  static std::unique_ptr<Decompressor> create(Compression compression);
  virtual ~Decompressor() = default;

  // Decompresses `input`, handing the output to `sink` piece by piece. Concatenated streams
  // (multi-member gzip, several xz streams or zstd frames) are one stream. Errors: corrupt data
  // (kIntegrity), or whatever `sink` returned.
  virtual Result<void> feed(std::span<const char> input, const Sink& sink) = 0;
  // Ends the stream. Errors: the compressed stream was truncated (kIntegrity).
  virtual Result<void> finish(const Sink& sink) = 0;
};

}  // namespace berth::drive
