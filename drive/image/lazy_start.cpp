#include "drive/image/lazy_start.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <system_error>

#include "drive/image/decompress.hpp"
#include "drive/image/image_cache.hpp"
#include "drive/image/source.hpp"

namespace berth::drive {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

bool entry_exists(const LazyParams& p) {
  std::error_code ec;
  return fs::is_regular_file(p.image_dir / p.target, ec);
}

std::span<const char> as_chars(const std::vector<std::uint8_t>& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// What the first bytes say: nullopt when the lazy path can take it, else why not.
asio::awaitable<Result<std::optional<std::string>>> refuse_by_content(LazyImage& image,
                                                                      std::uint64_t size,
                                                                      ImageFormat& format) {
  const auto head_length = static_cast<std::uint32_t>(std::min<std::uint64_t>(size, 512));
  auto head = co_await image.read(0, head_length);
  if (!head)
    co_return head.error();
  if (auto compression = detect_compression(as_chars(*head)); compression != Compression::kNone)
    co_return std::optional<std::string>(
        fmt::format("the source is {}-compressed", compression_name(compression)));
  auto detected = detect_image_format(as_chars(*head));
  if (!detected)
    co_return detected.error();
  format = *detected;
  if (size > kIso9660MagicOffset + kIso9660Magic.size()) {
    auto magic = co_await image.read(kIso9660MagicOffset, kIso9660Magic.size());
    if (!magic)
      co_return magic.error();
    if (is_iso9660(as_chars(*magic)))
      co_return std::optional<std::string>("the source is an ISO (a CD-ROM, read whole)");
  }
  co_return std::optional<std::string>();
}

}  // namespace

asio::awaitable<Result<LazyDecision>> start_lazy(LazyParams params,
                                                 std::shared_ptr<spdlog::logger> log) {
  LazyDecision decision;
  if (!is_url(params.url)) {
    decision.reason = "IMG_SOURCE is a local path";
    co_return decision;
  }
  if (entry_exists(params)) {
    decision.reason = "the image is cached already";
    co_return decision;
  }
  const fs::path lock_path = params.image_dir / (params.target + ".lock");
  std::error_code ec;
  fs::create_directories(params.image_dir, ec);
  const std::chrono::milliseconds poll{250};
  auto lock = co_await FileLock::acquire(lock_path, params.target, poll, log);
  if (!lock)
    co_return lock.error();
  if (entry_exists(params)) {
    decision.reason = "another pod cached the image meanwhile";
    co_return decision;
  }
  auto probe = co_await probe_ranges(params.http, params.url);
  if (!probe && probe.error().kind == ErrorKind::kTransient) {
    // The full download retries with backoff; the probe does not.
    decision.reason = fmt::format("the Range probe failed ({})", probe.error().message);
    co_return decision;
  }
  if (!probe)
    co_return probe.error();
  if (!probe->ranges) {
    decision.reason = probe->reason;
    co_return decision;
  }
  auto image = LazyImage::open(params, *probe, log);
  if (!image)
    co_return image.error();
  ImageFormat format = ImageFormat::kRaw;
  auto refused = co_await refuse_by_content(**image, probe->size, format);
  if (!refused)
    co_return refused.error();
  if (*refused) {
    std::error_code removed;
    fs::remove((*image)->partial_path(), removed);
    fs::remove(params.image_dir / (params.target + ".chunks"), removed);
    decision.reason = **refused;
    co_return decision;
  }
  (*image)->on_verified([p = params, size = probe->size, format](const std::string& sha256) {
    return record_cache_entry(p.image_dir, p.target, p.url, sha256, size, format);
  });
  decision.start = LazyStart{*image, std::move(*lock), format};
  co_return decision;
}

}  // namespace berth::drive
