#include "drive/image/image_cache.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/std.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <vector>

#include "drive/files.hpp"
#include "drive/image/decompress.hpp"
#include "drive/image/http_client.hpp"
#include "drive/image/sha256.hpp"
#include "drive/progress.hpp"
#include "drive/record.hpp"

namespace berth::drive {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kReadChunk = 1 << 20;
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

// ---- The pipeline: raw bytes in; hashed, stored, decompressed, hashed again, stored.

class Pipeline {
 public:
  // `raw`: where the raw bytes are kept (downloads, for resuming), or nullopt (local copies).
  // `part`: where the image goes when it is not the raw file itself (compressed or no raw file).
  static Result<std::unique_ptr<Pipeline>> create(std::optional<fs::path> raw, OpenMode raw_mode,
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

  // Bytes that are new: stored in the raw file too.
  Result<void> feed(std::span<const char> chunk) { return consume(chunk, true); }
  // Bytes already in the raw file (resuming): hashed and decompressed only.
  Result<void> replay(std::span<const char> chunk) { return consume(chunk, false); }

  Result<void> finish() {
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

  std::uint64_t raw_bytes() const { return raw_bytes_; }
  std::uint64_t image_bytes() const { return image_bytes_; }
  Result<std::string> raw_sha256() const { return raw_hash_.hex(); }
  Result<std::string> image_sha256() const {
    return compression_ == Compression::kNone ? raw_hash_.hex() : image_hash_.hex();
  }
  Compression compression() const { return compression_; }
  std::span<const char> image_head() const { return image_head_; }
  fs::path image_path() const {
    return image_writer_ ? image_writer_->path() : raw_writer_ ? raw_writer_->path() : part_;
  }

 private:
  Pipeline(fs::path part, std::uint64_t max_size) : part_(std::move(part)), max_size_(max_size) {}

  Result<void> consume(std::span<const char> chunk, bool store) {
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

  // Decides the compression from the first bytes and routes what was held back.
  Result<void> decide() {
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

  Result<void> route(std::span<const char> chunk) {
    if (decompressor_)
      return decompressor_->feed(chunk, [this](auto out) { return to_image(out); });
    // Not compressed: the image is the raw stream (already hashed, and stored if raw_writer_).
    note_image(chunk);
    if (image_writer_)
      return image_writer_->write(chunk);
    return {};
  }

  Result<void> to_image(std::span<const char> out) {
    if (image_bytes_ + out.size() > max_size_)
      return too_large("decompressed image");
    note_image(out);
    image_hash_.update(out);
    return image_writer_->write(out);
  }

  void note_image(std::span<const char> bytes) {
    image_bytes_ += bytes.size();
    if (image_head_.size() < kFormatProbeBytes) {
      const std::size_t n = std::min(bytes.size(), kFormatProbeBytes - image_head_.size());
      image_head_.insert(image_head_.end(), bytes.begin(), bytes.begin() + static_cast<long>(n));
    }
  }

  Error too_large(std::string_view what) const {
    return {ErrorKind::kIntegrity,
            fmt::format("the {} is larger than the limit of {}", what, format_bytes(max_size_))};
  }

  fs::path part_;
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

// Reads [0, size) of `path` in chunks, handing each to `consume`, yielding to the io_context
// between chunks so that a long read (resuming, adopting) does not stall the loop.
template <class Consume>
asio::awaitable<Result<void>> read_through(const fs::path& path, std::uint64_t size,
                                           Consume consume) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd)
    co_return system_error(fmt::format("cannot open {}", path), errno);
  std::vector<char> buffer(kReadChunk);
  std::uint64_t offset = 0;
  while (offset < size) {
    const std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(kReadChunk, size - offset));
    const ssize_t n = ::pread(fd.get(), buffer.data(), want, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      co_return system_error(fmt::format("cannot read {}", path), errno);
    }
    if (n == 0)
      co_return Error{ErrorKind::kSystem, fmt::format("{} shrank while being read", path)};
    if (auto r = consume(std::span<const char>(buffer.data(), static_cast<std::size_t>(n))); !r)
      co_return r;
    offset += static_cast<std::uint64_t>(n);
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  }
  co_return Result<void>{};
}

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

    auto lock = co_await FileLock::acquire(files_.lock, p_.target, p_.lock_poll, log_);
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

  Result<void> validate() const {
    const auto& t = p_.target;
    if (t.empty() || t == "." || t == ".." || t.find('/') != std::string::npos
        || t.find('\0') != std::string::npos)
      return Error{ErrorKind::kInvalidInput,
                   fmt::format("IMG_TARGET: \"{}\" is not a file name; expected a plain name such "
                               "as debian-12.qcow2",
                               t)};
    if (p_.sha256 && !is_sha256_hex(*p_.sha256))
      return Error{ErrorKind::kInvalidInput,
                   fmt::format("IMG_CHECKSUM: \"{}\" is not 64 lower-case hex digits", *p_.sha256)};
    if (!is_url(p_.source) && !fs::path(p_.source).is_absolute())
      return Error{ErrorKind::kInvalidInput,
                   fmt::format("IMG_SOURCE: \"{}\" is neither an http(s) URL nor an absolute path",
                               p_.source)};
    return {};
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
    Sha256 hash;
    std::vector<char> head;
    auto read = co_await read_through(files_.image, size, [&](std::span<const char> chunk) {
      hash.update(chunk);
      if (head.size() < kFormatProbeBytes)
        head.insert(
            head.end(), chunk.begin(),
            chunk.begin()
                + static_cast<long>(std::min(chunk.size(), kFormatProbeBytes - head.size())));
      return Result<void>{};
    });
    if (!read)
      co_return read.error();
    auto hex = hash.hex();
    if (!hex)
      co_return hex.error();
    const std::string sha = std::move(*hex);
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
    bool complete = false;  // a 416 said we already have every byte
  };

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
    Download d;
    const auto started = Clock::now();
    // Continue a download an earlier start left behind, if it can be trusted.
    auto meta = read_file(files_.download_meta, kSidecarLimit);
    auto info = meta ? parse_resume_info(*meta) : std::nullopt;
    const auto have = regular_file_size(files_.download);
    if (info)
      d.resume = *info;
    if (info && have && *have > 0 && resumable(d)) {
      auto pipeline =
          Pipeline::create(files_.download, OpenMode::kAppend, files_.part, p_.max_size);
      if (!pipeline)
        co_return pipeline.error();
      d.pipeline = std::move(*pipeline);
      log_->info("resuming the download of {} after {} fetched earlier", p_.source,
                 format_bytes(*have));
      auto replayed = co_await read_through(
          files_.download, *have,
          [&](std::span<const char> chunk) { return d.pipeline->replay(chunk); });
      if (!replayed) {
        log_->warn("cannot continue the partial download ({}); starting over",
                   replayed.error().message);
        if (auto r = restart(d); !r)
          co_return r.error();
      }
    } else {
      remove_quietly(files_.download_meta);
      d.resume = {};
      if (auto r = restart(d); !r)
        co_return r.error();
    }

    log_->info("fetching {} into {}", p_.source, files_.image.string());
    Progress progress("image", p_.progress_interval, Clock::now());
    progress.restart(d.pipeline->raw_bytes(), Clock::now());
    auto backoff = p_.backoff;
    for (unsigned attempt = 1;; ++attempt) {
      d.retry_after.reset();
      if (d.pipeline->raw_bytes() > 0 && !resumable(d)) {
        log_->info(
            "the server gave no ETag or Last-Modified and there is no IMG_CHECKSUM: "
            "starting over rather than resuming");
        if (auto r = restart(d); !r)
          co_return r.error();
      }
      auto result = co_await attempt_once(d, progress);
      if (result)
        break;
      const Error& error = result.error();
      if (error.kind != ErrorKind::kTransient || attempt >= p_.max_attempts) {
        if (error.kind == ErrorKind::kIntegrity)
          discard();
        co_return Error{error.kind,
                        error.kind == ErrorKind::kTransient
                            ? fmt::format("cannot fetch {}: {} (gave up after {} attempts; the "
                                          "partial download is kept and resumed on the next "
                                          "start)",
                                          p_.source, error.message, attempt)
                            : fmt::format("cannot fetch {}: {}", p_.source, error.message)};
      }
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
    log_->info("downloaded {}: {}", p_.source,
               progress.summary(d.pipeline->raw_bytes(), Clock::now()));
    auto image = co_await commit(*d.pipeline, CacheOutcome::kDownloaded, started);
    if (image) {
      if (d.pipeline->compression() != Compression::kNone)
        remove_quietly(files_.download);
      remove_quietly(files_.download_meta);
    }
    co_return image;
  }

  asio::awaitable<Result<void>> attempt_once(Download& d, Progress& progress) {
    std::optional<RangeRequest> range;
    if (d.pipeline->raw_bytes() > 0)
      range = RangeRequest{d.pipeline->raw_bytes(),
                           !d.resume.etag.empty() ? d.resume.etag : d.resume.last_modified};
    d.complete = false;

    auto on_head = [&](const HttpHead& head) -> Result<HeadAction> {
      if (head.status == 200) {
        if (range) {
          log_->warn(
              "{} sent the whole file instead of the range from byte {} (no Range support, "
              "or the file changed): starting over",
              head.url, range->from);
          if (auto r = restart(d); !r)
            return r.error();
          progress.restart(0, Clock::now());
        }
        d.total = head.content_length;
        d.resume = {p_.source, head.etag.starts_with("W/") ? std::string() : head.etag,
                    head.last_modified};
        if (auto w = write_file_atomic(files_.download_meta, serialize(d.resume)); !w)
          return w.error();
        progress.set_total(d.total);
        return HeadAction::kReadBody;
      }
      if (head.status == 206 && range) {
        const auto& cr = head.content_range;
        if (!cr || !cr->first || *cr->first != range->from) {
          if (auto r = restart(d); !r)
            return r.error();
          return Error{ErrorKind::kTransient,
                       fmt::format("{} answered the range request from byte {} with another range; "
                                   "starting over",
                                   head.url, range->from)};
        }
        d.total = cr->total;
        progress.set_total(d.total);
        log_->info("resuming {} at byte {}{}", head.url, range->from,
                   d.total ? fmt::format(" of {}", *d.total) : std::string());
        return HeadAction::kReadBody;
      }
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
      const std::string what =
          fmt::format("HTTP {} {} from {}", head.status, head.reason, head.url);
      if (is_transient_status(head.status)) {
        d.retry_after = head.retry_after;
        return Error{ErrorKind::kTransient, what};
      }
      return Error{ErrorKind::kHttp, what + "; check IMG_SOURCE"};
    };
    auto on_body = [&](std::span<const char> chunk) -> Result<void> {
      if (auto r = d.pipeline->feed(chunk); !r)
        return r;
      if (auto line = progress.update(d.pipeline->raw_bytes(), Clock::now()))
        log_->info("{}", *line);
      return {};
    };
    HttpOptions options{p_.ca_file,       p_.connect_timeout, p_.stall_timeout,
                        p_.max_redirects, p_.max_size,        "berth"};
    auto result = co_await http_get(std::move(options), p_.source, range, on_head, on_body);
    if (!result)
      co_return result;
    if (d.total && d.pipeline->raw_bytes() != *d.total)
      co_return Error{ErrorKind::kTransient, fmt::format("the body ended after {} of {} bytes",
                                                         d.pipeline->raw_bytes(), *d.total)};
    co_return Result<void>{};
  }

  void discard() {
    remove_quietly(files_.download);
    remove_quietly(files_.download_meta);
    remove_quietly(files_.part);
  }

  // ---- Local path

  asio::awaitable<Result<CachedImage>> copy_local() {
    const auto started = Clock::now();
    const fs::path source = p_.source;
    UniqueFd fd(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd)
      co_return Error{errno == ENOENT ? ErrorKind::kInvalidInput : ErrorKind::kSystem,
                      fmt::format("IMG_SOURCE: cannot open {}: {}", source, std::strerror(errno))};
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
      co_return Error{ErrorKind::kInvalidInput,
                      fmt::format("IMG_SOURCE: {} is not a regular file", source)};
    const auto size = static_cast<std::uint64_t>(st.st_size);
    auto pipeline = Pipeline::create(std::nullopt, OpenMode::kTruncate, files_.part, p_.max_size);
    if (!pipeline)
      co_return pipeline.error();
    log_->info("copying {} ({}) into {}", source.string(), format_bytes(size),
               files_.image.string());
    Progress progress("copy", p_.progress_interval, started);
    progress.set_total(size);
    std::vector<char> buffer(kReadChunk);
    const std::vector<char> zeros(kReadChunk, 0);
    auto executor = co_await asio::this_coro::executor;
    std::uint64_t offset = 0;
    while (offset < size) {
      // Holes are not read: they are fed as zeros, which the writer leaves as holes again.
      off_t data = ::lseek(fd.get(), static_cast<off_t>(offset), SEEK_DATA);
      if (data < 0)
        data = errno == ENXIO ? static_cast<off_t>(size) : static_cast<off_t>(offset);
      off_t hole = ::lseek(fd.get(), data, SEEK_HOLE);
      if (hole < 0)
        hole = static_cast<off_t>(size);
      while (offset < static_cast<std::uint64_t>(data)) {
        const auto n =
            std::min<std::uint64_t>(kReadChunk, static_cast<std::uint64_t>(data) - offset);
        if (auto r = (*pipeline)->feed({zeros.data(), static_cast<std::size_t>(n)}); !r)
          co_return fail_copy(r.error());
        offset += n;
      }
      while (offset < static_cast<std::uint64_t>(hole)) {
        const auto want =
            std::min<std::uint64_t>(kReadChunk, static_cast<std::uint64_t>(hole) - offset);
        const ssize_t n = ::pread(fd.get(), buffer.data(), static_cast<std::size_t>(want),
                                  static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR)
          continue;
        if (n <= 0)
          co_return fail_copy(n == 0 ? Error{ErrorKind::kSystem,
                                             fmt::format("{} shrank while being copied", source)}
                                     : system_error(fmt::format("cannot read {}", source), errno));
        if (auto r = (*pipeline)->feed({buffer.data(), static_cast<std::size_t>(n)}); !r)
          co_return fail_copy(r.error());
        offset += static_cast<std::uint64_t>(n);
        if (auto line = progress.update(offset, Clock::now()))
          log_->info("{}", *line);
        co_await asio::post(executor, asio::use_awaitable);
      }
    }
    log_->info("copied {}: {}", source.string(), progress.summary(size, Clock::now()));
    co_return co_await commit(**pipeline, CacheOutcome::kCopied, started);
  }

  Error fail_copy(Error error) {
    remove_quietly(files_.part);
    return error;
  }

  // ---- Both: verify, record, publish.

  asio::awaitable<Result<CachedImage>> commit(Pipeline& pipeline, CacheOutcome outcome,
                                              Clock::time_point started) {
    if (auto r = pipeline.finish(); !r) {
      if (r.error().kind == ErrorKind::kIntegrity)
        discard();
      co_return Error{r.error().kind, fmt::format("{}: {}", p_.source, r.error().message)};
    }
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

bool is_url(std::string_view source) {
  return source.starts_with("http://") || source.starts_with("https://");
}

asio::awaitable<Result<CachedImage>> fetch_image(FetchParams params,
                                                 std::shared_ptr<spdlog::logger> log) {
  Fetch fetch(std::move(params), std::move(log));
  co_return co_await fetch.run();
}

}  // namespace berth::drive
