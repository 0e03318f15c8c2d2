#include "drive/image/image_cache.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/std.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <array>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <limits>
#include <vector>

#include "common/async.hpp"
#include "drive/files.hpp"
#include "drive/image/decompress.hpp"
#include "drive/image/http_client.hpp"
#include "drive/image/pipeline.hpp"
#include "drive/image/sha256.hpp"
#include "drive/progress.hpp"
#include "drive/record.hpp"

namespace berth::drive {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kReadChunk = 1 << 20;
// What one step of a local copy covers, holes included: about half a second of hashing.
constexpr std::uint64_t kCopyStep = std::uint64_t{1} << 30;
constexpr std::uint64_t kSidecarLimit = 64 * 1024;

struct CacheFiles {
  fs::path image;
  fs::path sidecar;
  fs::path lock;
  fs::path download;
  fs::path download_meta;
  fs::path part;

  explicit CacheFiles(const FetchParams& p)
      : image(p.image_dir / p.target),
        sidecar(p.image_dir / (p.target + ".berth.json")),
        lock(p.image_dir / (p.target + ".lock")),
        download(p.image_dir / (p.target + ".download")),
        download_meta(p.image_dir / (p.target + ".download.json")),
        part(p.image_dir / (p.target + ".part")) {}
};

// ---- The sidecar: what a finished entry is.

struct Sidecar {
  std::string source;
  std::string sha256;         // of the image
  std::string source_sha256;  // of the bytes as fetched (differs when compressed)
  Compression compression = Compression::kNone;
  std::uint64_t size = 0;
  ImageFormat format = ImageFormat::kRaw;
};

std::string serialize(const Sidecar& s) {
  return Record()
      .set("source", s.source)
      .set("sha256", s.sha256)
      .set("source_sha256", s.source_sha256)
      .set("compression", std::string(compression_name(s.compression)))
      .set("size", s.size)
      .set("format", std::string(image_format_name(s.format)))
      .serialize();
}

std::optional<Sidecar> parse_sidecar(std::string_view text) {
  auto record = Record::parse(text);
  if (!record)
    return std::nullopt;
  Sidecar s;
  std::string format;
  auto size = record->number("size");
  if (!record->strings({{"source", &s.source}, {"sha256", &s.sha256}, {"format", &format}})
      || !is_sha256_hex(s.sha256) || !size)
    return std::nullopt;
  auto parsed_format = parse_image_format(format);
  if (!parsed_format)
    return std::nullopt;
  s.source_sha256 = record->string("source_sha256").value_or(s.sha256);
  s.format = *parsed_format;
  s.size = *size;
  return s;
}

// ---- Resume metadata of a partial download.

struct ResumeInfo {
  std::string url;
  std::string etag;  // strong ETags only (weak ones cannot be used with If-Range)
  std::string last_modified;
};

std::string serialize(const ResumeInfo& r) {
  return Record()
      .set("url", r.url)
      .set("etag", r.etag)
      .set("last_modified", r.last_modified)
      .serialize();
}

std::optional<ResumeInfo> parse_resume_info(std::string_view text) {
  auto record = Record::parse(text);
  ResumeInfo r;
  if (!record
      || !record->strings(
          {{"url", &r.url}, {"etag", &r.etag}, {"last_modified", &r.last_modified}}))
    return std::nullopt;
  return r;
}

void remove_quietly(const fs::path& path) {
  std::error_code ec;
  fs::remove(path, ec);
}

std::optional<std::uint64_t> regular_file_size(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return std::nullopt;
  return static_cast<std::uint64_t>(st.st_size);
}

// Reads [0, size) of `path` in chunks, handing each to `consume`. Blocking: call it on a worker
// thread (through on_worker or run_blocking), never on the loop.
template <class Consume>
Result<void> read_range(const fs::path& path, std::uint64_t size, Consume consume) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd)
    return system_error(fmt::format("cannot open {}", path), errno);
  std::vector<char> buffer(kReadChunk);
  std::uint64_t offset = 0;
  while (offset < size) {
    const std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(kReadChunk, size - offset));
    const ssize_t n = ::pread(fd.get(), buffer.data(), want, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return system_error(fmt::format("cannot read {}", path), errno);
    }
    if (n == 0)
      return Error{ErrorKind::kSystem, fmt::format("{} shrank while being read", path)};
    if (auto r = consume(std::span<const char>(buffer.data(), static_cast<std::size_t>(n))); !r)
      return r;
    offset += static_cast<std::uint64_t>(n);
  }
  return {};
}

