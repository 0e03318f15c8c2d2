#pragma once
// The lazily filled base image (IMG_LAZY): a cache entry that QEMU reads (through the NBD export,
// drive/image/nbd.hpp) while it is still downloading. Reads of chunks already on disk are served
// from the partial file; reads of missing chunks fetch them at once with a Range request, ahead of
// the background fill, which fetches the rest in order. When every chunk is there the whole file
// is hashed and checked against IMG_CHECKSUM; only then is it renamed to the cache entry's name.
//
// Files in the cache, for an entry named T (besides those of image_cache.hpp):
//   T.lazy    the image being filled, sparse, at its final size
//   T.chunks  which chunks of T.lazy are durable (chunk_map.hpp), rewritten atomically after the
//             chunks it adds were fdatasync'ed: a crash resumes with what it names
// The caller holds T.lock (image_cache.hpp) for as long as the LazyImage lives.
//
// One io_context thread: reads and the fill interleave on it; a chunk is fetched once however
// many readers wait for it. fdatasync, the map write and the final hash run on worker threads.

#include <spdlog/logger.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "drive/files.hpp"
#include "drive/image/chunk_map.hpp"
#include "drive/image/http_client.hpp"

namespace berth::drive {

struct LazyParams {
  std::string url;                    // IMG_SOURCE, http(s)
  std::filesystem::path image_dir;    // BERTH_IMAGE_DIR
  std::string target;                 // IMG_TARGET
  std::optional<std::string> sha256;  // IMG_CHECKSUM (of the image: lazy sources are never
                                      // compressed)
  HttpOptions http;
  std::uint32_t chunk_size = kDefaultChunkSize;
  std::uint32_t fill_chunks = 8;  // chunks per background request
  unsigned max_attempts = 4;      // per Range request, for kTransient errors
  std::chrono::milliseconds backoff{500};
};

// What one Range probe (GET bytes=0-0) says of the source.
struct RangeProbe {
  bool ranges = false;     // 206 with the total size: the lazy path can be taken
  std::uint64_t size = 0;  // the whole file
  std::string validator;   // a strong ETag, else Last-Modified (If-Range on every request)
  std::string reason;      // why not, when !ranges ("the server answered 200 ...")
};

// Probes `url`. Errors: those of http_get (a server that answers but without Range support is
// not an error: ranges is false and reason says why).
boost::asio::awaitable<Result<RangeProbe>> probe_ranges(HttpOptions options, std::string url);

struct LazyStats {
  std::uint64_t image_size = 0;
  std::uint64_t present_bytes = 0;  // durable in T.lazy
  std::uint64_t demand_bytes = 0;   // fetched because a read needed them
  std::uint64_t fill_bytes = 0;     // fetched by the background fill
  std::uint64_t demand_requests = 0;
  bool verified = false;  // hashed, checked and renamed to T
};

class LazyImage {
 public:
  // Opens (or creates, sparse, at probe.size) T.lazy and resumes from T.chunks when it describes
  // the same source; otherwise starts with no chunk present. Errors: kInvalidInput (chunk size),
  // kSystem (files).
  static Result<std::shared_ptr<LazyImage>> open(LazyParams params, RangeProbe probe,
                                                 std::shared_ptr<spdlog::logger> log);

  // The bytes [offset, offset + length), after fetching the chunks of it that are missing.
  // Errors: kInvalidInput (outside the image), those of the Range requests, kSystem (files).
  boost::asio::awaitable<Result<std::vector<std::uint8_t>>> read(std::uint64_t offset,
                                                                 std::uint32_t length);

  // Fetches every missing chunk, hashes the file, checks it against params.sha256 and renames
  // T.lazy to T (T.chunks removed). Errors: kIntegrity (checksum mismatch: T.lazy and T.chunks
  // are removed; or the source changed under the fill), those of the Range requests, kSystem.
  boost::asio::awaitable<Result<void>> fill();

  // Called with the SHA-256 once it matched, before T.lazy becomes T: the cache's record
  // (image_cache.hpp's T.berth.json); its error fails fill().
  void on_verified(std::function<Result<void>(const std::string& sha256)> record) {
    on_verified_ = std::move(record);
  }

  LazyStats stats() const;
  std::filesystem::path partial_path() const { return partial_; }
  std::filesystem::path final_path() const { return final_; }
  // The SHA-256 of the verified image (empty until fill() succeeded).
  const std::string& sha256() const { return sha256_; }

 private:
  enum class Origin { kDemand, kFill };

  LazyImage(LazyParams params, RangeProbe probe, ChunkMap map, UniqueFd fd,
            std::shared_ptr<spdlog::logger> log);

  // Waits until chunks [first, last] are present, fetching those nobody fetches yet.
  boost::asio::awaitable<Result<void>> ensure(std::uint64_t first, std::uint64_t last,
                                              Origin origin);
  // Fetches chunks [first, last] with retries, then makes them durable and marks them.
  boost::asio::awaitable<Result<void>> fetch_run(std::uint64_t first, std::uint64_t last,
                                                 Origin origin);
  boost::asio::awaitable<Result<void>> fetch_once(std::uint64_t from, std::uint64_t last_byte);
  boost::asio::awaitable<Result<void>> commit(std::uint64_t first, std::uint64_t last);
  boost::asio::awaitable<Result<void>> verify_and_publish();
  std::optional<std::uint64_t> first_missing(std::uint64_t first, std::uint64_t last) const;

  LazyParams params_;
  RangeProbe probe_;
  ChunkMap map_;
  UniqueFd fd_;
  std::shared_ptr<spdlog::logger> log_;
  std::filesystem::path partial_;
  std::filesystem::path final_;
  std::filesystem::path map_path_;
  // Chunks being fetched -> the run's wake-up (a timer cancelled when the run ends).
  struct Waiter;
  std::map<std::uint64_t, std::shared_ptr<Waiter>> in_flight_;
  LazyStats stats_;
  std::string sha256_;
  std::function<Result<void>(const std::string& sha256)> on_verified_;
};

}  // namespace berth::drive
