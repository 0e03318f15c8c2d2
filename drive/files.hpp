#pragma once
// File primitives the drive module builds on: whole-file reads with a limit, atomic replacement,
// a sparse streaming writer, and an advisory lock that is waited for without blocking the loop.

#include <spdlog/logger.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace berth::drive {

// An owned file descriptor, closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Reads a whole regular file (following symlinks). Errors: missing, unreadable, not a regular
// file, or larger than `limit` bytes.
Result<std::string> read_file(const std::filesystem::path& path, std::uint64_t limit);

// kDurable: the new content survives a crash once the call returns. kAtomicOnly: readers still see
// the old or the new content, never a mix, but a crash may lose the file; for files rebuilt from
// their sources on every start (the config drive), where two fsyncs would only slow start-up.
enum class Durability { kDurable, kAtomicOnly };

// Replaces `path` with `data` atomically: a temporary file in the same directory, fsync, rename
// over `path`, fsync of the directory (the fsyncs only when kDurable). Readers see the old or the
// new content, never a mix. `mode`: the permissions the file is created with (before the umask).
Result<void> write_file_atomic(const std::filesystem::path& path, std::string_view data,
                               Durability durability = Durability::kDurable, unsigned mode = 0644);

// A fresh name in the directory of `path` to write it under before renaming it into place:
// "<dir>/.<file name>.<16 random hex digits>.tmp".
std::filesystem::path temporary_path(const std::filesystem::path& path);

// True when `path` is a directory (a regular file), following symlinks; false when it is missing,
// unreadable or something else.
bool is_dir(const std::filesystem::path& path);
bool is_regular(const std::filesystem::path& path);

// fsyncs a directory so that renames and creations in it are durable.
Result<void> fsync_directory(const std::filesystem::path& dir);

// Renames `from` to `to` unless `to` exists (renameat2 RENAME_NOREPLACE). Errors: EEXIST and the
// rest as kSystem.
Result<void> rename_no_replace(const std::filesystem::path& from, const std::filesystem::path& to);

enum class OpenMode { kTruncate, kAppend };

// Writes a stream of bytes to a file at increasing offsets. All-zero 4 KiB blocks are skipped
// (left as holes), so raw images stay sparse; finish() sets the final size and fsyncs. Writeback
// is started every 64 MiB so that the final fsync does not wait for the whole file.
class SparseFileWriter {
 public:
  // Opens (creating, mode 0644) `path`; kAppend continues at the current end of the file.
  static Result<SparseFileWriter> open(const std::filesystem::path& path, OpenMode mode);

  Result<void> write(std::span<const char> data);
  // Continues `count` bytes further on, leaving them a hole (zeros), as write() would for zeros.
  void skip(std::uint64_t count) { offset_ += count; }
  // Extends the file to offset() (trailing holes) and fsyncs it.
  Result<void> finish();
  std::uint64_t offset() const { return offset_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  SparseFileWriter(UniqueFd fd, std::filesystem::path path, std::uint64_t offset)
      : fd_(std::move(fd)), path_(std::move(path)), offset_(offset), synced_(offset) {}
  Result<void> write_at(const char* data, std::size_t size, std::uint64_t offset);

  UniqueFd fd_;
  std::filesystem::path path_;
  std::uint64_t offset_ = 0;
  std::uint64_t synced_ = 0;  // writeback has been started up to here
};

// True when every byte of `data` is zero.
bool all_zero(std::span<const char> data);

// An exclusive flock(2) on a lock file, held until destruction. flock is per open file, so two
// holders in one process exclude each other just like two processes do; the kernel drops it when
// a holder dies (kill -9 included).
class FileLock {
 public:
  // Creates `path` if needed and waits until the lock is ours, polling every `poll` (flock blocks,
  // so it is never called without LOCK_NB) and calling `on_wait` at each poll while it waits. Logs
  // when it has to wait (every 30 s), naming `what` and the holder. Once held, the file says who
  // holds it ("<hostname> pid <pid>"), for the log of those who wait. Cancellable: a cancelled
  // wait throws operation_aborted and holds nothing.
  static boost::asio::awaitable<Result<FileLock>> acquire(std::filesystem::path path,
                                                          std::string what,
                                                          std::chrono::milliseconds poll,
                                                          std::shared_ptr<spdlog::logger> log,
                                                          std::function<void()> on_wait = {});
  FileLock() = default;  // holds nothing
  FileLock(FileLock&&) noexcept = default;
  FileLock& operator=(FileLock&&) noexcept = default;

 private:
  explicit FileLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace berth::drive
