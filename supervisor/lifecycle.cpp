#include "supervisor/lifecycle.hpp"

#include <fmt/chrono.h>

#include <array>

namespace berth {

std::string_view phase_name(Phase phase) {
  static constexpr std::array<std::string_view, 12> kNames = {
      "configuring", "discovering", "image",   "disk",     "drive",       "network",
      "services",    "booting",     "running", "stopping", "cleaning-up", "exited"};
  return kNames[static_cast<std::size_t>(phase)];
}

Lifecycle::Lifecycle(std::shared_ptr<spdlog::logger> log) : log_(std::move(log)) {}

bool Lifecycle::enter(Phase next) {
  if (next <= phase_)
    return false;
  const auto now = Clock::now();
  const auto took = now - entered_;
  history_.push_back({phase_, took});
  log_->info("phase {} -> {} ({} took {:.3f}s, {:.3f}s since start)", phase_name(phase_),
             phase_name(next), phase_name(phase_), std::chrono::duration<double>(took).count(),
             std::chrono::duration<double>(now - started_).count());
  phase_ = next;
  entered_ = now;
  return true;
}

}  // namespace berth