// Runs fn(*owned) on a worker thread. `owned` is empty during the call and holds the object again
// after it, so nothing on the loop can touch it meanwhile (and should the waiting coroutine be
// destroyed first, the object is leaked rather than freed under the worker).
template <class T, class Fn>
asio::awaitable<Result<void>> on_worker(std::unique_ptr<T>& owned, Fn fn) {
  T* raw = owned.release();
  // A named callable, moved in: GCC 12 destroys a temporary argument of a coroutine call inside
  // co_await twice (GCC bug 99576), fatal for captures that own memory.
  auto work = [raw, fn = std::move(fn)] { return fn(*raw); };
  Result<void> result = co_await run_blocking(std::move(work));
  owned.reset(raw);
  co_return result;
}

// What an unrecorded image is: its checksum and first bytes.
struct Digest {
  std::string sha256;
  std::vector<char> head;
};

// Hashes [0, size) of `path`. Blocking (see read_range).
Result<Digest> digest_file(const fs::path& path, std::uint64_t size) {
  Sha256 hash;
  Digest digest;
  auto read = read_range(path, size, [&](std::span<const char> chunk) {
    hash.update(chunk);
    const std::size_t room = kFormatProbeBytes - std::min(kFormatProbeBytes, digest.head.size());
    digest.head.insert(digest.head.end(), chunk.begin(),
                       chunk.begin() + static_cast<long>(std::min(chunk.size(), room)));
    return Result<void>{};
  });
  if (!read)
    return read.error();
  auto hex = hash.hex();
  if (!hex)
    return hex.error();
  digest.sha256 = std::move(*hex);
  return digest;
}

// A local copy in progress: owned by the loop between steps and by a worker during one.
struct LocalCopy {
  UniqueFd fd;
  fs::path source;
  std::uint64_t size = 0;
  std::uint64_t offset = 0;
  std::unique_ptr<Pipeline> pipeline;
  std::vector<char> buffer = std::vector<char>(kReadChunk);
};

// Copies the next kCopyStep bytes (or what is left) of the source. Holes are not read: they are
// hashed as zeros and left as holes in the image. Blocking: runs on a worker thread.
Result<void> copy_step(LocalCopy& c) {
  const std::uint64_t end = std::min(c.size, c.offset + kCopyStep);
  while (c.offset < end) {
    off_t data = ::lseek(c.fd.get(), static_cast<off_t>(c.offset), SEEK_DATA);
    if (data < 0)
      data = errno == ENXIO ? static_cast<off_t>(c.size) : static_cast<off_t>(c.offset);
    if (c.offset < static_cast<std::uint64_t>(data)) {
      const auto n = std::min<std::uint64_t>(static_cast<std::uint64_t>(data), end) - c.offset;
      if (auto r = c.pipeline->feed_zeros(n); !r)
        return r;
      c.offset += n;
      continue;
    }
    off_t hole = ::lseek(c.fd.get(), data, SEEK_HOLE);
    if (hole < 0)
      hole = static_cast<off_t>(c.size);
    const auto want = std::min<std::uint64_t>(
        kReadChunk, std::min<std::uint64_t>(static_cast<std::uint64_t>(hole), end) - c.offset);
    const ssize_t n = ::pread(c.fd.get(), c.buffer.data(), static_cast<std::size_t>(want),
                              static_cast<off_t>(c.offset));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return n == 0
                 ? Error{ErrorKind::kSystem, fmt::format("{} shrank while being copied", c.source)}
                 : system_error(fmt::format("cannot read {}", c.source), errno);
    if (auto r = c.pipeline->feed({c.buffer.data(), static_cast<std::size_t>(n)}); !r)
      return r;
    c.offset += static_cast<std::uint64_t>(n);
  }
  return {};
}

// Removes a file when it goes out of scope: a cancelled fetch (a stop during start-up) unwinds
// through it like any other return.
struct RemoveOnExit {
  const fs::path& path;
  ~RemoveOnExit() { remove_quietly(path); }
};

// ---- The fetch of one entry.

class Fetch {
 public:
  Fetch(FetchParams params, std::shared_ptr<spdlog::logger> log)
      : p_(std::move(params)), files_(p_), log_(std::move(log)) {}

