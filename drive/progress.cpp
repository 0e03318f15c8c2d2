#include "drive/progress.hpp"

#include <fmt/format.h>

namespace berth::drive {

std::string format_bytes(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024)
    return fmt::format("{} B", bytes);
  double value = static_cast<double>(bytes) / 1024.0;
  std::size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < std::size(kUnits)) {
    value /= 1024.0;
    ++unit;
  }
  return fmt::format("{:.1f} {}", value, kUnits[unit]);
}

std::string format_duration(std::chrono::seconds duration) {
  const auto s = duration.count();
  if (s < 60)
    return fmt::format("{}s", s);
  if (s < 3600)
    return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

Progress::Progress(std::string what, std::chrono::milliseconds interval, Clock::time_point start)
    : what_(std::move(what)), interval_(interval), start_(start), last_(start) {}

void Progress::restart(std::uint64_t bytes, Clock::time_point now) {
  start_ = last_ = now;
  start_bytes_ = last_bytes_ = bytes;
}

std::optional<std::string> Progress::update(std::uint64_t bytes, Clock::time_point now) {
  if (now - last_ < interval_)
    return std::nullopt;
  const double seconds = std::chrono::duration<double>(now - last_).count();
  const double rate = bytes >= last_bytes_ ? static_cast<double>(bytes - last_bytes_) / seconds : 0;
  last_ = now;
  last_bytes_ = bytes;
  std::string line = fmt::format("{}: {}", what_, format_bytes(bytes));
  if (total_ && *total_ > 0) {
    const double percent = 100.0 * static_cast<double>(bytes) / static_cast<double>(*total_);
    line += fmt::format(" of {} ({:.0f}%)", format_bytes(*total_), percent);
  }
  line += fmt::format(" at {}/s", format_bytes(static_cast<std::uint64_t>(rate)));
  if (total_ && *total_ > bytes && rate > 0) {
    const auto eta = static_cast<std::int64_t>(static_cast<double>(*total_ - bytes) / rate + 0.5);
    line += fmt::format(", ETA {}", format_duration(std::chrono::seconds(eta)));
  }
  return line;
}

std::string Progress::summary(std::uint64_t bytes, Clock::time_point now) const {
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const std::uint64_t moved = bytes >= start_bytes_ ? bytes - start_bytes_ : 0;
  const double rate = seconds > 0 ? static_cast<double>(moved) / seconds : 0;
  return fmt::format("{} in {:.1f}s ({}/s)", format_bytes(moved), seconds,
                     format_bytes(static_cast<std::uint64_t>(rate)));
}

}  // namespace berth::drive
