#pragma once
// Progress of a long transfer as log lines: bytes, percent, rate and ETA, at most every interval.
// Pure: the caller passes the time, so tests drive it with a fake clock.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace berth::drive {

// "512.0 MiB", "3.2 GiB", "17 B".
std::string format_bytes(std::uint64_t bytes);
// "1m05s", "42s", "2h03m".
std::string format_duration(std::chrono::seconds duration);

class Progress {
 public:
  using Clock = std::chrono::steady_clock;

  // `what` names the transfer in each line ("image", "copy"); `total` is the expected size when
  // known.
  Progress(std::string what, std::chrono::milliseconds interval, Clock::time_point start);

  void set_total(std::optional<std::uint64_t> total) { total_ = total; }
  // Restarts the count, e.g. when a download starts over from byte 0 or resumes at `bytes`.
  void restart(std::uint64_t bytes, Clock::time_point now);
  // A line such as "image: 512.0 MiB of 1.0 GiB (50%) at 110.3 MiB/s, ETA 5s" when `interval`
  // has passed since the last line; nullopt otherwise. The rate is that since the last line.
  std::optional<std::string> update(std::uint64_t bytes, Clock::time_point now);
  // "1.0 GiB in 9.1s (112.5 MiB/s)": the whole transfer since construction/restart.
  std::string summary(std::uint64_t bytes, Clock::time_point now) const;

 private:
  std::string what_;
  std::chrono::milliseconds interval_;
  std::optional<std::uint64_t> total_;
  Clock::time_point start_;
  std::uint64_t start_bytes_ = 0;
  Clock::time_point last_;
  std::uint64_t last_bytes_ = 0;
};

}  // namespace berth::drive
