#pragma once
// The base image cache (BERTH_IMAGE_DIR), shared by the pods of a node: fetch from an http(s) URL
// or copy from a local path, verify, decompress, and keep one immutable entry per IMG_TARGET.
//
// Files in the cache, for an entry named T:
//   T               the image, complete and verified; never rewritten once there
//   T.berth.json    what T is: source, sha256, size, format (written before T appears)
//   T.lock          flock'd by whoever fetches T (who writes "<host> pid <pid>" into it); the
//                   others wait for it, the kernel releases it when the holder dies
//   T.download      the raw bytes of an unfinished download (resumed with Range)
//   T.download.json the URL and validators (ETag, Last-Modified) the partial bytes came from
//   T.part          the decompressed image of an unfinished compressed download
// A local path source is copied into the cache (sparse-aware) rather than used in place: pet
// disks name the cached base as their backing file, so it must never change under them, while a
// path source (a hostPath, a file in the container image) can be replaced at any time; and a
// compressed source has to be decompressed somewhere anyway.

#include <spdlog/logger.h>

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "drive/image/image_format.hpp"
#include "drive/image/source.hpp"

namespace berth::drive {

struct FetchParams {
  std::string source;                 // IMG_SOURCE: http(s) URL or absolute path
  std::filesystem::path image_dir;    // BERTH_IMAGE_DIR
  std::string target;                 // IMG_TARGET: file name of the entry in image_dir
  std::optional<std::string> sha256;  // IMG_CHECKSUM: 64 lower-case hex digits, of the file as
                                      // downloaded or of the decompressed image (either matches)
  std::optional<std::filesystem::path> ca_file;  // PEM CAs trusted besides the system's
  std::chrono::milliseconds connect_timeout{15'000};
  std::chrono::milliseconds stall_timeout{30'000};  // no byte for this long: the attempt failed
  unsigned max_attempts = 8;                        // per fetch, the first included
  std::chrono::milliseconds backoff{1'000};         // first retry delay, doubled each time
  std::chrono::milliseconds max_backoff{30'000};
  unsigned max_redirects = 10;
  std::uint64_t max_size = kDefaultMaxImageSize;     // IMG_MAX_SIZE: of the download and the image
  std::uint64_t keep_free = std::uint64_t{1} << 30;  // what a fetch leaves free in image_dir
  std::uint64_t space_check_every = 64 << 20;        // statvfs of image_dir after this many bytes
  std::chrono::milliseconds progress_interval{5'000};
  std::chrono::milliseconds lock_poll{250};
  // Called on progress: bytes arrived, a copy step was done, or (while another berth holds the
  // lock) that berth's partial download changed. For the phase budget's stall clock.
  std::function<void()> on_progress;
};

enum class CacheOutcome {
  kCached,      // the entry was there already
  kDownloaded,  // fetched over HTTP(S) now
  kCopied,      // copied from a local path now
};

struct CachedImage {
  std::filesystem::path path;  // the image, to use as the pet disk's backing file
  ImageFormat format = ImageFormat::kRaw;
  std::string sha256;  // of the image as cached (decompressed)
  std::uint64_t size = 0;
  CacheOutcome outcome = CacheOutcome::kCached;
};

// Returns the cache entry for params.target, fetching it first when it is missing, partial or
// corrupt. Concurrent callers (other pods, or this process) wait for one fetch. Errors:
// kInvalidInput (bad parameters), kConflict (the cached entry has another checksum than
// IMG_CHECKSUM), kHttp/kTransient (the server; transient ones after max_attempts), kIntegrity
// (checksum mismatch, corrupt compressed data, unsupported format; the download is discarded),
// kSystem (local I/O, or too little free space in image_dir: checked against Content-Length before
// writing and every space_check_every bytes while writing; a partial download is kept for the
// next start to resume).
boost::asio::awaitable<Result<CachedImage>> fetch_image(FetchParams params,
                                                        std::shared_ptr<spdlog::logger> log);

// Writes T.berth.json for an entry filled another way (IMG_LAZY, lazy_start.hpp), before T
// appears: an uncompressed image of `size` bytes with `sha256`. Errors: kSystem.
Result<void> record_cache_entry(const std::filesystem::path& image_dir, const std::string& target,
                                const std::string& source, const std::string& sha256,
                                std::uint64_t size, ImageFormat format);

}  // namespace berth::drive
