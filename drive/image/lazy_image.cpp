#include "drive/image/lazy_image.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>

#include "common/async.hpp"
#include "drive/image/sha256.hpp"

namespace berth::drive {

namespace asio = boost::asio;
namespace fs = std::filesystem;

struct LazyImage::Waiter {
  explicit Waiter(asio::any_io_executor executor) : timer(executor) {
    timer.expires_at(asio::steady_timer::time_point::max());
  }
  asio::steady_timer timer;
};

namespace {

Result<void> pwrite_all(int fd, std::span<const char> data, std::uint64_t offset) {
  while (!data.empty()) {
    const auto n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return system_error("writing the lazily filled image", n < 0 ? errno : EIO);
    data = data.subspan(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  return {};
}

Result<void> pread_all(int fd, std::span<std::uint8_t> out, std::uint64_t offset) {
  while (!out.empty()) {
    const auto n = ::pread(fd, out.data(), out.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return system_error("reading the lazily filled image", n < 0 ? errno : EIO);
    out = out.subspan(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  return {};
}

// SHA-256 of [0, size) of the open file. Blocking: on a worker thread.
Result<std::string> hash_fd(int fd, std::uint64_t size) {
  Sha256 hash;
  std::vector<std::uint8_t> buffer(std::size_t{4} << 20);
  for (std::uint64_t at = 0; at < size;) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), size - at));
    if (auto r = pread_all(fd, std::span(buffer).first(n), at); !r)
      return r.error();
    hash.update(std::span(reinterpret_cast<const char*>(buffer.data()), n));
    at += n;
  }
  return hash.hex();
}

}  // namespace

asio::awaitable<Result<RangeProbe>> probe_ranges(HttpOptions options, std::string url) {
  RangeProbe probe;
  auto on_head = [&probe](const HttpHead& head) -> Result<HeadAction> {
    const auto& range = head.content_range;
    if (head.status != 206 || !range || !range->total || range->first != 0u) {
      probe.reason = fmt::format("the server answered {} to a Range request", head.status);
      return HeadAction::kSkipBody;
    }
    probe.validator =
        !head.etag.empty() && !head.etag.starts_with("W/") ? head.etag : head.last_modified;
    if (probe.validator.empty()) {
      probe.reason = "the server sends neither a strong ETag nor Last-Modified";
      return HeadAction::kSkipBody;
    }
    probe.ranges = true;
    probe.size = *range->total;
    return HeadAction::kSkipBody;
  };
  auto on_body = [](std::span<const char>) { return Result<void>{}; };
  std::optional<RangeRequest> range = RangeRequest{0, "", 0};
  auto result = co_await http_get(std::move(options), std::move(url), range, on_head, on_body);
  if (!result)
    co_return result.error();
  co_return probe;
}

Result<std::shared_ptr<LazyImage>> LazyImage::open(LazyParams params, RangeProbe probe,
                                                   std::shared_ptr<spdlog::logger> log) {
  if (auto valid = validate_chunk_size(params.chunk_size); !valid)
    return valid.error();
  const fs::path partial = params.image_dir / (params.target + ".lazy");
  const fs::path map_path = params.image_dir / (params.target + ".chunks");
  UniqueFd fd(::open(partial.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd)
    return system_error(fmt::format("opening {}", partial.string()), errno);
  ChunkMap map(probe.size, params.chunk_size, probe.validator);
  if (auto bytes = read_file(map_path, std::uint64_t{64} << 20); bytes) {
    const std::span raw(reinterpret_cast<const std::uint8_t*>(bytes->data()), bytes->size());
    if (auto resumed = ChunkMap::decode(raw, probe.size, params.chunk_size, probe.validator))
      map = std::move(*resumed);
    else
      log->warn("{}: {}", map_path.string(), resumed.error().message);
  }
  // The size first, so that a resumed map never names bytes past the end of a shorter file.
  if (::ftruncate(fd.get(), static_cast<off_t>(probe.size)) != 0)
    return system_error(fmt::format("sizing {}", partial.string()), errno);
  log->info("lazy image {}: {} of {} bytes present ({} chunks of {})", partial.string(),
            map.present_bytes(), probe.size, map.chunk_count(), params.chunk_size);
  return std::shared_ptr<LazyImage>(
      new LazyImage(std::move(params), std::move(probe), std::move(map), std::move(fd), log));
}

LazyImage::LazyImage(LazyParams params, RangeProbe probe, ChunkMap map, UniqueFd fd,
                     std::shared_ptr<spdlog::logger> log)
    : params_(std::move(params)),
      probe_(std::move(probe)),
      map_(std::move(map)),
      fd_(std::move(fd)),
      log_(std::move(log)),
      partial_(params_.image_dir / (params_.target + ".lazy")),
      final_(params_.image_dir / params_.target),
      map_path_(params_.image_dir / (params_.target + ".chunks")) {
  stats_.image_size = probe_.size;
}

LazyStats LazyImage::stats() const {
  LazyStats stats = stats_;
  stats.present_bytes = map_.present_bytes();
  return stats;
}

asio::awaitable<Result<std::vector<std::uint8_t>>> LazyImage::read(std::uint64_t offset,
                                                                   std::uint32_t length) {
  const auto span = map_.span_of(offset, length);
  if (!span)
    co_return invalid_input(fmt::format("a read of {} bytes at {} is outside the image of {}",
                                        length, offset, probe_.size));
  if (!map_.covers(offset, length)) {
    ++stats_.demand_requests;
    auto ready = co_await ensure(span->first, span->last, Origin::kDemand);
    if (!ready)
      co_return ready.error();
  }
  std::vector<std::uint8_t> data(length);
  if (auto r = pread_all(fd_.get(), data, offset); !r)
    co_return r.error();
  co_return data;
}

std::optional<std::uint64_t> LazyImage::first_missing(std::uint64_t first,
                                                      std::uint64_t last) const {
  for (auto i = first; i <= last; ++i) {
    if (!map_.present(i))
      return i;
  }
  return std::nullopt;
}

asio::awaitable<Result<void>> LazyImage::ensure(std::uint64_t first, std::uint64_t last,
                                                Origin origin) {
  for (;;) {
    const auto missing = first_missing(first, last);
    if (!missing)
      co_return Result<void>{};
    if (auto busy = in_flight_.find(*missing); busy != in_flight_.end()) {
      auto waiter = busy->second;  // named: kept alive across the wait
      auto [ec] = co_await waiter->timer.async_wait(asio::as_tuple(asio::use_awaitable));
      (void)ec;  // cancelled when the run ended, either way: look again
      continue;
    }
    auto end = *missing;
    while (end < last && !map_.present(end + 1) && !in_flight_.contains(end + 1))
      ++end;
    auto fetched = co_await fetch_run(*missing, end, origin);
    if (!fetched)
      co_return fetched.error();
  }
}

asio::awaitable<Result<void>> LazyImage::fetch_run(std::uint64_t first, std::uint64_t last,
                                                   Origin origin) {
  auto executor = co_await asio::this_coro::executor;
  auto waiter = std::make_shared<Waiter>(executor);
  for (auto i = first; i <= last; ++i)
    in_flight_[i] = waiter;
  const auto from = map_.chunk_begin(first);
  const auto last_byte = map_.chunk_end(last) - 1;
  Result<void> result;
  for (unsigned attempt = 1;; ++attempt) {
    result = co_await fetch_once(from, last_byte);
    if (result || result.error().kind != ErrorKind::kTransient || attempt >= params_.max_attempts)
      break;
    log_->warn("lazy image: fetching bytes {}-{} (attempt {} of {}): {}", from, last_byte, attempt,
               params_.max_attempts, result.error().message);
    asio::steady_timer pause(executor, params_.backoff * attempt);
    auto [ec] = co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ec;
  }
  if (result)
    result = co_await commit(first, last);
  for (auto i = first; i <= last; ++i)
    in_flight_.erase(i);
  waiter->timer.cancel();
  if (result) {
    const auto bytes = last_byte + 1 - from;
    (origin == Origin::kDemand ? stats_.demand_bytes : stats_.fill_bytes) += bytes;
  }
  co_return result;
}

asio::awaitable<Result<void>> LazyImage::fetch_once(std::uint64_t from, std::uint64_t last_byte) {
  std::uint64_t at = from;
  const int fd = fd_.get();
  // Some servers (busybox httpd) answer every range with the rest of the file: what is past
  // last_byte is not read, the connection is dropped once the asked bytes are there.
  bool longer = false;
  bool cut = false;
  auto on_head = [&](const HttpHead& head) -> Result<HeadAction> {
    const auto& range = head.content_range;
    if (head.status == 206 && range && range->first == from && range->last
        && *range->last >= last_byte && range->total == probe_.size) {
      longer = *range->last > last_byte;
      return HeadAction::kReadBody;
    }
    if (is_transient_status(head.status))
      return Error{ErrorKind::kTransient, fmt::format("HTTP {} {}", head.status, head.reason)};
    return Error{ErrorKind::kIntegrity,
                 fmt::format("the server answered {} to a Range request for bytes {}-{} of {}: "
                             "the source changed or stopped honouring Range",
                             head.status, from, last_byte, params_.url)};
  };
  auto on_body = [&](std::span<const char> piece) -> Result<void> {
    const auto wanted = last_byte + 1 - at;
    if (piece.size() > wanted && !longer)
      return Error{ErrorKind::kIntegrity, "the server sent more than the range asked for"};
    piece = piece.first(static_cast<std::size_t>(std::min<std::uint64_t>(piece.size(), wanted)));
    auto written = pwrite_all(fd, piece, at);
    at += piece.size();
    if (written && longer && at == last_byte + 1) {
      cut = true;
      return Error{ErrorKind::kTransient, "the asked range is complete"};
    }
    return written;
  };
  std::optional<RangeRequest> range = RangeRequest{from, probe_.validator, last_byte};
  auto result = co_await http_get(params_.http, params_.url, range, on_head, on_body);
  if (!result && cut)
    result = Result<void>{};
  if (result && at != last_byte + 1)
    co_return Error{ErrorKind::kTransient, fmt::format("the range {}-{} ended after {} bytes", from,
                                                       last_byte, at - from)};
  co_return result;
}

asio::awaitable<Result<void>> LazyImage::commit(std::uint64_t first, std::uint64_t last) {
  // The snapshot written names these chunks only after their bytes are durable.
  ChunkMap next = map_;
  for (auto i = first; i <= last; ++i)
    next.mark(i);
  auto encoded = next.encode();
  auto work = [fd = fd_.get(), path = map_path_, encoded = std::move(encoded)]() -> Result<void> {
    if (::fdatasync(fd) != 0)
      return system_error("fdatasync of the lazily filled image", errno);
    return write_file_atomic(
        path, std::string_view(reinterpret_cast<const char*>(encoded.data()), encoded.size()));
  };
  auto durable = co_await run_blocking(std::move(work));
  if (!durable)
    co_return durable.error();
  for (auto i = first; i <= last; ++i)
    map_.mark(i);
  co_return Result<void>{};
}

asio::awaitable<Result<void>> LazyImage::fill() {
  std::uint64_t cursor = 0;
  auto last_log = std::chrono::steady_clock::now();
  while (auto next = map_.next_missing(cursor)) {
    auto end = *next;
    while (end + 1 < map_.chunk_count() && end + 1 - *next < params_.fill_chunks
           && !map_.present(end + 1) && !in_flight_.contains(end + 1))
      ++end;
    auto done = co_await ensure(*next, end, Origin::kFill);
    if (!done)
      co_return done.error();
    cursor = end + 1;
    if (std::chrono::steady_clock::now() - last_log > std::chrono::seconds(5)) {
      last_log = std::chrono::steady_clock::now();
      log_->info("lazy image: {} of {} bytes present, {} fetched on demand", map_.present_bytes(),
                 probe_.size, stats_.demand_bytes);
    }
  }
  co_return co_await verify_and_publish();
}

asio::awaitable<Result<void>> LazyImage::verify_and_publish() {
  auto work = [fd = fd_.get(), size = probe_.size] { return hash_fd(fd, size); };
  auto digest = co_await run_blocking(std::move(work));
  if (!digest)
    co_return digest.error();
  if (params_.sha256 && *digest != *params_.sha256) {
    std::error_code ec;
    fs::remove(partial_, ec);
    fs::remove(map_path_, ec);
    co_return Error{ErrorKind::kIntegrity,
                    fmt::format("IMG_CHECKSUM mismatch for {}: expected sha256:{}, got sha256:{}; "
                                "the lazily filled image was discarded",
                                params_.url, *params_.sha256, *digest)};
  }
  if (on_verified_)
    if (auto recorded = on_verified_(*digest); !recorded)
      co_return recorded.error();
  if (auto moved = rename_no_replace(partial_, final_); !moved)
    co_return moved.error();
  std::error_code ec;
  fs::remove(map_path_, ec);
  if (auto synced = fsync_directory(params_.image_dir); !synced)
    co_return synced.error();
  sha256_ = *digest;
  stats_.verified = true;
  log_->info("lazy image {} complete and verified (sha256:{}); {} of {} bytes fetched on demand",
             final_.string(), sha256_, stats_.demand_bytes, probe_.size);
  co_return Result<void>{};
}

}  // namespace berth::drive