  asio::awaitable<Result<CachedImage>> run() {
    if (auto ok = validate(); !ok)
      co_return ok.error();
    std::error_code ec;
    fs::create_directories(p_.image_dir, ec);
    if (ec)
      co_return system_error(
          fmt::format("cannot create the image cache {} (BERTH_IMAGE_DIR)", p_.image_dir), ec);

    // A finished entry is immutable, so it can be used without taking the lock.
    auto found = inspect();
    if (!found)
      co_return found.error();
    if (found->state == State::kFinished)
      co_return cached(found->sidecar);

    std::function<void()> watch_holder = [this, seen = HolderState{}]() mutable {
      watch_holder_progress(seen);
    };
    auto lock = co_await FileLock::acquire(files_.lock, p_.target, p_.lock_poll, log_,
                                           std::move(watch_holder));
    if (!lock)
      co_return lock.error();
    found = inspect();
    if (!found)
      co_return found.error();
    switch (found->state) {
      case State::kFinished:
        co_return cached(found->sidecar);
      case State::kCorrupt:
        log_->warn("cached image {} is corrupt ({}); fetching it again", files_.image.string(),
                   found->why);
        remove_quietly(files_.image);
        remove_quietly(files_.sidecar);
        break;
      case State::kUnrecorded: {
        auto adopted = co_await adopt();
        if (!adopted)
          co_return adopted.error();
        if (*adopted)
          co_return **adopted;
        break;
      }
      case State::kMissing:
        break;
    }
    if (is_url(p_.source))
      co_return co_await download();
    co_return co_await copy_local();
  }

 private:
  enum class State { kMissing, kFinished, kUnrecorded, kCorrupt };
  struct Inspection {
    State state = State::kMissing;
    Sidecar sidecar;
    std::string why;
  };

  void progressed() const {
    if (p_.on_progress)
      p_.on_progress();
  }

  // What the lock holder's partial download looks like: sizes and change times of T.download and
  // T.part.
  using HolderState = std::array<std::int64_t, 4>;

  // While another berth holds the lock: its download growing counts as our progress (a holder
  // that stalls, or a dead one whose lock the kernel has not released, e.g. on NFS, does not).
  void watch_holder_progress(HolderState& seen) const {
    HolderState now{};
    std::size_t i = 0;
    for (const auto* path : {&files_.download, &files_.part}) {
      struct stat st {};
      if (::stat(path->c_str(), &st) == 0) {
        now[i] = st.st_size;
        now[i + 1] = st.st_mtim.tv_sec * 1'000'000'000 + st.st_mtim.tv_nsec;
      }
      i += 2;
    }
    if (now != seen)
      progressed();
    seen = now;
  }

  Result<void> validate() const {
    if (auto ok = check_image_target(p_.target); !ok)
      return ok;
    if (p_.sha256 && !is_sha256_hex(*p_.sha256))
      return Error{ErrorKind::kInvalidInput,
                   fmt::format("IMG_CHECKSUM: \"{}\" is not 64 lower-case hex digits", *p_.sha256)};
    if (auto source = parse_image_source(p_.source); !source)
      return source.error();
    return {};
  }

  // Fails unless image_dir has room for `needed` more bytes and keep_free besides. Errors: kSystem.
  Result<void> check_space(std::uint64_t needed) const {
    struct statvfs st {};
    if (::statvfs(p_.image_dir.c_str(), &st) != 0)
      return system_error(fmt::format("cannot tell the free space of {}", p_.image_dir), errno);
    const std::uint64_t free = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
    if (free >= needed && free - needed >= p_.keep_free)
      return {};
    return Error{ErrorKind::kSystem,
                 fmt::format("the image cache {} has {} free, the image needs {} more and {} "
                             "stays free for the node; free space there or set BERTH_IMAGE_DIR to "
                             "a bigger volume",
                             p_.image_dir.string(), format_bytes(free), format_bytes(needed),
                             format_bytes(p_.keep_free))};
  }

  // Refuses a download whose announced size is over max_size. Errors: kIntegrity.
  Result<void> check_announced(std::uint64_t total, const std::string& url) const {
    if (total <= p_.max_size)
      return {};
    return Error{ErrorKind::kIntegrity,
                 fmt::format("{} is {} bytes ({}), larger than IMG_MAX_SIZE ({}); raise "
                             "IMG_MAX_SIZE if the image is meant to be this large",
                             url, total, format_bytes(total), format_bytes(p_.max_size))};
  }

