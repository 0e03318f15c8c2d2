#include "drive/files.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/std.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

namespace berth::drive {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kBlock = 4096;
constexpr std::uint64_t kWritebackEvery = 64 << 20;

Result<void> write_all(int fd, std::string_view data, const fs::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return system_error(fmt::format("cannot write {}", path), errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

}  // namespace

fs::path temporary_path(const fs::path& path) {
  static std::mt19937_64 rng{std::random_device{}()};
  return path.parent_path() / fmt::format(".{}.{:016x}.tmp", path.filename().string(), rng());
}

bool is_dir(const fs::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_regular(const fs::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other)
    reset(other.release());
  return *this;
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = fd;
}

bool all_zero(std::span<const char> data) {
  return data.empty()
         || (data[0] == 0 && std::memcmp(data.data(), data.data() + 1, data.size() - 1) == 0);
}

Result<std::string> read_file(const fs::path& path, std::uint64_t limit) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd)
    return system_error(fmt::format("cannot open {}", path), errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return system_error(fmt::format("cannot stat {}", path), errno);
  if (!S_ISREG(st.st_mode))
    return Error{ErrorKind::kInvalidInput, fmt::format("{} is not a regular file", path)};
  if (static_cast<std::uint64_t>(st.st_size) > limit)
    return Error{ErrorKind::kInvalidInput,
                 fmt::format("{} is {} bytes; at most {} are accepted", path, st.st_size, limit)};
  std::string data;
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return system_error(fmt::format("cannot read {}", path), errno);
    }
    if (n == 0)
      break;
    data.append(buffer, static_cast<std::size_t>(n));
    if (data.size() > limit)
      return Error{ErrorKind::kInvalidInput,
                   fmt::format("{} is more than {} bytes; at most that is accepted", path, limit)};
  }
  return data;
}

Result<void> fsync_directory(const fs::path& dir) {
  UniqueFd fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd)
    return system_error(fmt::format("cannot open directory {}", dir), errno);
  if (::fsync(fd.get()) != 0 && errno != EINVAL)
    return system_error(fmt::format("cannot fsync directory {}", dir), errno);
  return {};
}

Result<void> write_file_atomic(const fs::path& path, std::string_view data, Durability durability,
                               unsigned mode) {
  const fs::path dir = path.parent_path();
  const fs::path temp = temporary_path(path);
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd)
    return system_error(fmt::format("cannot create {}", temp), errno);
  auto fail = [&](Error error) -> Result<void> {
    ::unlink(temp.c_str());
    return error;
  };
  if (auto written = write_all(fd.get(), data, temp); !written)
    return fail(written.error());
  const bool durable = durability == Durability::kDurable;
  if (durable && ::fsync(fd.get()) != 0)
    return fail(system_error(fmt::format("cannot fsync {}", temp), errno));
  fd.reset();
  if (::rename(temp.c_str(), path.c_str()) != 0)
    return fail(system_error(fmt::format("cannot rename {} to {}", temp, path), errno));
  return durable ? fsync_directory(dir) : Result<void>{};
}

Result<void> rename_no_replace(const fs::path& from, const fs::path& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) != 0)
    return system_error(fmt::format("cannot rename {} to {}", from, to), errno);
  return {};
}

