#pragma once
// The supervisor's lifecycle: the start-up phases in order (ARCHITECTURE.md lists them; the team's
// brief is ../shared/DESIGN.md beside this repository), each transition logged with how long the
// phase took. Only forward moves are allowed, except that kStopping can be entered from
// any phase before it (a signal can arrive at any time).

#include <spdlog/logger.h>

#include <chrono>
#include <memory>
#include <string_view>
#include <vector>

namespace berth {

enum class Phase {
  kConfiguring,
  kDiscovering,  // pod address, MTU, routes, resolv.conf, hostname
  kImage,        // fetch, verify, cache the base image
  kDisk,         // create or reuse the pet overlay
  kDrive,        // build the config drive
  kNetwork,      // bridge, tap, NAT
  kServices,     // DHCP, DNS, health and control listeners
  kBooting,      // QEMU spawned, QMP connecting
  kRunning,
  kStopping,    // ACPI power-down, quit, kill
  kCleaningUp,  // remove what was plumbed
  kExited,
};

std::string_view phase_name(Phase phase);

class Lifecycle {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Lifecycle(std::shared_ptr<spdlog::logger> log);

  Phase phase() const { return phase_; }
  // Moves to `next` and logs "<old> done in <t>; <next>". Returns false (and changes nothing)
  // for a move backwards or to the same phase.
  bool enter(Phase next);
  Clock::duration in_phase() const { return Clock::now() - entered_; }
  Clock::duration since_start() const { return Clock::now() - started_; }
  // Every transition so far with the time the left phase took, oldest first.
  struct Step {
    Phase phase;
    Clock::duration took;
  };
  const std::vector<Step>& history() const { return history_; }

 private:
  std::shared_ptr<spdlog::logger> log_;
  Phase phase_ = Phase::kConfiguring;
  Clock::time_point started_ = Clock::now();
  Clock::time_point entered_ = started_;
  std::vector<Step> history_;
};

}  // namespace berth