  // What the cache holds for the target. Errors: kConflict when a finished entry has another
  // checksum than the one asked for.
  Result<Inspection> inspect() const {
    Inspection result;
    const auto size = regular_file_size(files_.image);
    if (!size)
      return result;  // kMissing
    auto text = read_file(files_.sidecar, kSidecarLimit);
    if (!text) {
      result.state = State::kUnrecorded;
      return result;
    }
    auto sidecar = parse_sidecar(*text);
    if (!sidecar) {
      result.state = State::kCorrupt;
      result.why = fmt::format("{} is unreadable", files_.sidecar);
      return result;
    }
    if (sidecar->size != *size) {
      result.state = State::kCorrupt;
      result.why = fmt::format("it is {} bytes but was {} when cached", *size, sidecar->size);
      return result;
    }
    if (p_.sha256 && *p_.sha256 != sidecar->sha256 && *p_.sha256 != sidecar->source_sha256)
      return Error{ErrorKind::kConflict,
                   fmt::format("IMG_CHECKSUM is sha256:{} but the cached {} is sha256:{} (fetched "
                               "from {}); a cached image is never replaced because pet disks are "
                               "based on it: set IMG_TARGET to a new name for the new image, or "
                               "delete the cached file if no pet disk uses it",
                               *p_.sha256, files_.image, sidecar->sha256, sidecar->source)};
    result.state = State::kFinished;
    result.sidecar = std::move(*sidecar);
    return result;
  }

  CachedImage cached(const Sidecar& s) const {
    if (s.source != p_.source)
      log_->info(
          "using the cached {} (fetched from {}; IMG_SOURCE is now {}: the cache entry is "
          "named by IMG_TARGET)",
          files_.image.string(), s.source, p_.source);
    else
      log_->info("using the cached {} ({}, {}, sha256:{})", files_.image.string(),
                 image_format_name(s.format), format_bytes(s.size), s.sha256);
    return {files_.image, s.format, s.sha256, s.size, CacheOutcome::kCached};
  }

  // An image in the cache without a sidecar (placed there by hand, or by the shell-script
  // ancestor): hashed once and recorded, unless IMG_CHECKSUM says it is not the right one.
  // Returns nullopt when it has to be fetched again.
  asio::awaitable<Result<std::optional<CachedImage>>> adopt() {
    const auto size = regular_file_size(files_.image).value_or(0);
    log_->info("{} has no record of where it came from; checking it ({})", files_.image.string(),
               format_bytes(size));
    auto work = [path = files_.image, size] { return digest_file(path, size); };
    auto digest = co_await run_blocking(std::move(work));  // named: see on_worker
    if (!digest)
      co_return digest.error();
    const std::string sha = digest->sha256;
    const std::vector<char>& head = digest->head;
    if (p_.sha256 && *p_.sha256 != sha) {
      log_->warn("{} is sha256:{}, not IMG_CHECKSUM sha256:{}; fetching it again",
                 files_.image.string(), sha, *p_.sha256);
      remove_quietly(files_.image);
      co_return std::optional<CachedImage>();
    }
    auto format = detect_image_format(head);
    if (!format)
      co_return Error{ErrorKind::kIntegrity,
                      fmt::format("{}: {}", files_.image, format.error().message)};
    if (detect_compression(head) != Compression::kNone)
      co_return Error{ErrorKind::kIntegrity,
                      fmt::format("{} is {}-compressed; IMG_TARGET names the decompressed image: "
                                  "remove the file and let Berth fetch it",
                                  files_.image, compression_name(detect_compression(head)))};
    Sidecar s{p_.source, sha, sha, Compression::kNone, size, *format};
    if (auto w = write_file_atomic(files_.sidecar, serialize(s)); !w)
      co_return w.error();
    log_->info("recorded {} as {}, sha256:{}", files_.image.string(), image_format_name(*format),
               sha);
    co_return CachedImage{files_.image, *format, sha, size, CacheOutcome::kCached};
  }

  // ---- HTTP(S)

  struct Download {
    std::unique_ptr<Pipeline> pipeline;
    ResumeInfo resume;
    std::optional<std::uint64_t> total;
    std::optional<std::chrono::seconds> retry_after;
    bool complete = false;               // a 416 said we already have every byte
    std::uint64_t next_space_check = 0;  // raw + image bytes at which statvfs is asked again
  };

