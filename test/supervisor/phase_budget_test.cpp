// The phase budgets (pure): the table, BERTH_PHASE_BUDGETS, and when a phase has outrun its
// budget, on an injected clock.

#include "supervisor/phase_budget.hpp"

#include <catch2/catch.hpp>

using namespace berth;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST_CASE("phase budgets: every start-up phase has one, running and after have none", "[budget]") {
  const PhaseBudgets budgets;
  for (auto phase : {Phase::kDiscovering, Phase::kImage, Phase::kDisk, Phase::kDrive,
                     Phase::kNetwork, Phase::kServices, Phase::kBooting}) {
    INFO(phase_name(phase));
    REQUIRE(budgets.of(phase));
    CHECK(budgets.of(phase)->limit >= 30s);
  }
  for (auto phase :
       {Phase::kConfiguring, Phase::kRunning, Phase::kStopping, Phase::kCleaningUp, Phase::kExited})
    CHECK_FALSE(budgets.of(phase));
  CHECK(budgets.of(Phase::kImage)->clock == BudgetClock::kSinceProgress);
  CHECK(budgets.of(Phase::kDisk)->clock == BudgetClock::kSinceEntered);
}

TEST_CASE("phase budgets: a phase overruns only past its budget, from entry", "[budget]") {
  const PhaseBudgets budgets;
  const Clock::time_point entered{100s};
  CHECK_FALSE(phase_overrun(budgets, Phase::kNetwork, entered, std::nullopt, entered + 30s));
  auto over = phase_overrun(budgets, Phase::kNetwork, entered, std::nullopt, entered + 31s);
  REQUIRE(over);
  CHECK(over->phase == Phase::kNetwork);
  CHECK(over->ran == 31s);
  CHECK(over->budget == 30s);
  CHECK(over->message == "phase network has run for 31s (budget 30s; BERTH_PHASE_BUDGETS)");
  // Progress does not extend a wall-clock budget.
  CHECK(phase_overrun(budgets, Phase::kNetwork, entered, entered + 30s, entered + 31s));
  CHECK_FALSE(phase_overrun(budgets, Phase::kRunning, entered, std::nullopt, entered + 100h));
}

TEST_CASE("phase budgets: image progress restarts the stall clock", "[budget]") {
  const PhaseBudgets budgets;
  const Clock::time_point entered{100s};
  // A slow download that keeps moving never overruns, however long it takes.
  CHECK_FALSE(phase_overrun(budgets, Phase::kImage, entered, entered + 3h, entered + 3h + 119s));
  // One that stopped moving does, counted from its last byte.
  auto stalled = phase_overrun(budgets, Phase::kImage, entered, entered + 3h, entered + 3h + 121s);
  REQUIRE(stalled);
  CHECK(stalled->ran == 121s);
  CHECK(stalled->message
        == "phase image made no progress for 121s (budget 120s without progress; "
           "BERTH_PHASE_BUDGETS)");
  // No progress at all (a lock whose holder is gone, a server that never answers): from entry.
  CHECK(phase_overrun(budgets, Phase::kImage, entered, std::nullopt, entered + 121s));
  // Progress of an earlier phase (before `entered`) does not count.
  CHECK(phase_overrun(budgets, Phase::kImage, entered, entered - 1s, entered + 121s));
}

TEST_CASE("phase budgets: BERTH_PHASE_BUDGETS overrides some, reports every bad part", "[budget]") {
  auto parsed = parse_phase_budgets("image=5,disk=600");
  REQUIRE(parsed.has_value());
  CHECK(parsed->of(Phase::kImage)->limit == 5s);
  CHECK(parsed->of(Phase::kImage)->clock == BudgetClock::kSinceProgress);
  CHECK(parsed->of(Phase::kDisk)->limit == 600s);
  CHECK(parsed->of(Phase::kBooting)->limit == PhaseBudgets().of(Phase::kBooting)->limit);
  CHECK(format_phase_budgets(*parsed)
        == "discovering=30,image=5,disk=600,drive=60,network=30,services=30,booting=60");
  CHECK(format_phase_budgets(*parse_phase_budgets(format_phase_budgets(*parsed)))
        == format_phase_budgets(*parsed));

  auto bad = parse_phase_budgets("image=0,stopping=5,disk=10m,net=3,booting=");
  REQUIRE_FALSE(bad.has_value());
  CHECK(bad.error().kind == ErrorKind::kInvalidInput);
  for (const char* part :
       {"\"image=0\"", "\"stopping=5\"", "\"disk=10m\"", "\"net=3\"", "\"booting=\""})
    CHECK_THAT(bad.error().message, Catch::Contains(part));
  CHECK_THAT(bad.error().message,
             Catch::Contains("discovering, image, disk, drive, network, services, booting"));
}
