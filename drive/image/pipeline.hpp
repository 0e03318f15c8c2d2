#pragma once
// The image cache's byte pipeline: raw bytes in (a download or a local copy); hashed, stored,
// decompressed when compressed, hashed again and stored as the image. Not thread-safe: one owner
// at a time (the fetch, or a worker thread it handed the pipeline to).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "drive/files.hpp"
#include "drive/image/decompress.hpp"
#include "drive/image/sha256.hpp"

namespace berth::drive {

class Pipeline {
 public:
  // `raw`: where the raw bytes are kept (downloads, for resuming), or nullopt (local copies).
  // `part`: where the image goes when it is not the raw file itself (compressed or no raw file).
  static Result<std::unique_ptr<Pipeline>> create(std::optional<std::filesystem::path> raw,
                                                  OpenMode raw_mode, std::filesystem::path part,
                                                  std::uint64_t max_size);

  // Bytes that are new: stored in the raw file too.
  Result<void> feed(std::span<const char> chunk) { return consume(chunk, true); }
  // `count` zero bytes that are new (a hole of a sparse source): hashed without being read, and
  // left as a hole in the image. Errors: as feed().
  Result<void> feed_zeros(std::uint64_t count);
  // Bytes already in the raw file (resuming): hashed and decompressed only.
  Result<void> replay(std::span<const char> chunk) { return consume(chunk, false); }

  // Flushes the decompressor and fsyncs the files (slow for a large image: not on the loop).
  Result<void> finish();

  std::uint64_t raw_bytes() const { return raw_bytes_; }
  std::uint64_t image_bytes() const { return image_bytes_; }
  Result<std::string> raw_sha256() const { return raw_hash_.hex(); }
  Result<std::string> image_sha256() const {
    return compression_ == Compression::kNone ? raw_hash_.hex() : image_hash_.hex();
  }
  Compression compression() const { return compression_; }
  std::span<const char> image_head() const { return image_head_; }
  std::filesystem::path image_path() const {
    return image_writer_ ? image_writer_->path() : raw_writer_ ? raw_writer_->path() : part_;
  }

 private:
  Pipeline(std::filesystem::path part, std::uint64_t max_size)
      : part_(std::move(part)), max_size_(max_size) {}

  Result<void> consume(std::span<const char> chunk, bool store);
  // Decides the compression from the first bytes and routes what was held back.
  Result<void> decide();
  Result<void> route(std::span<const char> chunk);
  Result<void> to_image(std::span<const char> out);
  void note_image(std::span<const char> bytes);
  Error too_large(std::string_view what) const;

  std::filesystem::path part_;
  std::uint64_t max_size_;
  std::optional<SparseFileWriter> raw_writer_;
  std::optional<SparseFileWriter> image_writer_;
  Sha256 raw_hash_;
  Sha256 image_hash_;
  std::uint64_t raw_bytes_ = 0;
  std::uint64_t image_bytes_ = 0;
  bool decided_ = false;
  std::vector<char> pending_;
  Compression compression_ = Compression::kNone;
  std::unique_ptr<Decompressor> decompressor_;
  std::vector<char> image_head_;
};

}  // namespace berth::drive