  // Every space_check_every bytes: is there still room for the rest and keep_free?
  Result<void> recheck_space(Download& d) const {
    const std::uint64_t written = d.pipeline->raw_bytes() + d.pipeline->image_bytes();
    if (written < d.next_space_check)
      return {};
    d.next_space_check = written + p_.space_check_every;
    const std::uint64_t raw = d.pipeline->raw_bytes();
    return check_space(d.total && *d.total > raw ? *d.total - raw : 0);
  }

  Result<void> restart(Download& d) {
    remove_quietly(files_.part);
    auto pipeline =
        Pipeline::create(files_.download, OpenMode::kTruncate, files_.part, p_.max_size);
    if (!pipeline)
      return pipeline.error();
    d.pipeline = std::move(*pipeline);
    d.total.reset();
    return {};
  }

  // Whether bytes received so far may be continued with a Range request: only when a validator
  // guarantees the same entity, or IMG_CHECKSUM will catch a mix-up.
  bool resumable(const Download& d) const {
    return d.resume.url == p_.source
           && (!d.resume.etag.empty() || !d.resume.last_modified.empty() || p_.sha256);
  }

  asio::awaitable<Result<CachedImage>> download() {
    // T.download and its .json are what a later start resumes from; T.part (the decompressed
    // image) is rebuilt from them, so it never outlives this call, whichever way it ends.
    const RemoveOnExit part{files_.part};
    Download d;
    const auto started = Clock::now();
    if (auto r = co_await continue_or_restart(d); !r)
      co_return r.error();
    log_->info("fetching {} into {}", p_.source, files_.image.string());
    Progress progress("image", p_.progress_interval, Clock::now());
    progress.restart(d.pipeline->raw_bytes(), Clock::now());
    if (auto r = co_await fetch_with_retries(d, progress); !r)
      co_return r.error();
    log_->info("downloaded {}: {}", p_.source,
               progress.summary(d.pipeline->raw_bytes(), Clock::now()));
    const bool compressed = d.pipeline->compression() != Compression::kNone;
    auto image = co_await commit(d.pipeline, CacheOutcome::kDownloaded, started);
    if (image) {
      if (compressed)
        remove_quietly(files_.download);
      remove_quietly(files_.download_meta);
    }
    co_return image;
  }

  // Continues a download an earlier start left behind, if it can be trusted (its bytes are
  // replayed through the pipeline on a worker thread); otherwise starts afresh.
  asio::awaitable<Result<void>> continue_or_restart(Download& d) {
    auto meta = read_file(files_.download_meta, kSidecarLimit);
    auto info = meta ? parse_resume_info(*meta) : std::nullopt;
    const auto have = regular_file_size(files_.download);
    if (info)
      d.resume = *info;
    if (!info || !have || *have == 0 || !resumable(d)) {
      remove_quietly(files_.download_meta);
      d.resume = {};
      co_return restart(d);
    }
    auto pipeline = Pipeline::create(files_.download, OpenMode::kAppend, files_.part, p_.max_size);
    if (!pipeline)
      co_return pipeline.error();
    d.pipeline = std::move(*pipeline);
    log_->info("resuming the download of {} after {} fetched earlier", p_.source,
               format_bytes(*have));
    auto replay = [path = files_.download, n = *have](Pipeline& p) {
      return read_range(path, n, [&](std::span<const char> chunk) { return p.replay(chunk); });
    };
    auto replayed = co_await on_worker(d.pipeline, std::move(replay));  // named: see on_worker
    if (!replayed) {
      log_->warn("cannot continue the partial download ({}); starting over",
                 replayed.error().message);
      co_return restart(d);
    }
    co_return Result<void>{};
  }

