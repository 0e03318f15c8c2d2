#pragma once
// How long each start-up phase may take before /healthz calls berth stuck (pure). The numbers are
// data in one table (phase_budget.cpp); BERTH_PHASE_BUDGETS overrides them per phase. A phase
// that outruns its budget makes /healthz answer 503 naming the phase, so the kubelet's liveness
// probe restarts the pod: a stalled download, a cache lock whose holder makes no progress, a hung
// qemu-img or NFS read ends in a restart instead of a pod that is "Running" forever.

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "supervisor/lifecycle.hpp"

namespace berth {

// What a budget is measured from.
enum class BudgetClock {
  kSinceEntered,   // the whole phase
  kSinceProgress,  // since the phase last made progress (image: bytes arrived, a copy step, the
                   // lock holder's download grew); progress restarts the clock
};

struct PhaseBudget {
  std::chrono::seconds limit{0};
  BudgetClock clock = BudgetClock::kSinceEntered;
};

// The budget of every phase that has one (configuring, running and after have none: running is
// watched through QMP, and a stop is bounded by BERTH_SHUTDOWN_TIMEOUT).
class PhaseBudgets {
 public:
  // The defaults (phase_budget.cpp).
  PhaseBudgets();
  std::optional<PhaseBudget> of(Phase phase) const {
    return budgets_[static_cast<std::size_t>(phase)];
  }
  // Replaces the limit of a phase that has a budget; false for a phase without one.
  bool set_limit(Phase phase, std::chrono::seconds limit);

 private:
  std::array<std::optional<PhaseBudget>, static_cast<std::size_t>(Phase::kExited) + 1> budgets_;
};

// BERTH_PHASE_BUDGETS: "image=300,disk=600" (phase=seconds, 1-86400, comma-separated) over the
// defaults. Errors: kInvalidInput, naming the part that is wrong and the phases that have budgets.
Result<PhaseBudgets> parse_phase_budgets(std::string_view text);
// The same as text, every budgeted phase: "discovering=30,image=120,...".
std::string format_phase_budgets(const PhaseBudgets& budgets);

// A phase past its budget: what /healthz says.
struct Overrun {
  Phase phase;
  std::chrono::seconds budget;
  std::chrono::seconds ran;  // since it was entered, or since its last progress
  BudgetClock clock;
  std::string message;  // "phase image made no progress for 130s (budget 120s)"
};

// Whether `phase`, entered at `entered` and last making progress at `progress` (nullopt: none
// since it was entered), has outrun its budget at `now`.
std::optional<Overrun> phase_overrun(const PhaseBudgets& budgets, Phase phase,
                                     std::chrono::steady_clock::time_point entered,
                                     std::optional<std::chrono::steady_clock::time_point> progress,
                                     std::chrono::steady_clock::time_point now);

}  // namespace berth
