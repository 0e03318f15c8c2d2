#include "drive/image/pipeline.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "drive/image/image_format.hpp"
#include "drive/progress.hpp"

namespace berth::drive {

namespace fs = std::filesystem;

Result<std::unique_ptr<Pipeline>> Pipeline::create(std::optional<fs::path> raw, OpenMode raw_mode,
                                                   fs::path part, std::uint64_t max_size) {
  auto p = std::unique_ptr<Pipeline>(new Pipeline(std::move(part), max_size));
  if (raw) {
    auto writer = SparseFileWriter::open(*raw, raw_mode);
    if (!writer)
      return writer.error();
    p->raw_writer_.emplace(std::move(*writer));
  }
  return p;
}

Result<void> Pipeline::feed_zeros(std::uint64_t count) {
  static const std::array<char, 1 << 16> kZeros{};
  // The fast way needs an uncompressed stream whose head has been probed and no raw file to
  // fill; otherwise the zeros go through feed() like any bytes.
  while (count > 0
         && (!decided_ || decompressor_ || raw_writer_ || image_head_.size() < kFormatProbeBytes)) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(count, kZeros.size()));
    if (auto r = feed({kZeros.data(), n}); !r)
      return r;
    count -= n;
  }
  if (count == 0)
    return {};
  if (raw_bytes_ + count > max_size_)
    return too_large("download");
  raw_bytes_ += count;
  image_bytes_ += count;
  raw_hash_.update_zeros(count);
  if (image_writer_)
    image_writer_->skip(count);
  return {};
}

Result<void> Pipeline::finish() {
  if (!decided_)
    if (auto r = decide(); !r)
      return r;
  if (decompressor_)
    if (auto r = decompressor_->finish([this](auto out) { return to_image(out); }); !r)
      return r;
  if (raw_writer_)
    if (auto r = raw_writer_->finish(); !r)
      return r;
  if (image_writer_)
    if (auto r = image_writer_->finish(); !r)
      return r;
  return {};
}

Result<void> Pipeline::consume(std::span<const char> chunk, bool store) {
  raw_bytes_ += chunk.size();
  if (raw_bytes_ > max_size_)
    return too_large("download");
  raw_hash_.update(chunk);
  if (store && raw_writer_)
    if (auto r = raw_writer_->write(chunk); !r)
      return r;
  if (!decided_) {
    pending_.insert(pending_.end(), chunk.begin(), chunk.end());
    if (pending_.size() < 6)
      return {};
    if (auto r = decide(); !r)
      return r;
    return {};
  }
  return route(chunk);
}

Result<void> Pipeline::decide() {
  decided_ = true;
  compression_ = detect_compression(pending_);
  if (compression_ != Compression::kNone)
    decompressor_ = Decompressor::create(compression_);
  if (compression_ != Compression::kNone || !raw_writer_) {
    auto writer = SparseFileWriter::open(part_, OpenMode::kTruncate);
    if (!writer)
      return writer.error();
    image_writer_.emplace(std::move(*writer));
  }
  std::vector<char> held = std::move(pending_);
  return route(held);
}

Result<void> Pipeline::route(std::span<const char> chunk) {
  if (decompressor_)
    return decompressor_->feed(chunk, [this](auto out) { return to_image(out); });
  // Not compressed: the image is the raw stream (already hashed, and stored if raw_writer_).
  note_image(chunk);
  if (image_writer_)
    return image_writer_->write(chunk);
  return {};
}

Result<void> Pipeline::to_image(std::span<const char> out) {
  if (image_bytes_ + out.size() > max_size_)
    return too_large("decompressed image");
  note_image(out);
  image_hash_.update(out);
  return image_writer_->write(out);
}

void Pipeline::note_image(std::span<const char> bytes) {
  image_bytes_ += bytes.size();
  if (image_head_.size() < kFormatProbeBytes) {
    const std::size_t n = std::min(bytes.size(), kFormatProbeBytes - image_head_.size());
    image_head_.insert(image_head_.end(), bytes.begin(), bytes.begin() + static_cast<long>(n));
  }
}

Error Pipeline::too_large(std::string_view what) const {
  return {ErrorKind::kIntegrity,
          fmt::format("the {} is larger than IMG_MAX_SIZE ({}); raise IMG_MAX_SIZE if the image "
                      "is meant to be this large",
                      what, format_bytes(max_size_))};
}

}  // namespace berth::drive