  // Attempts until one succeeds, an error is not transient, or max_attempts is reached.
  asio::awaitable<Result<void>> fetch_with_retries(Download& d, Progress& progress) {
    auto backoff = p_.backoff;
    for (unsigned attempt = 1;; ++attempt) {
      d.retry_after.reset();
      if (d.pipeline->raw_bytes() > 0 && !resumable(d)) {
        log_->info(
            "the server gave no ETag or Last-Modified and there is no IMG_CHECKSUM: "
            "starting over rather than resuming");
        if (auto r = restart(d); !r)
          co_return r;
      }
      auto result = co_await attempt_once(d, progress);
      if (result)
        co_return result;
      const Error& error = result.error();
      if (error.kind != ErrorKind::kTransient || attempt >= p_.max_attempts)
        co_return give_up(error, attempt, d.pipeline->raw_bytes());
      auto delay = backoff;
      if (d.retry_after)
        delay = std::min<std::chrono::milliseconds>(
            std::max<std::chrono::milliseconds>(delay, *d.retry_after), p_.max_backoff);
      log_->warn("fetching {} failed: {}; attempt {} of {}, retrying in {}{}", p_.source,
                 error.message, attempt, p_.max_attempts,
                 delay < std::chrono::seconds(1) ? fmt::format("{}ms", delay.count())
                                                 : fmt::format("{:.1f}s", delay.count() / 1000.0),
                 d.pipeline->raw_bytes() > 0 ? fmt::format(" from byte {}", d.pipeline->raw_bytes())
                                             : std::string());
      asio::steady_timer timer(co_await asio::this_coro::executor, delay);
      co_await timer.async_wait(asio::use_awaitable);
      backoff = std::min(backoff * 2, p_.max_backoff);
    }
  }

  // The error that ends the download; an integrity failure discards what was fetched, and so does
  // any failure before a byte was kept (nothing to resume).
  Error give_up(const Error& error, unsigned attempts, std::uint64_t kept) {
    if (error.kind == ErrorKind::kIntegrity || kept == 0)
      discard();
    if (error.kind == ErrorKind::kSystem && kept > 0)
      return {error.kind,
              fmt::format("cannot fetch {}: {} (the {} fetched so far stay in {} to be "
                          "resumed on the next start; delete it to free its space)",
                          p_.source, error.message, format_bytes(kept), files_.download)};
    if (error.kind != ErrorKind::kTransient)
      return {error.kind, fmt::format("cannot fetch {}: {}", p_.source, error.message)};
    return {error.kind, fmt::format("cannot fetch {}: {} (gave up after {} attempts; the partial "
                                    "download is kept and resumed on the next start)",
                                    p_.source, error.message, attempts)};
  }

  asio::awaitable<Result<void>> attempt_once(Download& d, Progress& progress) {
    std::optional<RangeRequest> range;
    if (d.pipeline->raw_bytes() > 0)
      range = RangeRequest{d.pipeline->raw_bytes(),
                           !d.resume.etag.empty() ? d.resume.etag : d.resume.last_modified,
                           std::nullopt};
    d.complete = false;
    auto on_head = [&](const HttpHead& head) { return accept_head(d, progress, range, head); };
    auto on_body = [&](std::span<const char> chunk) -> Result<void> {
      if (auto r = d.pipeline->feed(chunk); !r)
        return r;
      if (auto r = recheck_space(d); !r)
        return r;
      progressed();
      if (auto line = progress.update(d.pipeline->raw_bytes(), Clock::now()))
        log_->info("{}", *line);
      return {};
    };
    // No body limit in the client: accept_whole and accept_range refuse an announced size over
    // max_size with the name of the variable, and the pipeline counts what streams in.
    HttpOptions options{p_.ca_file,
                        p_.connect_timeout,
                        p_.stall_timeout,
                        p_.max_redirects,
                        std::numeric_limits<std::uint64_t>::max(),
                        "berth"};
    auto result = co_await http_get(std::move(options), p_.source, range, on_head, on_body);
    if (!result)
      co_return result;
    if (d.total && d.pipeline->raw_bytes() != *d.total)
      co_return Error{ErrorKind::kTransient, fmt::format("the body ended after {} of {} bytes",
                                                         d.pipeline->raw_bytes(), *d.total)};
    co_return Result<void>{};
  }

  // Whether the response's body is read, from its status: 200 (the whole file, perhaps after a
  // range was asked for), 206 (the range asked for), 416 (nothing left), or an error.
  Result<HeadAction> accept_head(Download& d, Progress& progress,
                                 const std::optional<RangeRequest>& range, const HttpHead& head) {
    if (head.status == 200)
      return accept_whole(d, progress, range, head);
    if (head.status == 206 && range)
      return accept_range(d, progress, *range, head);
    if (head.status == 416 && range) {
      if (head.content_range && head.content_range->total == range->from) {
        d.complete = true;  // everything was there already
        return HeadAction::kSkipBody;
      }
      if (auto r = restart(d); !r)
        return r.error();
      return Error{ErrorKind::kTransient,
                   fmt::format("{} refused the range from byte {} (HTTP 416); starting over",
                               head.url, range->from)};
    }
    const std::string what = fmt::format("HTTP {} {} from {}", head.status, head.reason, head.url);
    if (is_transient_status(head.status)) {
      d.retry_after = head.retry_after;
      return Error{ErrorKind::kTransient, what};
    }
    return Error{ErrorKind::kHttp, what + "; check IMG_SOURCE"};
  }

