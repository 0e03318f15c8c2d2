#include "supervisor/lifecycle.hpp"

#include <spdlog/sinks/ostream_sink.h>

#include <catch2/catch.hpp>
#include <sstream>

using namespace berth;

TEST_CASE("the lifecycle moves forward only and logs each phase with its duration", "[lifecycle]") {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
  auto log = std::make_shared<spdlog::logger>("test", sink);
  Lifecycle lifecycle(log);
  CHECK(lifecycle.phase() == Phase::kConfiguring);
  CHECK(lifecycle.enter(Phase::kDiscovering));
  CHECK(lifecycle.enter(Phase::kRunning));  // skipping phases forward is allowed
  CHECK_FALSE(lifecycle.enter(Phase::kImage));
  CHECK_FALSE(lifecycle.enter(Phase::kRunning));
  CHECK(lifecycle.phase() == Phase::kRunning);
  CHECK(lifecycle.enter(Phase::kStopping));
  REQUIRE(lifecycle.history().size() == 3);
  CHECK(lifecycle.history()[0].phase == Phase::kConfiguring);
  CHECK(lifecycle.history()[2].phase == Phase::kRunning);
  CHECK_THAT(out.str(), Catch::Contains("phase discovering -> running (discovering took "));
  CHECK_THAT(out.str(), Catch::Contains("phase running -> stopping"));
}