Result<SparseFileWriter> SparseFileWriter::open(const fs::path& path, OpenMode mode) {
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (mode == OpenMode::kTruncate ? O_TRUNC : 0);
  UniqueFd fd(::open(path.c_str(), flags, 0644));
  if (!fd)
    return system_error(fmt::format("cannot open {} for writing", path), errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return system_error(fmt::format("cannot stat {}", path), errno);
  return SparseFileWriter(std::move(fd), path, static_cast<std::uint64_t>(st.st_size));
}

Result<void> SparseFileWriter::write_at(const char* data, std::size_t size, std::uint64_t offset) {
  while (size > 0) {
    const ssize_t n = ::pwrite(fd_.get(), data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return system_error(fmt::format("cannot write {}", path_), errno);
    }
    data += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<std::uint64_t>(n);
  }
  return {};
}

Result<void> SparseFileWriter::write(std::span<const char> data) {
  // Walk the data in pieces that end on block boundaries of the file; write runs of non-zero
  // pieces with one pwrite and skip zero pieces (the file beyond offset_ is a hole already).
  std::size_t run_start = 0;
  std::size_t run_size = 0;
  std::size_t pos = 0;
  while (pos < data.size()) {
    const std::uint64_t at = offset_ + pos;
    const std::size_t piece = std::min<std::size_t>(kBlock - at % kBlock, data.size() - pos);
    if (all_zero(data.subspan(pos, piece))) {
      if (run_size > 0) {
        if (auto r = write_at(data.data() + run_start, run_size, offset_ + run_start); !r)
          return r;
        run_size = 0;
      }
    } else {
      if (run_size == 0)
        run_start = pos;
      run_size += piece;
    }
    pos += piece;
  }
  if (run_size > 0) {
    if (auto r = write_at(data.data() + run_start, run_size, offset_ + run_start); !r)
      return r;
  }
  offset_ += data.size();
  if (offset_ - synced_ >= kWritebackEvery) {
    // Start writeback of what is dirty so far; returns at once, errors show up at fsync.
    ::sync_file_range(fd_.get(), static_cast<off_t>(synced_), static_cast<off_t>(offset_ - synced_),
                      SYNC_FILE_RANGE_WRITE);
    synced_ = offset_;
  }
  return {};
}

Result<void> SparseFileWriter::finish() {
  if (::ftruncate(fd_.get(), static_cast<off_t>(offset_)) != 0)
    return system_error(fmt::format("cannot set the size of {}", path_), errno);
  if (::fsync(fd_.get()) != 0)
    return system_error(fmt::format("cannot fsync {}", path_), errno);
  return {};
}

namespace {

// Who holds a lock, as its file says; "unknown" before the holder wrote it (or from an older
// berth).
std::string lock_holder(int fd) {
  std::array<char, 256> buffer{};
  const ssize_t n = ::pread(fd, buffer.data(), buffer.size() - 1, 0);
  std::string text(buffer.data(), n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\0'))
    text.pop_back();
  return text.empty() ? "unknown" : text;
}

// Writes "<hostname> pid <pid>" into a lock file we hold (best effort: only for the log).
void record_holder(int fd) {
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0)
    host[0] = '\0';
  const std::string text = fmt::format("{} pid {}\n", host.data(), ::getpid());
  if (::ftruncate(fd, 0) == 0) {
    [[maybe_unused]] auto written = ::pwrite(fd, text.data(), text.size(), 0);
  }
}

}  // namespace

boost::asio::awaitable<Result<FileLock>> FileLock::acquire(fs::path path, std::string what,
                                                           std::chrono::milliseconds poll,
                                                           std::shared_ptr<spdlog::logger> log,
                                                           std::function<void()> on_wait) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd)
    co_return system_error(fmt::format("cannot open lock file {}", path), errno);
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
  const auto started = std::chrono::steady_clock::now();
  auto next_report = started;
  for (;;) {
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0)
      break;
    if (errno != EWOULDBLOCK && errno != EINTR)
      co_return system_error(fmt::format("cannot lock {}", path), errno);
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_report) {
      log->info(
          "waiting for another berth ({}) that is fetching {} (lock {} held for {}s so far; "
          "the kernel releases it if that berth dies)",
          lock_holder(fd.get()), what, path.string(),
          std::chrono::duration_cast<std::chrono::seconds>(now - started).count());
      next_report = now + std::chrono::seconds(30);
    }
    if (on_wait)
      on_wait();
    timer.expires_after(poll);
    co_await timer.async_wait(boost::asio::use_awaitable);
  }
  record_holder(fd.get());
  co_return FileLock(std::move(fd));
}

}  // namespace berth::drive