  Result<HeadAction> accept_whole(Download& d, Progress& progress,
                                  const std::optional<RangeRequest>& range, const HttpHead& head) {
    if (range) {
      log_->warn(
          "{} sent the whole file instead of the range from byte {} (no Range support, or the "
          "file changed): starting over",
          head.url, range->from);
      if (auto r = restart(d); !r)
        return r.error();
      progress.restart(0, Clock::now());
    }
    d.total = head.content_length;
    if (d.total) {
      if (auto r = check_announced(*d.total, head.url); !r)
        return r.error();
      if (auto r = check_space(*d.total); !r)
        return r.error();
    }
    d.next_space_check = p_.space_check_every;
    d.resume = {p_.source, head.etag.starts_with("W/") ? std::string() : head.etag,
                head.last_modified};
    if (auto w = write_file_atomic(files_.download_meta, serialize(d.resume)); !w)
      return w.error();
    progress.set_total(d.total);
    return HeadAction::kReadBody;
  }

  Result<HeadAction> accept_range(Download& d, Progress& progress, const RangeRequest& range,
                                  const HttpHead& head) {
    const auto& cr = head.content_range;
    if (!cr || !cr->first || *cr->first != range.from) {
      if (auto r = restart(d); !r)
        return r.error();
      return Error{ErrorKind::kTransient,
                   fmt::format("{} answered the range request from byte {} with another range; "
                               "starting over",
                               head.url, range.from)};
    }
    d.total = cr->total;
    if (d.total) {
      if (auto r = check_announced(*d.total, head.url); !r)
        return r.error();
      if (auto r = check_space(*d.total - range.from); !r)
        return r.error();
    }
    d.next_space_check = d.pipeline->raw_bytes() + d.pipeline->image_bytes() + p_.space_check_every;
    progress.set_total(d.total);
    log_->info("resuming {} at byte {}{}", head.url, range.from,
               d.total ? fmt::format(" of {}", *d.total) : std::string());
    return HeadAction::kReadBody;
  }

  void discard() {
    remove_quietly(files_.download);
    remove_quietly(files_.download_meta);
    remove_quietly(files_.part);
  }

  // ---- Local path

  asio::awaitable<Result<CachedImage>> copy_local() {
    const RemoveOnExit part{files_.part};  // a copy is not resumed: started afresh each time
    const auto started = Clock::now();
    auto opened = open_local();
    if (!opened)
      co_return opened.error();
    std::unique_ptr<LocalCopy> copy = std::move(*opened);
    log_->info("copying {} ({}) into {}", copy->source.string(), format_bytes(copy->size),
               files_.image.string());
    Progress progress("copy", p_.progress_interval, started);
    progress.set_total(copy->size);
    while (copy->offset < copy->size) {
      // Hashing a step (holes too) takes a while: on a worker, so the loop keeps answering.
      if (auto r = co_await on_worker(copy, copy_step); !r)
        co_return fail_copy(r.error());
      progressed();
      if (auto line = progress.update(copy->offset, Clock::now()))
        log_->info("{}", *line);
    }
    log_->info("copied {}: {}", copy->source.string(), progress.summary(copy->size, Clock::now()));
    co_return co_await commit(copy->pipeline, CacheOutcome::kCopied, started);
  }

