#include "supervisor/phase_budget.hpp"

#include <fmt/format.h>

#include <charconv>
#include <vector>

namespace berth {

namespace {

using namespace std::chrono_literals;

// The defaults. Generous for a healthy start, short enough that a stuck one restarts the pod
// within minutes. The image budget counts from the last progress, so a slow but moving download
// of any size never overruns.
struct Default {
  Phase phase;
  PhaseBudget budget;
};
constexpr Default kDefaults[] = {
    {Phase::kDiscovering, {30s, BudgetClock::kSinceEntered}},  // netlink, listeners, runtime dir
    {Phase::kImage, {120s, BudgetClock::kSinceProgress}},      // no byte, no copy step, no growth
    {Phase::kDisk, {300s, BudgetClock::kSinceEntered}},        // also each qemu-img's deadline
    {Phase::kDrive, {60s, BudgetClock::kSinceEntered}},
    {Phase::kNetwork, {30s, BudgetClock::kSinceEntered}},
    {Phase::kServices, {30s, BudgetClock::kSinceEntered}},
    {Phase::kBooting, {60s, BudgetClock::kSinceEntered}},  // QMP connect, KVM probation
};

constexpr unsigned kMaxSeconds = 86400;

std::optional<Phase> budgeted_phase(std::string_view name) {
  for (const auto& d : kDefaults)
    if (phase_name(d.phase) == name)
      return d.phase;
  return std::nullopt;
}

std::string budgeted_names() {
  std::string out;
  for (const auto& d : kDefaults)
    out += (out.empty() ? "" : ", ") + std::string(phase_name(d.phase));
  return out;
}

}  // namespace

PhaseBudgets::PhaseBudgets() {
  for (const auto& d : kDefaults)
    budgets_[static_cast<std::size_t>(d.phase)] = d.budget;
}

bool PhaseBudgets::set_limit(Phase phase, std::chrono::seconds limit) {
  auto& budget = budgets_[static_cast<std::size_t>(phase)];
  if (!budget)
    return false;
  budget->limit = limit;
  return true;
}

Result<PhaseBudgets> parse_phase_budgets(std::string_view text) {
  PhaseBudgets budgets;
  std::vector<std::string> errors;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const std::string_view part = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const auto eq = part.find('=');
    const auto phase = budgeted_phase(part.substr(0, eq));
    unsigned seconds = 0;
    const std::string_view number = eq == std::string_view::npos ? "" : part.substr(eq + 1);
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), seconds);
    if (!phase)
      errors.push_back(
          fmt::format("\"{}\" does not name a phase with a budget ({})", part, budgeted_names()));
    else if (ec != std::errc() || end != number.data() + number.size() || seconds < 1
             || seconds > kMaxSeconds)
      errors.push_back(
          fmt::format("\"{}\" is not <phase>=<seconds 1-{}>, e.g. image=300", part, kMaxSeconds));
    else
      budgets.set_limit(*phase, std::chrono::seconds(seconds));
  }
  if (!errors.empty()) {
    std::string joined;
    for (const auto& e : errors)
      joined += (joined.empty() ? "" : "; ") + e;
    return Error{ErrorKind::kInvalidInput, joined};
  }
  return budgets;
}

std::string format_phase_budgets(const PhaseBudgets& budgets) {
  std::string out;
  for (const auto& d : kDefaults)
    out += fmt::format("{}{}={}", out.empty() ? "" : ",", phase_name(d.phase),
                       budgets.of(d.phase)->limit.count());
  return out;
}

std::optional<Overrun> phase_overrun(const PhaseBudgets& budgets, Phase phase,
                                     std::chrono::steady_clock::time_point entered,
                                     std::optional<std::chrono::steady_clock::time_point> progress,
                                     std::chrono::steady_clock::time_point now) {
  const auto budget = budgets.of(phase);
  if (!budget)
    return std::nullopt;
  const bool by_progress = budget->clock == BudgetClock::kSinceProgress;
  const auto from = by_progress && progress && *progress > entered ? *progress : entered;
  const auto ran = std::chrono::duration_cast<std::chrono::seconds>(now - from);
  if (now - from <= budget->limit)
    return std::nullopt;
  const std::string message =
      by_progress ? fmt::format(
          "phase {} made no progress for {}s (budget {}s without progress; "
          "BERTH_PHASE_BUDGETS)",
          phase_name(phase), ran.count(), budget->limit.count())
                  : fmt::format("phase {} has run for {}s (budget {}s; BERTH_PHASE_BUDGETS)",
                                phase_name(phase), ran.count(), budget->limit.count());
  return Overrun{phase, budget->limit, ran, budget->clock, message};
}

}  // namespace berth