  // Opens IMG_SOURCE for copying. Errors: kInvalidInput (missing, not a regular file), kSystem.
  Result<std::unique_ptr<LocalCopy>> open_local() {
    auto c = std::make_unique<LocalCopy>();
    c->source = p_.source;
    c->fd.reset(::open(c->source.c_str(), O_RDONLY | O_CLOEXEC));
    if (!c->fd)
      return Error{errno == ENOENT ? ErrorKind::kInvalidInput : ErrorKind::kSystem,
                   fmt::format("IMG_SOURCE: cannot open {}: {}", c->source, std::strerror(errno))};
    struct stat st {};
    if (::fstat(c->fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
      return Error{ErrorKind::kInvalidInput,
                   fmt::format("IMG_SOURCE: {} is not a regular file", c->source)};
    c->size = static_cast<std::uint64_t>(st.st_size);
    // A copy keeps holes: what the source has allocated is what the image will need.
    const auto allocated = std::min(c->size, static_cast<std::uint64_t>(st.st_blocks) * 512);
    if (auto r = check_space(allocated); !r)
      return r.error();
    auto pipeline = Pipeline::create(std::nullopt, OpenMode::kTruncate, files_.part, p_.max_size);
    if (!pipeline)
      return pipeline.error();
    c->pipeline = std::move(*pipeline);
    return c;
  }

  Error fail_copy(Error error) {
    remove_quietly(files_.part);
    return error;
  }

  // ---- Both: verify, record, publish.

  asio::awaitable<Result<CachedImage>> commit(std::unique_ptr<Pipeline>& owned,
                                              CacheOutcome outcome, Clock::time_point started) {
    // finish() fsyncs the image: seconds for a large one, so on a worker.
    if (auto r = co_await on_worker(owned, [](Pipeline& p) { return p.finish(); }); !r) {
      if (r.error().kind == ErrorKind::kIntegrity)
        discard();
      co_return Error{r.error().kind, fmt::format("{}: {}", p_.source, r.error().message)};
    }
    const Pipeline& pipeline = *owned;
    auto raw_hex = pipeline.raw_sha256();
    auto image_hex = pipeline.image_sha256();
    if (!raw_hex || !image_hex)
      co_return !raw_hex ? raw_hex.error() : image_hex.error();
    const std::string raw_sha = std::move(*raw_hex);
    const std::string image_sha = std::move(*image_hex);
    const bool compressed = pipeline.compression() != Compression::kNone;
    if (p_.sha256 && *p_.sha256 != raw_sha && *p_.sha256 != image_sha) {
      discard();
      co_return Error{
          ErrorKind::kIntegrity,
          compressed
              ? fmt::format("IMG_CHECKSUM mismatch: expected sha256:{}, got sha256:{} for the {} "
                            "file from {} and sha256:{} for its decompressed image; the {} was "
                            "discarded",
                            *p_.sha256, raw_sha, compression_name(pipeline.compression()),
                            p_.source, image_sha, is_url(p_.source) ? "download" : "copy")
              : fmt::format("IMG_CHECKSUM mismatch: expected sha256:{}, got sha256:{} for {}; "
                            "the {} was discarded",
                            *p_.sha256, raw_sha, p_.source,
                            is_url(p_.source) ? "download" : "copy")};
    }
    auto format = detect_image_format(pipeline.image_head());
    if (!format) {
      discard();
      co_return Error{ErrorKind::kIntegrity,
                      fmt::format("{}: {}", p_.source, format.error().message)};
    }
    Sidecar s{p_.source, image_sha, raw_sha, pipeline.compression(), pipeline.image_bytes(),
              *format};
    if (auto w = write_file_atomic(files_.sidecar, serialize(s)); !w)
      co_return w.error();
    if (auto r = rename_no_replace(pipeline.image_path(), files_.image); !r)
      co_return r.error();
    if (auto r = fsync_directory(p_.image_dir); !r)
      co_return r.error();
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    log_->info("cached {}: {} {}, sha256:{}{}{} in {:.1f}s", files_.image.string(),
               image_format_name(*format), format_bytes(s.size), image_sha,
               compressed ? fmt::format(" (decompressed from {})", compression_name(s.compression))
                          : std::string(),
               p_.sha256 ? ", checksum verified" : ", no IMG_CHECKSUM to verify", seconds);
    co_return CachedImage{files_.image, *format, image_sha, s.size, outcome};
  }

  FetchParams p_;
  CacheFiles files_;
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace

Result<void> record_cache_entry(const fs::path& image_dir, const std::string& target,
                                const std::string& source, const std::string& sha256,
                                std::uint64_t size, ImageFormat format) {
  const Sidecar s{source, sha256, sha256, Compression::kNone, size, format};
  return write_file_atomic(image_dir / (target + ".berth.json"), serialize(s));
}

asio::awaitable<Result<CachedImage>> fetch_image(FetchParams params,
                                                 std::shared_ptr<spdlog::logger> log) {
  Fetch fetch(std::move(params), std::move(log));
  co_return co_await fetch.run();
}

}  // namespace berth::drive
